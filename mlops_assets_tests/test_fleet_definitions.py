"""defs/fleet against a real Dagster instance: per-node smoke results recorded in the event
log (as the smoke jobs record them: one materialization per node partition, the figures as
metadata) become `fleet_baseline`'s bounded history; its checks name the slow node; the
quarantine tick reads a real failed smoke partition and decides. SLURM is a stand-in here
(a `sinfo` printing fixed rows, a `scontrol` recording its argv, on PATH); the real one is in
test_fleet_sandbox.py."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core import quarantine as q
from mlops_assets.core.transport.hostexec import LocalRunner
from mlops_assets.defs.fleet import definitions as fleet_defs
from mlops_assets.defs.smoke.definitions import GPU_NODES, GPU_NODES_NAME
from mlops_assets.platform import active

FIG = "smoke_gpu.cpu_matmul_fp32_gflops"


class _Hpc(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The hpc resource's one method the fleet uses, over a local runner (the stand-in
    commands on PATH)."""

    def runner(self) -> LocalRunner:
        return LocalRunner()


def catalog(**fleet: Any) -> Catalog:
    """The active catalog with the schema's default fleet rules (not the sandbox profile's,
    which are loosened for its shared cores), changed by `fleet`."""
    from mlops_assets.catalog.schema import Fleet

    return active().catalog.model_copy(update={"fleet": Fleet(**fleet)})


def record_smoke(inst: dg.DagsterInstance, values: dict[str, Any], key: str = "smoke_gpu") -> None:
    for node, v in values.items():
        inst.report_runless_asset_event(
            dg.AssetMaterialization(
                key, partition=node, metadata={"cpu_matmul_fp32_gflops": v, "slurm_node": node}
            )
        )


def materialize(inst: dg.DagsterInstance, cat: Catalog) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [fleet_defs.baseline_asset(cat), fleet_defs.fleet_checks(cat)],
        instance=inst,
        resources={"hpc": _Hpc()},
        raise_on_error=True,
    )


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture
def inst() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as i:
        i.add_dynamic_partitions(GPU_NODES_NAME, ["n1", "n2", "n3", "n4"])
        yield i


def test_slow_node_is_named_history_grows_bounded_and_is_read_back(
    inst: dg.DagsterInstance,
) -> None:
    cat = catalog(history_length=11)
    record_smoke(inst, {"n1": 2.2, "n2": 2.1, "n3": 2.2, "n4": 0.45})
    res = materialize(inst, cat)
    ev = checks(res)
    peers = ev[fleet_defs.PEERS_CHECK]
    assert not peers.passed and peers.severity == dg.AssetCheckSeverity.WARN
    assert peers.metadata["nodes"].value == ["n4"]
    assert "n4" in peers.metadata["detail"].value and "CPU quota" in peers.metadata["hint"].value
    own = ev[fleet_defs.OWN_CHECK]
    assert not own.passed and own.metadata["measured"].value == "unjudged"
    md = fleet_defs.latest_metadata(inst)
    assert md[f"{FIG}@n4"] == 0.45 and md["named@n4"] == 1 and md["named@n1"] == 0
    assert md["new_figures"] == 4 and md["nodes"] == 4
    # nothing new: the cursor keeps old events from being counted twice
    materialize(inst, cat)
    assert fleet_defs.latest_metadata(inst)["new_figures"] == 0
    for _ in range(12):
        record_smoke(inst, {"n1": 2.2, "n2": 2.1, "n3": 2.2, "n4": 2.15})
    res = materialize(inst, cat)
    md = fleet_defs.latest_metadata(inst)
    assert [len(md["history"][FIG][n]) for n in ("n1", "n4")] == [11, 11]
    ev = checks(res)
    assert ev[fleet_defs.PEERS_CHECK].passed and ev[fleet_defs.OWN_CHECK].passed


def test_a_node_below_its_own_past_and_error_severity_from_the_catalog(
    inst: dg.DagsterInstance,
) -> None:
    cat = catalog(severity="ERROR")
    for _ in range(4):
        record_smoke(inst, {"n1": 2.2, "n2": 2.1, "n3": 2.2})
    record_smoke(inst, {"n3": 1.6})
    ev = checks(materialize(inst, cat))
    own = ev[fleet_defs.OWN_CHECK]
    assert not own.passed and own.severity == dg.AssetCheckSeverity.ERROR
    assert own.metadata["nodes"].value == ["n3"]
    # 1.6 of 2.2 and 2.1 is 74 % of the median: the peers rule names it too
    assert ev[fleet_defs.PEERS_CHECK].metadata["nodes"].value == ["n3"]


def test_nan_figure_is_unmeasured_and_too_few_nodes_is_a_warn(inst: dg.DagsterInstance) -> None:
    record_smoke(inst, {"n1": 2.2, "n2": float("nan")})
    peers = checks(materialize(inst, catalog()))[fleet_defs.PEERS_CHECK]
    assert not peers.passed and peers.severity == dg.AssetCheckSeverity.WARN
    assert "cannot be judged" in peers.metadata["detail"].value
    assert "n2" in peers.metadata["detail"].value
    # n2's newest result is still no measurement on the next run; a valid one clears it
    record_smoke(inst, {"n3": 2.2, "n4": 2.1})
    peers = checks(materialize(inst, catalog()))[fleet_defs.PEERS_CHECK]
    assert peers.metadata["nodes"].value == ["n2"] and "no valid figure" in (
        peers.metadata["detail"].value
    )
    record_smoke(inst, {"n2": 2.15})
    assert checks(materialize(inst, catalog()))[fleet_defs.PEERS_CHECK].passed


def test_checks_alone_judge_the_recorded_history(inst: dg.DagsterInstance) -> None:
    cat = catalog()
    record_smoke(inst, {"n1": 2.2, "n2": 2.1, "n3": 2.2, "n4": 0.45})
    materialize(inst, cat)
    job = dg.define_asset_job(
        "only_checks",
        selection=dg.AssetSelection.checks(
            dg.AssetCheckKey(dg.AssetKey(fleet_defs.ASSET), fleet_defs.PEERS_CHECK)
        ),
    )
    d = dg.Definitions(
        assets=[fleet_defs.baseline_asset(cat)],
        asset_checks=[fleet_defs.fleet_checks(cat)],
        jobs=[job],
        resources={"hpc": _Hpc()},
    )
    res = d.resolve_job_def("only_checks").execute_in_process(instance=inst)
    assert not res.get_asset_materialization_events()
    (peers,) = res.get_asset_check_evaluations()
    assert peers.metadata["nodes"].value == ["n4"]


# ------------------------------------------------------------------------- quarantine


@pytest.fixture
def slurm_standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`sinfo` prints the rows in sinfo.txt; `scontrol` appends its argv to calls.jsonl."""
    (tmp_path / "sinfo.txt").write_text("")
    for name, body in {
        "sinfo": f"import sys; sys.stdout.write(open({str(tmp_path / 'sinfo.txt')!r}).read())",
        "scontrol": "import json, sys\n"
        f"open({str(tmp_path / 'calls.jsonl')!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')",
    }.items():
        script = tmp_path / name
        script.write_text(f"#!/usr/bin/env python3\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def smoke_run(inst: dg.DagsterInstance, node: str, fail: bool) -> str:
    """A real run of a per-node `smoke_gpu` partition that fails or materializes."""

    @dg.asset(name="smoke_gpu", partitions_def=GPU_NODES)
    def smoke_gpu() -> dg.MaterializeResult:
        if fail:
            raise RuntimeError("no CUDA device")
        return dg.MaterializeResult(metadata={"cpu_matmul_fp32_gflops": 2.2})

    res = dg.materialize([smoke_gpu], instance=inst, partition_key=node, raise_on_error=False)
    return res.run_id


ROWS = [
    "n1|gpu*|idle|2|4000|gpu:h200:2|none",
    "n2|gpu*|idle|2|4000|gpu:h200:2|none",
    "n3|gpu*|idle|2|4000|gpu:h200:2|none",
    "n4|gpu*|idle|2|4000|gpu:a100:4|none",
]


def quarantine_catalog(**qc: Any) -> Catalog:
    cat = active().catalog
    quarantine = cat.fleet.quarantine.model_copy(update={"enabled": True, **qc})
    return cat.model_copy(update={"fleet": cat.fleet.model_copy(update={"quarantine": quarantine})})


def test_quarantine_dry_run_says_what_it_would_do_and_runs_nothing(
    inst: dg.DagsterInstance, slurm_standin: Path
) -> None:
    (slurm_standin / "sinfo.txt").write_text("\n".join(ROWS) + "\n")
    for n in ("n1", "n2", "n4"):
        smoke_run(inst, n, fail=False)
    failed = smoke_run(inst, "n3", fail=True)
    tick = fleet_defs.quarantine_tick(inst, LocalRunner(), quarantine_catalog(), None, now=1e10)
    (a,) = tick.actions
    assert a.node == "n3" and a.action == q.DRAIN and a.dry_run and not a.executed
    assert a.reason == f"mlops_assets: smoke_gpu failed in run {failed}"
    (obs,) = tick.observations
    assert obs.metadata["mode"].value == "dry_run" and obs.metadata["action"].value == "drain"
    assert "would drain n3" in obs.metadata["message"].value
    assert obs.metadata["commands"].value.startswith("scontrol update nodename=n3 state=drain")
    assert not (slurm_standin / "calls.jsonl").exists()
    # the same decision next tick is not reported again
    again = fleet_defs.quarantine_tick(inst, LocalRunner(), quarantine_catalog(), tick.cursor)
    assert again.observations == [] and [x.action for x in again.actions] == [q.DRAIN]


def test_quarantine_live_drains_then_resumes_its_own_node_after_a_newer_pass(
    inst: dg.DagsterInstance, slurm_standin: Path
) -> None:
    cat = quarantine_catalog(dry_run=False)
    (slurm_standin / "sinfo.txt").write_text("\n".join(ROWS) + "\n")
    failed = smoke_run(inst, "n3", fail=True)
    tick = fleet_defs.quarantine_tick(inst, LocalRunner(), cat, None)
    assert [(a.node, a.action, a.executed) for a in tick.actions] == [("n3", q.DRAIN, True)]
    assert tick.drained == {"gpu": 1}
    calls = [json.loads(x) for x in (slurm_standin / "calls.jsonl").read_text().splitlines()]
    assert calls == [
        [
            "update",
            "nodename=n3",
            "state=drain",
            f"reason=mlops_assets: smoke_gpu failed in run {failed}",
        ]
    ]
    # SLURM now shows the drain; a tick before any new result holds it
    rows = [*ROWS[:2], f"n3|gpu*|drained|2|4000|gpu:h200:2|{calls[0][3][7:]}", ROWS[3]]
    (slurm_standin / "sinfo.txt").write_text("\n".join(rows) + "\n")
    held = fleet_defs.quarantine_tick(inst, LocalRunner(), cat, tick.cursor)
    assert [(a.node, a.action) for a in held.actions] == [("n3", q.HOLD)]
    passed = smoke_run(inst, "n3", fail=False)
    resumed = fleet_defs.quarantine_tick(inst, LocalRunner(), cat, held.cursor)
    (a,) = resumed.actions
    assert (a.node, a.action, a.executed, a.run_id) == ("n3", q.RESUME, True, passed)
    assert json.loads((slurm_standin / "calls.jsonl").read_text().splitlines()[-1]) == [
        "update",
        "nodename=n3",
        "state=resume",
    ]
    assert resumed.observations[0].metadata["mode"].value == "live"


def test_quarantine_never_resumes_someone_elses_drain(
    inst: dg.DagsterInstance, slurm_standin: Path
) -> None:
    rows = [*ROWS[:2], "n3|gpu*|drained|2|4000|gpu:h200:2|admin: fan failure", ROWS[3]]
    (slurm_standin / "sinfo.txt").write_text("\n".join(rows) + "\n")
    smoke_run(inst, "n3", fail=False)
    tick = fleet_defs.quarantine_tick(inst, LocalRunner(), quarantine_catalog(dry_run=False), None)
    assert tick.actions == [] and not (slurm_standin / "calls.jsonl").exists()


def test_quarantine_re_test_asks_for_the_node_smoke_in_its_reservation(
    inst: dg.DagsterInstance, slurm_standin: Path
) -> None:
    """A node this loop drained an hour ago: reservation + resume, then the node job for
    that partition with the reservation in a run config the real job accepts."""
    cat = quarantine_catalog(dry_run=False, retest_after_minutes=60)
    reason = "mlops_assets: smoke_gpu failed in run r1"
    rows = [*ROWS[:2], f"n3|gpu*|drained|2|4000|gpu:h200:2|{reason}", ROWS[3]]
    (slurm_standin / "sinfo.txt").write_text("\n".join(rows) + "\n")
    cursor = json.dumps({"drained_at": {"n3": 1000.0}})
    tick = fleet_defs.quarantine_tick(inst, LocalRunner(), cat, cursor, now=1000.0 + 3601)
    (a,) = tick.actions
    assert a.action == q.RETEST and a.executed
    calls = [json.loads(x) for x in (slurm_standin / "calls.jsonl").read_text().splitlines()]
    assert calls[0][:3] == ["create", "reservation", "reservationname=mlops_retest_n3"]
    assert f"users={cat.hpc.access.login.user}" in calls[0]
    assert calls[1] == ["update", "nodename=n3", "state=resume"]
    (req,) = tick.requests
    assert req.partition_key == "n3" and req.job_name == "smoke_gpu_node"
    from mlops_assets.definitions import defs

    job = defs().resolve_job_def("smoke_gpu_node")
    assert dg.validate_run_config(job, req.run_config)["ops"]["smoke_gpu"]["config"] == {
        "node": "",
        "reattach": False,
        "reservation": "mlops_retest_n3",
        "retrain": False,  # a run in a reservation always trains (defs/smoke)
    }
    assert json.loads(tick.cursor)["retesting"]["n3"]["reservation"] == "mlops_retest_n3"


def test_quarantine_metrics_one_group_per_node_and_partition() -> None:
    from mlops_assets.core.metrics import quarantine_groups, quarantine_samples

    acts = [q.Action("n3", q.DRAIN, "m", dry_run=False, executed=True, source="smoke_gpu")]
    samples = quarantine_samples("slurm_node_quarantine", acts, {"gpu": 1}, timestamp=5.0)
    groups = quarantine_groups(samples)
    assert len(groups) == 2
    body = "".join(groups.values())
    assert (
        'mlops_quarantine_action_timestamp_seconds{action="drain",asset="slurm_node_quarantine",'
        'executed="true",mode="live",node="n3",source="smoke_gpu"} 5'
    ) in body
    assert 'mlops_quarantine_drained_nodes{asset="slurm_node_quarantine",partition="gpu"} 1' in body


def test_a_re_test_smoke_job_is_submitted_into_its_reservation() -> None:
    from mlops_assets.core.slurm_jobs import Resources, render_script
    from mlops_assets.resources.hpc import HpcSide

    hpc = HpcSide.from_catalog(active().catalog)
    res = Resources(gpus=1, nodelist="n3", reservation="mlops_retest_n3")
    spec = hpc.smoke_client(res).job_spec("gpu_smoke.py", "/tmp/x", "/tmp/x/job", {})
    assert "#SBATCH --reservation=mlops_retest_n3\n" in render_script(spec)
    plain = hpc.smoke_client(Resources(gpus=1)).job_spec("gpu_smoke.py", "/tmp/x", "/tmp/x/job", {})
    assert "--reservation" not in render_script(plain)


def test_headless_materialize_runs_what_reads_every_partition_after_the_partitions() -> None:
    """`mlops-assets materialize`: the fleet baseline reads every node's smoke, so it (and
    its checks) run after the per-node runs of the same invocation, not before them."""
    from mlops_assets import headless

    parts = dg.DynamicPartitionsDefinition(name="fleet_test_nodes")

    @dg.asset(partitions_def=parts)
    def per_node() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"figure": 1.0})

    @dg.asset(deps=[per_node])
    def summary(context) -> dg.MaterializeResult:  # type: ignore[no-untyped-def]  # dagster reads
        seen = context.instance.fetch_materializations(dg.AssetKey("per_node"), limit=10)
        return dg.MaterializeResult(metadata={"seen": len(seen.records)})

    @dg.asset
    def unrelated() -> None:
        return None

    d = dg.Definitions(assets=[per_node, summary, unrelated])
    with dg.DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions("fleet_test_nodes", ["a", "b", "c"])
        rows, _ = headless.execute(d, headless.select(d, []), materialize=True, inst=inst)
        ev = inst.get_latest_materialization_event(dg.AssetKey("summary"))
        assert ev is not None and ev.asset_materialization is not None
        assert ev.asset_materialization.metadata["seen"].value == 3
    done = {(r.asset, r.passed) for r in rows}
    assert {("summary", True), ("unrelated", True), ("per_node[a]", True)} <= done


@pytest.mark.parametrize("severity", ["ERROR", "WARN"])
def test_quarantine_acts_on_an_error_check_naming_a_node_never_on_a_warn(
    inst: dg.DagsterInstance, slurm_standin: Path, severity: str
) -> None:
    (slurm_standin / "sinfo.txt").write_text("\n".join(ROWS) + "\n")
    record_smoke(inst, {"n1": 2.2, "n2": 2.1, "n3": 0.4, "n4": 2.2})
    res = materialize(inst, catalog(severity=severity))
    tick = fleet_defs.quarantine_tick(inst, LocalRunner(), quarantine_catalog(), None)
    if severity == "WARN":
        assert tick.actions == []
        return
    (a,) = tick.actions
    assert (a.node, a.action, a.source) == (
        "n3",
        q.DRAIN,
        "fleet_baseline/fleet_nodes_within_peers",
    )
    assert a.reason.endswith(f"failed in run {res.run_id}")
