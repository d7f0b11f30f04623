"""Issue 16 items 1, 2 and 6 on the multi-node sandbox: four real slurmd daemons, each in its
own network and UTS namespace on the bridge mlb0 (deploy/sandbox/services/05-hpcnet.sh):
gpu-01/gpu-02 (gpu:h200:2), gpu-03 (gpu:h100:4), cpu-01 (partition dtn), gpu-04 FUTURE. Each
test drives a real fault with deploy/sandbox/node.sh and leaves every node back in service.
The slowed-node case (fleet outlier rule) is test_fleet_sandbox.py; the data-mover job on
cpu-01 is test_data_mover_sandbox.py."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.platform import active
from mlops_assets_tests.sandbox_nodes import node_sh, node_state, skip_or_fail

pytestmark = pytest.mark.sandbox

GPU_NODES = ["gpu-01", "gpu-02", "gpu-03"]
ALL_NODES = [*GPU_NODES, "cpu-01"]
IN_SERVICE = ("idle", "mixed", "allocated", "completing")


def wait_for(what: str, ok: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


def all_in_service() -> bool:
    return all(node_state(n) in IN_SERVICE for n in ALL_NODES)


@pytest.fixture
def cluster(sandbox: Path) -> Iterator[list[str]]:
    """The four nodes in service before and after each test, whatever the drill did."""
    states = {n: node_state(n) for n in ALL_NODES}
    if not all(states.values()):
        skip_or_fail(f"the multi-node sandbox is not up: sinfo shows {states}")
    yield ALL_NODES
    for n in ALL_NODES:
        subprocess.run(["ip", "link", "set", f"mlv-{n}", "up"], check=False)
    for n in GPU_NODES:
        if Path(f"/var/lib/mlops-assets/sandbox/etc/slurm-{n}").exists():
            node_sh("gres-reset", n)
    for n in ALL_NODES:
        if node_state(n) not in IN_SERVICE:
            node_sh("start", n)
    wait_for("every node back in service", all_in_service, 120)


def rows(res: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert res.stdout.strip(), f"no report (exit {res.returncode}): {res.stderr[-2000:]}"
    return {r["check"]: r for r in json.loads(res.stdout)["results"]}


def sensor_tick(cursor: str | None, instance: dg.DagsterInstance | None = None) -> dg.SensorResult:
    """One tick of the real node sensor; with `instance`, the partitions it asks to add are
    added there, as the daemon does between ticks."""
    from mlops_assets.defs.smoke.definitions import node_sensor
    from mlops_assets.platform import build_resources

    with dg.build_sensor_context(
        instance=instance or dg.DagsterInstance.ephemeral(),
        cursor=cursor,
        resources={"hpc": build_resources(active().catalog)["hpc"]},
    ) as ctx:
        out = node_sensor(active().catalog)(ctx)
    assert isinstance(out, dg.SensorResult)
    if instance is not None:
        for req in out.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    return out


def test_srun_over_four_nodes_runs_in_four_namespaces(cluster: list[str]) -> None:
    out = subprocess.run(
        ["srun", "-N", "4", "-p", "all", "--ntasks-per-node=1", "--label", "sh", "-c",
         'echo "$(hostname) $(ip -o -4 addr show eth0 | awk \'{print $4}\')"'],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    seen = dict(line.split(": ", 1)[1].split() for line in out.strip().splitlines())
    assert sorted(seen) == sorted(ALL_NODES), out
    addrs = [ipaddress.ip_interface(a) for a in seen.values()]
    assert len(set(addrs)) == 4 and all(
        a.ip in ipaddress.ip_network("10.77.0.0/24") for a in addrs
    ), out


def test_the_node_sensor_requests_exactly_the_changed_node(cluster: list[str]) -> None:
    from mlops_assets.defs.smoke.definitions import NODE_JOB

    base = sensor_tick(None)
    adds = [list(r.partition_keys) for r in base.dynamic_partitions_requests or []]
    assert adds == [GPU_NODES] and not base.run_requests, (adds, base.cursor)
    subprocess.run(
        ["scontrol", "update", "nodename=gpu-02", "state=drain", "reason=sensor test"], check=True
    )
    try:
        wait_for("gpu-02 drained", lambda: node_state("gpu-02").startswith("drain"), 30)
        drained = sensor_tick(base.cursor)
        assert not drained.run_requests
    finally:
        subprocess.run(["scontrol", "update", "nodename=gpu-02", "state=resume"], check=True)
    wait_for("gpu-02 in service", lambda: node_state("gpu-02") in IN_SERVICE, 30)
    back = sensor_tick(drained.cursor)
    reqs = back.run_requests or []
    assert [(r.job_name, r.partition_key, r.tags["mlops/trigger"]) for r in reqs] == [
        (NODE_JOB, "gpu-02", "resumed")
    ], "the resumed node's partition, and no other"


def test_per_node_smoke_covers_every_gpu_node(cluster: list[str], cli: Any, tmp_path: Path) -> None:
    res = cli(
        "materialize", "--select", "smoke_gpu", "--format", "json",
        env={"DAGSTER_HOME": str(tmp_path)}, timeout=600,
    )  # fmt: skip
    got = {(r["asset"], r["check"]): r for r in json.loads(res.stdout)["results"]}
    for node in GPU_NODES:
        row = got.get((f"smoke_gpu[{node}]", "materialized"))
        assert row is not None and row["passed"], (node, row, res.stdout[-2000:])
    assert not any(k[0] == "smoke_gpu[cpu-01]" for k in got), "the CPU node gets no GPU smoke"
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        for node in GPU_NODES:
            recs = inst.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("smoke_gpu"), asset_partitions=[node]),
                limit=1,
            ).records
            mat = recs[0].asset_materialization if recs else None
            assert mat is not None and mat.metadata["slurm_nodes"].value == node, node


def test_slurmd_killed_mid_job_fails_the_job_names_the_node_and_smoke_reruns(
    cluster: list[str], cli: Any
) -> None:
    base = sensor_tick(None)
    job = subprocess.run(
        ["sbatch", "--parsable", "--no-requeue", "-w", "gpu-01", "-o", "/dev/null",
         "--wrap", "sleep 300"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout.strip().split(";")[0]  # fmt: skip

    def job_state() -> str:
        return subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip

    try:
        wait_for(f"job {job} running", lambda: job_state() == "RUNNING", 60)
        node_sh("kill", "gpu-01")
        wait_for("gpu-01 DOWN", lambda: node_state("gpu-01").startswith("down"), 120)
        wait_for(f"job {job} failed", lambda: job_state() in ("NODE_FAIL", "FAILED"), 60)
        r = rows(cli("validate", "--select", "slurm", "--format", "json"))
        share = r["slurm_unavailable_nodes_within_limit"]
        assert not share["passed"] and share["nodes"] == ["gpu-01"], share
        assert "down" in share["detail"].lower(), share
        seen_down = sensor_tick(base.cursor)  # the daemon's tick while the node is down
        assert not seen_down.run_requests, "a DOWN node gets no smoke job"
    finally:
        subprocess.run(["scancel", job], check=False)
    node_sh("start", "gpu-01")
    wait_for("gpu-01 back", lambda: node_state("gpu-01") in IN_SERVICE, 60)
    # the sensor saw the node leave (cursor) and come back: the smoke for gpu-01 alone
    back = sensor_tick(seen_down.cursor)
    reqs = back.run_requests or []
    assert [r.partition_key for r in reqs] == ["gpu-01"], [r.tags for r in reqs]


def test_a_cut_link_on_one_node_is_named(cluster: list[str], cli: Any) -> None:
    node_sh("link-down", "gpu-02")
    try:
        wait_for("gpu-02 not responding", lambda: node_state("gpu-02").endswith("*"), 120)
        r = rows(cli("validate", "--select", "slurm", "--format", "json"))
        share = r["slurm_unavailable_nodes_within_limit"]
        assert not share["passed"] and share["nodes"] == ["gpu-02"], share
    finally:
        node_sh("link-up", "gpu-02")


def test_a_gres_mismatch_on_one_node_only_is_named(cluster: list[str], cli: Any) -> None:
    node_sh("gres", "gpu-03", "2")
    wait_for(
        "gpu-03 invalid",
        lambda: "inval" in node_state("gpu-03") or "drain" in node_state("gpu-03"),
        60,
    )
    r = rows(cli("validate", "--select", "slurm", "--format", "json"))
    g = r["slurm_gres_matches_catalog"]
    assert not g["passed"] and g["nodes"] == ["gpu-03"], g
    assert "lower than configured (2 < 4)" in g["detail"], g
    assert g["measured"] == 2 and g["threshold"] == 3, "gpu-01 and gpu-02 still match"


def test_an_added_node_is_picked_up_and_smoked_alone(cluster: list[str]) -> None:
    from mlops_assets.definitions import defs
    from mlops_assets.defs.smoke.definitions import GPU_NODES_NAME, NODE_JOB

    inst = dg.DagsterInstance.ephemeral()
    base = sensor_tick(None, inst)  # gpu-01..03 become partitions here
    node_sh("add", "gpu-04", timeout=180)
    try:
        wait_for("every node back after the controller restart", all_in_service, 120)
        tick = sensor_tick(base.cursor, inst)
        adds = [list(r.partition_keys) for r in tick.dynamic_partitions_requests or []]
        assert adds == [["gpu-04"]], adds
        reqs = tick.run_requests or []
        assert [(r.job_name, r.partition_key) for r in reqs] == [(NODE_JOB, "gpu-04")]
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(GPU_NODES_NAME, ["gpu-04"])
        result = (
            defs()
            .resolve_job_def(NODE_JOB)
            .execute_in_process(
                instance=instance,
                partition_key="gpu-04",
                tags=reqs[0].tags,
                raise_on_error=False,
            )
        )
        assert result.success
        for mat in result.get_asset_materialization_events():
            meta = mat.materialization.metadata
            assert meta["slurm_nodes"].value == "gpu-04", mat.asset_key
    finally:
        node_sh("remove", "gpu-04", timeout=180)
        wait_for("every node back after the controller restart", all_in_service, 120)
