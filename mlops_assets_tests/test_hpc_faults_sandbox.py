"""Issue #4's fault scenarios on the sandbox's real SLURM, real sshd and the ext4 loop mount
standing in for BeeGFS: each fault fails exactly the checks it should, with the figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SANDBOX = REPO / "deploy" / "sandbox" / "sandbox.sh"
BEEGFS = Path("/mnt/sandbox-beegfs")
# the multi-node sandbox's GPU partition (deploy/sandbox/slurm.inc.sh): draining all of it is
# the "no GPU node in service" case; ALL adds the data mover
GPU_NODES = ["gpu-01", "gpu-02", "gpu-03"]
GPU = "gpu-[01-03]"
ALL = "gpu-[01-03],cpu-01"


def rows(res: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    assert res.stdout.strip(), f"no report (exit {res.returncode}): {res.stderr[-2000:]}"
    return {r["check"]: r for r in json.loads(res.stdout)["results"]}


def sandbox_up() -> None:
    subprocess.run(["bash", str(SANDBOX), "up"], check=True, capture_output=True, timeout=600)


def wait_node(state_word: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T|%E"], capture_output=True, text=True, check=False
        ).stdout
        if state_word in out.lower():
            return out
        time.sleep(1)
    raise AssertionError(f"node never reached {state_word!r}: {out}")


def resume() -> None:
    """Every node back in service (any node not idle is resumed: one idle node is not enough)."""
    states = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, check=False
    ).stdout.split()
    if any(st != "idle" for st in states):
        subprocess.run(
            ["scontrol", "update", f"nodename={ALL}", "state=resume"],
            capture_output=True,
            check=False,
        )
    wait_node("idle|")


@pytest.fixture
def healthy(sandbox: Path) -> Iterator[Path]:
    """Every fault test starts from, and leaves behind, a healthy sandbox."""
    resume()
    yield sandbox
    sandbox_up()
    resume()


def test_drain_then_resume(healthy: Path, cli) -> None:  # type: ignore[no-untyped-def]
    subprocess.run(
        ["scontrol", "update", f"nodename={GPU}", "state=drain", "reason=bad DIMM"], check=True
    )
    try:
        r = rows(cli("validate", "--select", "slurm", "gpu_nodes", "--format", "json"))
        share = r["slurm_unavailable_nodes_within_limit"]
        assert not share["passed"] and share["nodes"] == GPU_NODES and "bad DIMM" in share["detail"]
        assert (
            share["measured"] == 1.0 and share["severity"] == "ERROR"
        )  # above max_unavailable_fraction (issue 15)
        assert (
            not r["gpu_count_at_least_minimum"]["passed"]
            and r["gpu_count_at_least_minimum"]["measured"] == 0
        )
        assert r["slurm_gres_matches_catalog"]["passed"], (
            "a drain for another reason is not a GRES mismatch"
        )
    finally:
        resume()
    r = rows(cli("validate", "--select", "slurm", "gpu_nodes", "--format", "json"))
    assert (
        r["slurm_unavailable_nodes_within_limit"]["passed"]
        and r["gpu_count_at_least_minimum"]["passed"]
    )


def test_busy_node_is_not_unavailable(healthy: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """A node fully allocated to a job is in service: the unavailable-share and GPU-count
    checks pass while it is busy."""
    job = (
        subprocess.run(
            ["sbatch", "--parsable", "--exclusive", "-o", "/dev/null", "--wrap", "sleep 120"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .split(";")[0]
    )
    try:
        wait_node("allocated|")
        r = rows(cli("validate", "--select", "slurm", "--format", "json"))
        assert r["slurm_unavailable_nodes_within_limit"]["passed"], r[
            "slurm_unavailable_nodes_within_limit"
        ]
        assert r["slurm_unavailable_nodes_within_limit"]["measured"] == 0.0
        # the GPU count rule on this (HPC-side) host's real sinfo, while the node is still busy
        # (the gpu_nodes asset's nvidia-smi step would queue behind the job)
        from mlops_assets.core.probes.hpc import total_gpus
        from mlops_assets.core.transport.hostexec import LocalRunner
        from mlops_assets.platform import active

        assert "allocated" in wait_node("allocated|")
        count = total_gpus(LocalRunner(), active().catalog)
        assert count.passed and count.measured == 8, count  # 2 + 2 + 4, the busy node's too
    finally:
        subprocess.run(["scancel", job], check=False)
    wait_node("idle|")


def test_gres_count_mismatch_fails_with_the_hint(healthy: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """A count-only gres.conf (no File=) makes SLURM drop the GPUs: 0 < 2, node INVAL+DRAIN."""
    gres = healthy / "etc/slurm/gres.conf"
    original = gres.read_text()
    gres.write_text(
        "".join(
            "NodeName=gpu-01 Name=gpu Type=h200 Count=2\n"
            if ln.startswith("NodeName=gpu-01 ")
            else ln
            for ln in original.splitlines(keepends=True)
        )
    )  # one node's GPUs without File=: SLURM drops them on that node only
    try:
        subprocess.run(["scontrol", "reconfigure"], check=True, capture_output=True)
        wait_node("lower than configured")
        r = rows(cli("validate", "--select", "slurm", "gpu_nodes", "--format", "json"))
        g = r["slurm_gres_matches_catalog"]
        assert not g["passed"] and g["nodes"] == ["gpu-01"]
        assert (
            "count reported lower than configured (0 < 2)" in g["detail"]
            and "gres.conf" in g["hint"]
        )
        # gpu-02 (2) and gpu-03 (4) are still in service: the 2-GPU minimum holds
        assert r["gpu_count_at_least_minimum"]["passed"]
    finally:
        gres.write_text(original)
        subprocess.run(["scontrol", "reconfigure"], check=True, capture_output=True)
        time.sleep(3)
        resume()


def test_full_beegfs_fails_free_space_with_the_figure(healthy: Path, cli) -> None:  # type: ignore[no-untyped-def]
    free = os.statvfs(BEEGFS).f_bavail * os.statvfs(BEEGFS).f_frsize
    filler = BEEGFS / "jobs" / ".test-filler"
    subprocess.run(["fallocate", "-l", str(free - 500_000_000), str(filler)], check=True)
    try:
        r = rows(cli("validate", "--select", "beegfs", "--format", "json"))
        f = r["beegfs_free_space"]
        assert (
            not f["passed"] and f["measured"] < 1 and f["threshold"] == 1 and f["unit"] == "GB free"
        )
        assert not r["beegfs_free_space_warning"]["passed"]
        assert r["beegfs_mounted"]["passed"]
    finally:
        filler.unlink()


def test_read_only_directory_is_named(healthy: Path, cli) -> None:  # type: ignore[no-untyped-def]
    target = BEEGFS / "configs"
    subprocess.run(["mkdir", "-p", str(target)], check=True)
    mode = target.stat().st_mode & 0o7777
    target.chmod(0o555)
    try:
        r = rows(cli("validate", "--select", "beegfs_layout", "--format", "json"))
        w = r["beegfs_layout_writable_by_training_user"]
        assert (
            not w["passed"] and str(target) in w["detail"] and w["measured"] == w["threshold"] - 1
        )
    finally:
        target.chmod(mode)


def test_stopped_slurmdbd_fails_only_accounting(healthy: Path, cli) -> None:  # type: ignore[no-untyped-def]
    pid = int((healthy / "pids/slurmdbd.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    # slurmdbd flushes and joins its threads before it exits: 2 s was not always enough on a
    # loaded CI machine (the check then found accounting still answering)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists(), f"slurmdbd {pid} still running 30 s after SIGTERM"
    try:
        res = cli("validate", "--select", "slurm", "--format", "json")
        failed = {c for c, r in rows(res).items() if not r["passed"]}
        assert failed == {"slurm_accounting_enabled"}, rows(res)
        assert res.returncode == 1
    finally:
        sandbox_up()


def test_unreachable_login_node_fails_every_hpc_check_quickly(
    healthy: Path, cli, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    text = (REPO / "mlops_assets/catalog/platform.yaml").read_text()
    cat = tmp_path / "platform.yaml"
    cat.write_text(text.replace("port: 2222", "port: 1"))
    start = time.monotonic()
    res = cli("validate", "--catalog", str(cat), "--select", "hpc", "--format", "json")
    elapsed = time.monotonic() - start
    r = rows(res)
    assert r and all(not x["passed"] for x in r.values())
    assert {x["detail"] for x in r.values()} == {next(iter(r.values()))["detail"]}, (
        "one clear message"
    )
    assert "cannot reach 127.0.0.1:1" in next(iter(r.values()))["detail"]
    assert elapsed < 30, f"took {elapsed:.1f}s"


def test_drained_partition_fails_fast_with_the_drain_reason(healthy: Path, cli) -> None:  # type: ignore[no-untyped-def]
    """Issue 14.5: the only GPU node drained. Probes that need a node read the partition
    first (one sinfo) and answer with the node, its state and its reason; no probe job is
    submitted (so none queues until a timeout), and a job that never ran is never called a
    missing program."""
    reason = 'disk "sdb" failing; see ticket #42 (ops)'

    def jobs() -> dict[int, str]:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-S", "now-1days", "-o", "JobID,JobName"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {int(i): n for i, _, n in (ln.partition("|") for ln in out.split()) if i.isdigit()}

    before = max(jobs(), default=0)
    subprocess.run(
        ["scontrol", "update", f"nodename={GPU}", "state=drain", f"reason={reason}"], check=True
    )
    try:
        res = cli("validate", "--select", "hpc", "--format", "json")
        r = rows(res)
        for name in (
            "apptainer_on_compute_node",
            "gpu_nvidia_smi_matches_gres_per_node",
            "apptainer_nv_exposes_allocated_gpus",
        ):
            row = r[name]
            assert not row["passed"], row
            assert row["measured"] == "unmeasured", row
            assert "not installed" not in json.dumps(row) and "timed out" not in row["detail"], row
            assert "no node of partition gpu is in service" in row["detail"], row
            assert reason in row["detail"] and "gpu-01: IDLE+DRAIN" in row["detail"], row
            assert "sinfo -R" in row["hint"], row
        submitted = {i: n for i, n in jobs().items() if i > before}
        assert not [n for n in submitted.values() if n.startswith("mlops-probe-")], submitted
    finally:
        resume()


def test_probe_steps_that_give_up_leave_no_job_behind(healthy: Path) -> None:
    """Issue 14.5: a probe step that cannot start (the node is held by an exclusive job) is
    given up by SLURM itself (`--immediate`) and reported as not run; a step that outlives the
    probe's own timeout is cancelled by its unique job name. Neither leaves a job queued."""
    from mlops_assets.core.probes import node_step
    from mlops_assets.core.transport.hostexec import LocalRunner

    def queued(name: str) -> str:
        return subprocess.run(
            ["squeue", "-h", "-n", name, "-o", "%i %T"], capture_output=True, text=True, check=False
        ).stdout.strip()

    job = (
        subprocess.run(
            # every GPU node held, so the probe's step has nowhere to start
            ["sbatch", "--parsable", "--exclusive", "-p", "gpu", "-N", str(len(GPU_NODES)),
             "-o", "/dev/null", "--wrap", "sleep 120"],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .split(";")[0]
    )  # fmt: skip
    try:
        wait_node("allocated|")
        busy = node_step.run_step(LocalRunner(), "gpu", ["true"], wait_s=3, run_s=30)
        assert not busy.ran and busy.missing_program is None, busy
        assert (
            "Unable to allocate resources" in busy.why_not
            or "Immediate execution impossible" in busy.why_not
        ), busy
        name = next(a.split("=", 1)[1] for a in busy.result.argv if a.startswith("--job-name="))
        assert queued(name) == "", f"{name} left queued"
    finally:
        subprocess.run(["scancel", job], check=False)
    wait_node("idle|")

    # the probe's own timeout (wait 1 s + run 1 s + 30 s) ends a step that hangs: cancelled by name
    hung = node_step.run_step(LocalRunner(), "gpu", ["sleep", "600"], wait_s=1, run_s=1)
    assert not hung.ran and "cancelled" in hung.why_not, hung
    name = hung.why_not.split("job ", 1)[1].split(" ", 1)[0]
    deadline = time.monotonic() + 30
    while queued(name) and time.monotonic() < deadline:
        time.sleep(1)
    assert queued(name) == "", f"{name} still in the queue after the probe gave up"
