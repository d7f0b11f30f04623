"""Issue #7 on the sandbox, end to end and for real: Apptainer 1.4.5 (Debian sid's package,
deploy/sandbox/services/56-apptainer.sh) run as the training user over SSH, pulling the
REGISTRY STAND-IN (an OCI layout of this machine's python3; no registry is reachable here) on
the login node and building the oumi STAND-IN definition with --fakeroot as a real SLURM job.
GPUs are fake in the sandbox: the --nv checks fail honestly at WARN with 0 GPUs inside."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from mlops_assets.catalog.loader import DEFAULT_CATALOG
from mlops_assets.resources.hpc import HpcSide

CONTAINERS = Path("/mnt/sandbox-beegfs/containers")
PYTORCH = CONTAINERS / "pytorch_24.07-py3.sif"
OUMI = CONTAINERS / "oumi_latest.sif"
ASSETS = ("container_pytorch_24_07", "container_oumi")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def catalog_with(tmp_path: Path, **containers: dict[str, Any]) -> Path:
    """The shipped catalog with the sandbox profile's container entries overridden."""
    data = yaml.safe_load(DEFAULT_CATALOG.read_text())
    for name, fields in containers.items():
        data["profiles"]["sandbox"]["containers"][name].update(fields)
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def session(sandbox: Path, cli_session, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    s = cli_session(tmp_path_factory.mktemp("containers-home"))
    rows, res = s.run("materialize", *ASSETS)
    for asset in ASSETS:
        assert rows[(asset, "materialized")]["passed"], res.stdout[-3000:]
    return s


def test_images_are_pulled_and_built_for_real_and_checked(session) -> None:  # type: ignore[no-untyped-def]
    rows, _ = session.run("validate", *ASSETS)
    for name in ("pytorch_24_07", "oumi"):
        for check in ("is_valid_sif", "matches_its_record", "framework_versions"):
            assert rows[(f"container_{name}", f"container_{name}_{check}")]["passed"], rows[
                (f"container_{name}", f"container_{name}_{check}")
            ]
        nv = rows[(f"container_{name}", f"container_{name}_sees_allocated_gpu_with_nv")]
        assert not nv["passed"] and nv["severity"] == "WARN" and nv["measured"] == 0
        assert "nvidia-smi" in nv["detail"] and "fake" in nv["hint"]
    for path in (PYTORCH, OUMI):
        assert path.read_bytes()[32:41] == b"SIF_MAGIC"
        assert path.stat().st_uid != 0, "built as the training user, not root"


def test_metadata_says_what_was_measured(session) -> None:  # type: ignore[no-untyped-def]
    pulled = session.metadata("container_pytorch_24_07")
    assert pulled["apptainer_version"] == "1.4.5" and pulled["kind"] == "pull"
    assert pulled["sha256"] == sha256(PYTORCH) and pulled["size_bytes"] == PYTORCH.stat().st_size
    assert pulled["labels"]["org.mlops-assets.standin"] == "true"
    assert pulled["frameworks"]["dagster-pipes"].startswith("1.")
    built = session.metadata("container_oumi")
    assert built["kind"] == "build" and built["source"] == "containers/oumi-standin.def"
    assert built["labels"]["org.label-schema.usage.singularity.deffile.bootstrap"] == "localimage"
    assert built["labels"]["org.mlops-assets.oumi-version"] == "0.9"
    assert built["slurm_state"] == "COMPLETED", "where: slurm builds in a real SLURM job"


def test_unchanged_sources_are_a_no_op(session) -> None:  # type: ignore[no-untyped-def]
    before = {p: (sha256(p), p.stat().st_mtime_ns) for p in (PYTORCH, OUMI)}
    rows, _ = session.run("materialize", *ASSETS)
    assert all(rows[(a, "materialized")]["passed"] for a in ASSETS)
    for asset in ASSETS:
        meta = session.metadata(asset)
        assert meta["changed"] is False and meta["bytes_written"] == 0
    assert before == {p: (sha256(p), p.stat().st_mtime_ns) for p in (PYTORCH, OUMI)}


def test_unreachable_registry_fails_clearly_and_keeps_the_image(session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = sha256(PYTORCH)
    cat = catalog_with(
        tmp_path,
        pytorch_24_07={"source": {"pull": "docker://127.0.0.1:1/nvidia/pytorch:24.07-py3"}},
    )
    rows, res = session.run("materialize", "container_pytorch_24_07", catalog=cat)
    row = rows[("container_pytorch_24_07", "materialized")]
    assert not row["passed"] and res.returncode == 1
    assert "connection refused" in row["detail"] and "registry is unreachable" in row["detail"]
    assert sha256(PYTORCH) == before
    assert not [p.name for p in CONTAINERS.iterdir() if ".tmp-" in p.name or ".def-" in p.name]


def test_corrupt_image_fails_its_checks_by_name_and_rematerializing_repairs_it(session) -> None:  # type: ignore[no-untyped-def]
    published = sha256(PYTORCH)
    subprocess.run(
        [
            "dd",
            "if=/dev/zero",
            f"of={PYTORCH}",
            "bs=1",
            "seek=32",
            "count=9",
            "conv=notrunc",
            "status=none",
        ],
        check=True,
    )
    rows, _ = session.run("validate", "container_pytorch_24_07")
    valid = rows[("container_pytorch_24_07", "container_pytorch_24_07_is_valid_sif")]
    assert not valid["passed"] and str(PYTORCH) in valid["hint"]
    assert not rows[("container_pytorch_24_07", "container_pytorch_24_07_matches_its_record")][
        "passed"
    ]
    rows, _ = session.run("materialize", *ASSETS)
    assert rows[("container_pytorch_24_07", "container_pytorch_24_07_is_valid_sif")]["passed"]
    assert session.metadata("container_pytorch_24_07")["changed"] is True
    # Apptainer's cache gives back the same bytes for the same OCI digest: the image built on
    # it is rebuilt exactly when its base's sha256 moved
    assert session.metadata("container_oumi")["changed"] is (sha256(PYTORCH) != published)


def test_a_definition_change_rebuilds(session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cat = catalog_with(
        tmp_path,
        oumi={
            "source": {
                "build": "containers/oumi-standin.def",
                "bootstrap_from": "pytorch_24_07",
                "args": {"oumi_version": "1.0"},
            }
        },
    )
    rows, _ = session.run("materialize", "container_oumi", catalog=cat)
    assert rows[("container_oumi", "materialized")]["passed"]
    meta = session.metadata("container_oumi")
    assert meta["changed"] is True and meta["labels"]["org.mlops-assets.oumi-version"] == "1.0"
    rows, _ = session.run("materialize", "container_oumi")  # back to the catalog's pin
    assert session.metadata("container_oumi")["labels"]["org.mlops-assets.oumi-version"] == "0.9"


def test_a_smoke_payload_runs_inside_the_image_through_slurm(session) -> None:  # type: ignore[no-untyped-def]
    """The smoke client's container path for real: sbatch → `apptainer exec --nv --bind
    <BeeGFS> <image> python3 payload.py` on the compute node → Pipes messages back."""
    from mlops_assets.core.slurm_jobs import Resources
    from mlops_assets.platform import active

    # the smoke placement with this image, whatever the catalog's smoke.container says (a
    # resource's config is what a run gets: model_copy(update=) would not reach the run)
    config = HpcSide.from_catalog(active().catalog).model_dump()
    hpc = HpcSide(**{**config, "smoke_container": str(PYTORCH)})

    # bare `context`: dagster rejects its annotation as a string (__future__ annotations)
    @dg.asset(name="probe_in_container")
    def _probe(context, hpc: HpcSide) -> dg.MaterializeResult:  # type: ignore[no-untyped-def]
        client = hpc.smoke_client(Resources(gpus=1, cpus=1, mem_mb=200, time_limit_min=2))
        return client.run(
            context=context, payload="slurm_probe.py", extras={"message": "in container"}
        ).get_materialize_result()

    result = dg.materialize([_probe], resources={"hpc": hpc}, raise_on_error=False)
    assert result.success, [
        e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    ]
    meta = {
        k: v.value
        for k, v in result.asset_materializations_for_node("probe_in_container")[0].metadata.items()
    }
    assert meta["container"] == PYTORCH.name and meta["slurm_state"] == "COMPLETED"
    assert "gres/gpu=1" in meta["slurm_alloc_tres"]
