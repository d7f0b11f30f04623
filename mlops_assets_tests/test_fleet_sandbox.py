"""Issue 16 items 4 and 5 on the sandbox's real SLURM: one node slowed down for real (a CPU
quota on its slurmd's cgroup, inherited by the slurmstepd and the job it forks; `taskset`
where no cgroup is writable) is named by the fleet check; the quarantine loop in dry-run says
what it would do and changes nothing; live, it drains the node, re-tests it in a MAINT
reservation once the slowdown is gone, and ends the reservation when it passes.

Node names are read from sinfo, never assumed. The fleet tests need at least 3 GPU nodes
(the multi-node sandbox of issue 16 item 1) and say so when the sandbox has fewer; the
drain/re-test/resume cycle on a failed smoke runs on any node count.

Live quarantine needs SLURM admin rights for the login user (`scontrol update nodename=` is
refused to Operator): the `admin_rights` fixture grants them for the test and puts the
previous level back."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core import quarantine as q
from mlops_assets.core.parse.slurm.nodes import SINFO_NODE_FORMAT, SlurmNode, parse_sinfo_nodes
from mlops_assets.defs.fleet import definitions as fleet_defs
from mlops_assets.defs.smoke.definitions import GPU_NODES_NAME, NODE_JOB, smoke_assets
from mlops_assets.platform import active, build_resources
from mlops_assets_tests.sandbox_nodes import skip_or_fail

pytestmark = pytest.mark.sandbox

PREFIX = "mlops_assets:"
CPU_FIGURE = "smoke_gpu.cpu_matmul_fp32_gflops"


def sh(*argv: str, check: bool = True) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {res.returncode}: {res.stderr[-500:]}")
    return res.stdout


def sinfo() -> dict[str, SlurmNode]:
    return {n.name: n for n in parse_sinfo_nodes(sh("sinfo", "-h", "-N", "-o", SINFO_NODE_FORMAT))}


def gpu_nodes(min_gpus: int = 1) -> list[str]:
    part = active().catalog.smoke.partition
    return sorted(n.name for n in sinfo().values() if part in n.partitions and n.gpus >= min_gpus)


def wait_for(pred: Any, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}: {sinfo()}")


def reservations() -> str:
    return sh("scontrol", "show", "reservation", check=False)


@pytest.fixture
def nodes_back(sandbox: Path) -> Iterator[None]:
    """Whatever a test did, every node this loop drained is resumed and its re-test
    reservations are gone afterwards."""
    yield
    for name in re.findall(r"ReservationName=(mlops_retest_\S+)", reservations()):
        sh("scontrol", "delete", f"reservationname={name}", check=False)
    for n in sinfo().values():
        if n.state.drain and n.reason and n.reason.text.startswith(PREFIX):
            sh("scontrol", "update", f"nodename={n.name}", "state=resume", check=False)


@pytest.fixture
def admin_rights(sandbox: Path) -> Iterator[str]:
    """The login user with AdminLevel=Admin for the test, its previous level put back."""
    user = active().catalog.hpc.access.login.user
    before = sh("sacctmgr", "-n", "-P", "show", "user", user, "format=adminlevel").strip()
    sh("sacctmgr", "-i", "modify", "user", user, "set", "adminlevel=admin")
    time.sleep(1)
    yield user
    level = {"Administrator": "admin", "Operator": "operator"}.get(before, "none")
    sh("sacctmgr", "-i", "modify", "user", user, "set", f"adminlevel={level}")


def slurmd_pid(node: str) -> int:
    """The node's slurmd: its pid file (`%n` expanded), else the process started with
    `-N <node>`, else the only slurmd there is."""
    conf = sh("scontrol", "show", "config")
    m = re.search(r"^SlurmdPidFile\s*=\s*(\S+)", conf, re.M)
    if m:
        path = Path(m.group(1).replace("%n", node).replace("%h", node))
        if path.is_file():
            pid = int(path.read_text().split()[0])
            if Path(f"/proc/{pid}").exists():
                return pid
    found: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"slurmd"):
            continue
        args = [a.decode() for a in argv]
        if "-N" in args and args[args.index("-N") + 1 : args.index("-N") + 2] == [node]:
            return int(proc.name)
        found.append(int(proc.name))
    assert len(found) == 1, f"no slurmd of {node} found (slurmd pids: {found})"
    return found[0]


@contextlib.contextmanager
def slowed(pid: int, share: float = 0.1) -> Iterator[str]:
    """Run `pid` (and what it forks from now on: slurmstepd and the job) on `share` of one
    CPU: a cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`, else `taskset` to one CPU."""
    period = 100_000
    v2 = Path("/sys/fs/cgroup")
    unified = v2 if (v2 / "cgroup.controllers").is_file() else v2 / "unified"
    v1 = next((p for p in (v2 / "cpu", v2 / "cpu,cpuacct") if p.is_dir()), None)
    own = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    if (unified / "cgroup.controllers").is_file() and "cpu" in (
        unified / "cgroup.subtree_control"
    ).read_text().split():
        before = next(line.split(":", 2)[2] for line in own if line.startswith("0::"))
        group = unified / f"mlops_fleet_slow_{pid}"
        group.mkdir(exist_ok=True)
        (group / "cpu.max").write_text(f"{int(period * share)} {period}")
        (group / "cgroup.procs").write_text(str(pid))
        try:
            yield f"cgroup v2 cpu.max {int(period * share)} {period}"
        finally:
            (unified / before.lstrip("/") / "cgroup.procs").write_text(str(pid))
            group.rmdir()
        return
    if v1 is not None:
        before = next(
            line.split(":", 2)[2] for line in own if "cpu" in line.split(":")[1].split(",")
        )
        group = v1 / f"mlops_fleet_slow_{pid}"
        group.mkdir(exist_ok=True)
        (group / "cpu.cfs_period_us").write_text(str(period))
        (group / "cpu.cfs_quota_us").write_text(str(int(period * share)))
        (group / "cgroup.procs").write_text(str(pid))
        try:
            yield f"cgroup v1 cpu.cfs_quota_us {int(period * share)}/{period}"
        finally:
            (v1 / before.lstrip("/") / "cgroup.procs").write_text(str(pid))
            group.rmdir()
        return
    mask = sh("taskset", "-p", str(pid)).split(":")[-1].strip()
    sh("taskset", "-a", "-p", "-c", "0", str(pid))
    try:
        yield "taskset to CPU 0"
    finally:
        sh("taskset", "-a", "-p", mask, str(pid))


def fleet_catalog(**quarantine: Any) -> Catalog:
    """The fleet rules tuned to a sandbox whose nodes share two cores with other work:
    measured on the single-node sandbox (2026-12-06), three unslowed runs of the same node
    gave 2.32, 5.15 and 2.56-2.63 GFLOP/s (so a healthy node may read half another's), a
    CPU quota of 10 % gave 0.55 (20 % gave 1.07, too close); the median rule is set at 35 %
    and the sigma rule out of the way. ERROR, so the quarantine's evidence counts it. The
    fake GPUs' CPU figures only."""
    cat = active().catalog
    figures = [f for f in cat.fleet.figures if f.key == "cpu_matmul_fp32_gflops"]
    qc = cat.fleet.quarantine.model_copy(
        update={
            "enabled": True,
            "checks": [f"{fleet_defs.ASSET}/{fleet_defs.PEERS_CHECK}"],
            "smoke_assets": ["smoke_gpu"],
            **quarantine,
        }
    )
    fleet = cat.fleet.model_copy(
        update={
            "severity": "ERROR",
            "sigma": 50.0,
            "min_fraction_of_median": 0.35,
            "figures": figures,
            "quarantine": qc,
        }
    )
    return cat.model_copy(update={"fleet": fleet})


def smoke(inst: dg.DagsterInstance, node: str, catalog: Catalog | None = None) -> bool:
    """The real per-node `smoke_gpu` for one node (a SLURM job through the login node)."""
    cat = catalog or active().catalog
    asset = next(a for a in smoke_assets(cat) if a.key.to_user_string() == "smoke_gpu")
    res = dg.materialize(
        [asset],
        resources={"hpc": build_resources(cat)["hpc"]},
        instance=inst,
        partition_key=node,
        raise_on_error=False,
    )
    return res.success


def baseline(inst: dg.DagsterInstance, cat: Catalog) -> dict[str, dg.AssetCheckEvaluation]:
    res = dg.materialize(
        [fleet_defs.baseline_asset(cat), fleet_defs.fleet_checks(cat)],
        resources={"hpc": build_resources(cat)["hpc"]},
        instance=inst,
    )
    return {e.check_name: e for e in res.get_asset_check_evaluations()}


def tick(inst: dg.DagsterInstance, cat: Catalog, cursor: str | None) -> fleet_defs.Tick:
    runner = build_resources(cat)["hpc"].runner()
    return fleet_defs.quarantine_tick(inst, runner, cat, cursor)


def run_request(inst: dg.DagsterInstance, req: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Execute a run the loop asked for, with the real job of the code location."""
    from mlops_assets.definitions import defs

    job = defs().resolve_job_def(req.job_name or "")
    return job.execute_in_process(
        instance=inst,
        run_config=req.run_config,
        partition_key=req.partition_key,
        tags=req.tags,
        raise_on_error=False,
    )


@pytest.fixture
def fleet_of_three(sandbox: Path) -> list[str]:
    nodes = gpu_nodes()
    if len(nodes) < 3:
        skip_or_fail(
            f"sinfo shows {len(nodes)} GPU node(s) ({', '.join(nodes)}); the fleet rule needs 3:"
            " this test runs on the multi-node sandbox (issue 16 item 1)"
        )
    return nodes


def test_a_slowed_node_is_named_and_the_quarantine_drains_re_tests_and_resumes_it(
    fleet_of_three: list[str], admin_rights: str, nodes_back: None
) -> None:
    nodes = fleet_of_three
    slow = next(n for n in gpu_nodes(min_gpus=2) if n in nodes)  # the node job needs 2 GPUs
    cat = fleet_catalog(max_drained_fraction=0.5, retest_after_minutes=0.05, dry_run=False)
    with dg.DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions(GPU_NODES_NAME, nodes)
        with slowed(slurmd_pid(slow)) as how:
            assert smoke(inst, slow), f"smoke on {slow} failed while slowed ({how})"
        for n in nodes:
            if n != slow:
                assert smoke(inst, n), f"smoke on {n} failed"
        checks = baseline(inst, cat)
        figures = fleet_defs.latest_metadata(inst)
        values = {n: figures.get(f"{CPU_FIGURE}@{n}") for n in nodes}
        peers = checks[fleet_defs.PEERS_CHECK]
        assert peers.metadata["nodes"].value == [slow], (how, values, peers.metadata)
        assert not peers.passed and peers.severity == dg.AssetCheckSeverity.ERROR
        assert slow in peers.metadata["detail"].value

        # dry-run: says what it would do, changes nothing
        before = {n.name: str(n.state) for n in sinfo().values()}
        dry = tick(inst, fleet_catalog(max_drained_fraction=0.5), None)
        (a,) = [x for x in dry.actions if x.node == slow]
        assert a.action == q.DRAIN and a.dry_run and not a.executed
        assert a.message.startswith(f"would drain {slow}")
        assert any(o.metadata["node"].value == slow for o in dry.observations)
        time.sleep(2)
        assert {n.name: str(n.state) for n in sinfo().values()} == before

        # live: drain for real, with the reason naming the check and the run
        live = tick(inst, cat, None)
        (a,) = [x for x in live.actions if x.node == slow]
        assert a.action == q.DRAIN and a.executed, a.outcome
        wait_for(lambda: sinfo()[slow].state.drain, f"{slow} drained")
        reason = sinfo()[slow].reason
        assert reason is not None and reason.text.startswith(
            f"{PREFIX} {fleet_defs.ASSET}/{fleet_defs.PEERS_CHECK} failed in run "
        )

        # the slowdown is gone; after retest_after_minutes the loop re-tests the node
        time.sleep(4)
        retest = tick(inst, cat, live.cursor)
        (a,) = [x for x in retest.actions if x.node == slow]
        assert a.action == q.RETEST and a.executed, a.outcome
        assert f"mlops_retest_{slow}" in reservations()
        (req,) = retest.requests
        assert run_request(inst, req).success
        recheck = tick(inst, cat, retest.cursor)
        assert [r.job_name for r in recheck.requests] == [fleet_defs.RECHECK_JOB]
        checks = baseline(inst, cat)  # what the recheck job runs, with this test's rules
        assert checks[fleet_defs.PEERS_CHECK].passed, checks[fleet_defs.PEERS_CHECK].metadata
        done = tick(inst, cat, recheck.cursor)
        (a,) = [x for x in done.actions if x.node == slow]
        assert a.action == q.RESUME and a.executed, a.outcome
        wait_for(lambda: sinfo()[slow].state.healthy, f"{slow} back in service")
        assert f"mlops_retest_{slow}" not in reservations()


def test_failed_smoke_drains_the_node_and_a_passing_re_test_resumes_it(
    sandbox: Path, admin_rights: str, nodes_back: None
) -> None:
    """Any node count: the GPUs declared real make the smoke fail for real (no CUDA
    device); the loop drains that node, re-tests it in its reservation with the sandbox's
    catalog (fake GPUs: the smoke passes on the CPU) and ends the reservation."""
    node = gpu_nodes(min_gpus=2)[0]
    total = len([n for n in sinfo().values() if active().catalog.smoke.partition in n.partitions])
    cat = fleet_catalog(
        max_drained_fraction=1.0, retest_after_minutes=0.05, checks=[], dry_run=False
    )
    real = cat.model_copy(
        update={
            "hpc": cat.hpc.model_copy(
                update={"gpus": cat.hpc.gpus.model_copy(update={"fake": False})}
            )
        }
    )
    with dg.DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions(GPU_NODES_NAME, [node])
        assert not smoke(inst, node, real)
        dry = tick(inst, fleet_catalog(max_drained_fraction=1.0, checks=[]), None)
        (a,) = dry.actions
        assert (a.node, a.action, a.dry_run, a.executed) == (node, q.DRAIN, True, False)
        live = tick(inst, cat, None)
        (a,) = live.actions
        assert a.action == q.DRAIN and a.executed, a.outcome
        assert a.reason.startswith(f"{PREFIX} smoke_gpu failed in run ")
        wait_for(lambda: sinfo()[node].state.drain, f"{node} drained ({total} nodes)")
        held = tick(inst, cat, live.cursor)
        assert [x.action for x in held.actions] == [q.HOLD]
        time.sleep(4)
        retest = tick(inst, cat, held.cursor)
        (a,) = retest.actions
        assert a.action == q.RETEST and a.executed, a.outcome
        wait_for(lambda: not sinfo()[node].state.drain, f"{node} open for its re-test")
        (req,) = retest.requests
        assert req.job_name == NODE_JOB and req.partition_key == node
        result = run_request(inst, req)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        done = tick(inst, cat, retest.cursor)
        (a,) = done.actions
        assert a.action == q.RESUME and a.executed, a.outcome
        assert f"mlops_retest_{node}" not in reservations()
        assert sinfo()[node].state.healthy


def test_metrics_of_a_tick_reach_the_sandbox_pushgateway(sandbox: Path) -> None:
    from mlops_assets.core.transport.http import request

    cat = active().catalog
    url = cat.cloud.services.prometheus.pushgateway_url
    assert url, "the sandbox catalog names a Pushgateway"
    acts = [q.Action("fleet-test-node", q.HOLD, "m", dry_run=True, source="smoke_gpu")]
    t = fleet_defs.Tick(acts, [], "{}", {"fleet-test-partition": 0})
    assert fleet_defs.push_metrics(cat, t, url, 10, time.time()) == 2
    body = request(url.rstrip("/") + "/metrics", timeout_s=10).text
    assert 'mlops_quarantine_action_timestamp_seconds{action="hold"' in body
    assert 'node="fleet-test-node"' in body
