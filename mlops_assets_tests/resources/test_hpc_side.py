"""The HpcSide resource and its placements, without the sandbox: the catalog facts it carries,
the one shipping table, a real Pipes run of a shipped payload in `local` mode (a subprocess
here, exactly what the login node runs over SSH), and the typed ProbeContext."""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest

import mlops_assets
from mlops_assets.catalog.schema import Catalog, DataMover, MoverJob
from mlops_assets.checking import ProbeContext
from mlops_assets.core.checks import ProbeFailed
from mlops_assets.core.manifest import build_manifest
from mlops_assets.core.slurm_jobs import Resources
from mlops_assets.core.transport.hostexec import LocalRunner
from mlops_assets.platform import active
from mlops_assets.resources import shipping
from mlops_assets.resources.clients import HttpServiceResource, S3Resource
from mlops_assets.resources.hpc import HpcSide, job_resources
from mlops_assets.resources.hpc_pipes import LoginPipesClient, PayloadClient
from mlops_assets.resources.slurm_pipes import SlurmPipesClient

RESOURCES = Path(mlops_assets.__file__).parent / "resources"


@pytest.fixture
def catalog() -> Catalog:
    return active().catalog


def _with_data_mover(cat: Catalog) -> Catalog:
    mover = DataMover(partition="dtn", job=MoverJob(gpus=0, cpus=3, mem_mb=2048, time_limit_min=7))
    return cat.model_copy(update={"hpc": cat.hpc.model_copy(update={"data_mover": mover})})


# ------------------------------------------------------------------ what it carries


def test_from_catalog_carries_the_catalogs_hpc_facts(catalog: Catalog) -> None:
    hpc = HpcSide.from_catalog(catalog)
    login = catalog.hpc.access.login
    assert (hpc.mode, hpc.host, hpc.port, hpc.user) == (
        catalog.hpc.access.mode,
        login.host,
        login.port,
        login.user,
    )
    assert hpc.python == catalog.hpc.python
    assert hpc.env == catalog.hpc.env
    assert hpc.directories == catalog.hpc.beegfs.role_directories()
    assert hpc.directory("scripts") == catalog.hpc.beegfs.directory("scripts")
    assert hpc.smoke_partition == catalog.smoke.partition
    with pytest.raises(KeyError, match=r"no BeeGFS directory role 'nope'.*scripts"):
        hpc.directory("nope")


def test_without_a_data_mover_staging_runs_on_the_login_node_with_the_given_timeout(
    catalog: Catalog,
) -> None:
    hpc = HpcSide.from_catalog(catalog)
    assert catalog.hpc.data_mover is None, "the shipped sandbox catalog has no data mover"
    client = hpc.staging_client(timeout_s=42)
    assert isinstance(client, LoginPipesClient)
    assert client.timeout_s == 42 and client.python == catalog.hpc.python
    assert client.messages_dir == f"{catalog.hpc.beegfs.directory('jobs')}/pipes"


def test_a_data_mover_in_the_catalog_moves_staging_into_slurm_jobs_of_its_size(
    catalog: Catalog,
) -> None:
    hpc = HpcSide.from_catalog(_with_data_mover(catalog))
    client = hpc.staging_client()
    assert isinstance(client, SlurmPipesClient)
    assert client.partition == "dtn" and client.kit == shipping.DATA_MOVER
    assert client.job == Resources(gpus=0, cpus=3, mem_mb=2048, time_limit_min=7)
    assert client.jobs_dir == f"{catalog.hpc.beegfs.directory('jobs')}/data-mover"
    assert client.container is None and not client.reattach
    # survives the round trip through the resource's config, which is what a run gets
    again = HpcSide(**hpc.model_dump())
    assert again.staging_client().job == client.job  # type: ignore[attr-defined]


def test_smoke_and_build_placements(catalog: Catalog) -> None:
    hpc = HpcSide(**{**HpcSide.from_catalog(catalog).model_dump(), "smoke_container": "/i.sif"})
    job = job_resources(catalog.smoke.jobs.gpu, "gpu-07")
    smoke = hpc.smoke_client(job, reattach=True)
    assert (smoke.partition, smoke.kit, smoke.reattach) == (catalog.smoke.partition, "smoke", True)
    assert smoke.container == "/i.sif" and smoke.binds == [catalog.hpc.beegfs.root]
    spec = smoke.job_spec("gpu_smoke.py", "/where", "/jobdir", {"K": "V"})
    assert spec.size.nodelist == "gpu-07" and spec.size.gpus == catalog.smoke.jobs.gpu.gpus
    assert spec.command[0] == "python3", "inside the image, its own python3"
    assert spec.env["K"] == "V" and spec.env["PYTHONUNBUFFERED"] == "1"
    build = hpc.build_client("build", Resources(cpus=8))
    assert (build.kit, build.container, build.job.cpus) == ("build", None, 8)
    assert build.job_spec("container_image.py", "/w", "/j", {}).command[0] == catalog.hpc.python


def test_every_placement_shares_one_run_signature() -> None:
    """No client re-types `run`: an asset calls every placement the same way, and every
    placement ships its kit first (PayloadClient.run does, then the client's `_launch`)."""
    base = inspect.signature(PayloadClient.run)
    for client in (LoginPipesClient, SlurmPipesClient):
        assert inspect.signature(client.run) == base, client
        assert client.run is PayloadClient.run, client
    for path in RESOURCES.glob("*.py"):
        assert "type: ignore[override]" not in path.read_text(), path


def test_resource_modules_import_each_other_in_one_direction_only() -> None:
    """No import cycle between the resource modules, and none hidden in a function body."""
    graph: dict[str, set[str]] = {}
    for path in RESOURCES.glob("*.py"):
        tree = ast.parse(path.read_text())
        top = set(tree.body)
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "mlops_assets.resources"
            ):
                target = (node.module or "").rsplit(".", 1)[-1]
                assert node in top, f"{path.name} imports {node.module} inside a function"
                deps.add(target)
        graph[path.stem] = deps

    def reaches(start: str, goal: str, seen: frozenset[str] = frozenset()) -> bool:
        return any(
            d == goal or (d not in seen and reaches(d, goal, seen | {d}))
            for d in graph.get(start, ())
        )

    assert graph["hpc"] >= {"hpc_pipes", "slurm_pipes", "shipping"}
    assert not [m for m in graph if reaches(m, m)], graph


# ------------------------------------------------------------------ the shipping table


def test_every_shipped_file_exists_and_every_kit_can_run_something() -> None:
    for name, row in shipping.SHIPPED.items():
        assert row.local().is_file(), (name, row)
        assert row.kits and row.kits <= set(shipping.KITS), name
    for kit in shipping.KITS:
        assert any(r.entry for r in shipping.kit(kit).values()), kit
    assert "dagster_pipes.py" in shipping.kit(shipping.SMOKE)
    assert "dagster_pipes.py" not in shipping.kit(shipping.LOGIN), "staging uses hpc.python's"
    # what each staging payload imports beside it travels with it
    for kit in (shipping.LOGIN, shipping.DATA_MOVER, shipping.BUILD):
        assert {"stage_common.py", "mlops_manifest.py"} <= set(shipping.kit(kit)), kit


def test_a_client_runs_only_the_entries_of_its_own_kit() -> None:
    shipping.check_entry(shipping.LOGIN, "stage_hub.py")
    shipping.check_entry(shipping.BUILD, "container_image.py")
    with pytest.raises(ValueError, match="not a login payload"):
        shipping.check_entry(shipping.LOGIN, "gpu_smoke.py")
    with pytest.raises(ValueError, match="not a data_mover payload"):
        shipping.check_entry(shipping.DATA_MOVER, "stage_common.py")  # a helper
    with pytest.raises(ValueError, match="unknown kit"):
        shipping.kit("gpu")


def test_shipping_copies_what_differs_and_nothing_else(tmp_path: Path) -> None:
    where = Path(shipping.ship_payloads(LocalRunner(), str(tmp_path), shipping.BUILD))
    assert where == tmp_path / shipping.PAYLOAD_DIR
    assert sorted(p.name for p in where.iterdir()) == sorted(shipping.kit(shipping.BUILD))
    inodes = {p.name: p.stat().st_ino for p in where.iterdir()}
    (where / "stage_common.py").write_text("damaged")
    shipping.ship_payloads(LocalRunner(), str(tmp_path), shipping.BUILD)
    after = {p.name: p.stat().st_ino for p in where.iterdir()}
    assert [n for n in after if after[n] != inodes[n]] == ["stage_common.py"]
    row = shipping.SHIPPED["stage_common.py"]
    assert (where / "stage_common.py").read_bytes() == row.local().read_bytes()


# ------------------------------------------------------------------ a real Pipes run


def _local_side(tmp_path: Path) -> HpcSide:
    dirs = {role: str(tmp_path / "beegfs" / role) for role in ("scripts", "jobs")}
    return HpcSide(mode="local", python=sys.executable, directories=dirs)


def _stage_files_asset(extras: dict[str, Any]) -> dg.AssetsDefinition:
    # bare `context`: dagster rejects its annotation as a string (__future__ annotations)
    @dg.asset(name="staged_files")
    def _asset(context, hpc: HpcSide) -> dg.MaterializeResult:  # type: ignore[no-untyped-def]
        done = hpc.login_client(timeout_s=120).run(
            context=context, payload="stage_files.py", extras=extras
        )
        return done.get_materialize_result()

    return _asset


def test_login_client_runs_a_shipped_payload_through_pipes(tmp_path: Path) -> None:
    source = tmp_path / "mirror"
    source.mkdir()
    (source / "train.py").write_text("print('train')\n")
    (source / "cfg.yaml").write_text("lr: 0.1\n")
    target = tmp_path / "beegfs" / "scripts" / "training"
    tree = {"source": str(source), "target": str(target), "digest": build_manifest(source).digest}
    hpc = _local_side(tmp_path)
    for changed in (1, 0):  # the second run finds the target verified and moves nothing
        result = dg.materialize([_stage_files_asset({"trees": [tree]})], resources={"hpc": hpc})
        meta = result.asset_materializations_for_node("staged_files")[0].metadata
        assert meta["file_count"].value == 2 and meta["targets_changed"].value == changed
    assert (target / "train.py").read_text() == "print('train')\n"
    assert not list((tmp_path / "beegfs" / "jobs" / "pipes").iterdir()), "message file removed"


def test_a_failing_payload_fails_the_asset_with_its_own_error(tmp_path: Path) -> None:
    source = tmp_path / "mirror"
    source.mkdir()
    (source / "a.py").write_text("a\n")
    tree = {"source": str(source), "target": str(tmp_path / "t"), "digest": "0" * 64}
    result = dg.materialize(
        [_stage_files_asset({"trees": [tree]})],
        resources={"hpc": _local_side(tmp_path)},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    data = failure.step_failure_data.user_failure_data
    assert data is not None and "stage_files.py on" in (data.description or "")
    assert "StagingError" in (data.description or "") and "does not hold" in (
        data.description or ""
    )


# ------------------------------------------------------------------ typed probe context


def test_probe_context_gives_typed_resources_and_names_a_missing_requires(
    catalog: Catalog,
) -> None:
    hpc = HpcSide.from_catalog(catalog)
    grafana = HttpServiceResource(url="http://127.0.0.1:1")
    ctx = ProbeContext(catalog, SimpleNamespace(hpc=hpc, grafana=grafana))
    assert ctx.hpc is hpc and ctx.grafana is grafana
    with pytest.raises(ProbeFailed, match="'s3' resource but its spec does not require it"):
        _ = ctx.s3
    wrong = ProbeContext(catalog, SimpleNamespace(s3=grafana))
    with pytest.raises(TypeError, match="'s3' is a HttpServiceResource, not S3Resource"):
        _ = wrong.s3
    s3 = S3Resource(endpoint_url="http://127.0.0.1:1", access_key_id="a", secret_access_key="b")
    assert ProbeContext(catalog, SimpleNamespace(s3=s3)).s3 is s3
