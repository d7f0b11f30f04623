"""Issue #8 on the sandbox's real SLURM 22.05 (slurmctld, slurmd with Gres=gpu:2 on mknod
devices, slurmdbd), over the real sshd login node: the SlurmPipesClient's job passes, fails
with its exit code, times out, is cancelled by scancel, survives a killed Dagster process and
is re-attached; on the sandbox's fake GPUs the smoke assets materialize with CPU figures
only (device cpu, a WARN, no GPU figure), and with the GPUs declared real they fail with the
measured "no CUDA device"; the node sensor asks for a smoke run on a resumed node only. The
SLURM tests use the trivial payload slurm_probe.py through the HPC python (no torch here);
the smoke payloads use the HPC python's CPU torch."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core import smoke_rules as rules
from mlops_assets.core.slurm_jobs import Resources
from mlops_assets.platform import active, build_resources
from mlops_assets.resources.hpc import HpcSide
from mlops_assets.resources.slurm_pipes import tag_key

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.sandbox

# the multi-node sandbox's GPU nodes (deploy/sandbox/slurm.inc.sh); per-node cases use NODE
GPU_NODES = ["gpu-01", "gpu-02", "gpu-03"]
NODE = "gpu-01"


def sinfo_state(node: str = NODE) -> str:
    """The node's state (one line: sinfo -N prints a node once per partition)."""
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-n", node, "-o", "%T"], capture_output=True, text=True, check=False
    ).stdout.split()
    return out[0] if out else ""


def wait_state(pred: Any, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = sinfo_state()
        if pred(out):
            return out
        time.sleep(0.5)
    raise AssertionError(f"node state never matched: {out!r}")


@pytest.fixture
def slurm(sandbox: Path) -> Iterator[Path]:
    """A schedulable node before and after; any job a test left behind is cancelled."""
    if "drain" in sinfo_state():
        subprocess.run(
            ["scontrol", "update", f"nodename={','.join(GPU_NODES)}", "state=resume"],
            check=False,
            capture_output=True,
        )
    wait_state(lambda s: s in ("idle", "mixed", "allocated"))
    yield sandbox
    subprocess.run(
        ["scancel", "-u", "mlops", "-n", "mlops-slurm-probe"], check=False, capture_output=True
    )
    if "drain" in sinfo_state():
        subprocess.run(
            ["scontrol", "update", f"nodename={','.join(GPU_NODES)}", "state=resume"],
            check=False,
            capture_output=True,
        )


PROBE = Resources(gpus=1, cpus=1, mem_mb=100, time_limit_min=1)


def probe_asset(extras: dict[str, Any], res: Resources = PROBE) -> dg.AssetsDefinition:
    # bare `context`: dagster rejects its annotation as a string (__future__ annotations)
    @dg.asset(name="slurm_probe_test")
    def _probe(context, hpc: HpcSide) -> dg.MaterializeResult:  # type: ignore[no-untyped-def]
        client = hpc.smoke_client(res, reattach=True)
        return client.run(
            context=context, payload="slurm_probe.py", extras=extras
        ).get_materialize_result()

    return _probe


def run(
    asset: dg.AssetsDefinition,
    instance: dg.DagsterInstance | None = None,
    partition_key: str | None = None,
) -> dg.ExecuteInProcessResult:
    instance = instance or dg.DagsterInstance.ephemeral()
    if partition_key:
        from mlops_assets.defs.smoke.definitions import GPU_NODES_NAME

        instance.add_dynamic_partitions(GPU_NODES_NAME, [partition_key])
    return dg.materialize(
        [asset],
        resources={"hpc": build_resources(active().catalog)["hpc"]},
        instance=instance,
        raise_on_error=False,
        partition_key=partition_key,
    )


def failure(result: dg.ExecuteInProcessResult) -> tuple[str, dict[str, Any]]:
    ev = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    data = ev.step_failure_data.user_failure_data
    assert data is not None, ev.step_failure_data.error
    return data.description or "", {k: v.value for k, v in data.metadata.items()}


def logs(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.user_message for e in instance.all_logs(result.run_id) if e.user_message]


def sacct_line(job_id: str) -> str:
    return subprocess.run(
        ["sacct", "-P", "-n", "-X", "-j", job_id, "--format=State,ExitCode"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def test_probe_job_passes_with_sacct_figures(slurm: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = run(probe_asset({"message": "pass"}), instance)
    assert result.success
    mat = result.asset_materializations_for_node("slurm_probe_test")[0]
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert meta["slurm_state"] == "COMPLETED" and meta["slurm_exit_code"] == 0
    assert meta["slurm_alloc_gpus"] == 1 and "gres/gpu=1" in meta["slurm_alloc_tres"]
    assert meta["slurm_nodes"] in GPU_NODES and isinstance(meta["slurm_elapsed_s"], int)
    assert "slurm_max_rss_bytes" in meta  # null here: jobacct_gather/none measures no RSS
    # the payload's own report, through the Pipes message file on BeeGFS
    assert meta["gres_gpus_visible"] == 1 and meta["slurm_node"] == meta["slurm_nodes"]
    record = instance.get_run_by_id(result.run_id)
    tag = record.tags["mlops/slurm_job.slurm_probe_test"] if record else ""
    assert tag.startswith(f"{meta['slurm_job_id']};/mnt/sandbox-beegfs/jobs/smoke/")
    assert not Path(tag.split(";")[1]).exists(), "a succeeded job's directory is removed"
    assert sacct_line(str(meta["slurm_job_id"])) == "COMPLETED|0:0"


def test_exit_3_is_failed_with_the_exit_code_and_the_job_output(slurm: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = run(probe_asset({"exit_code": 3}), instance)
    assert not result.success
    text, meta = failure(result)
    assert re.match(
        r"SLURM job \d+ FAILED with exit code 3 on gpu-0\d: probe asked to exit 3", text
    ), text
    assert meta["slurm_state"] == "FAILED" and meta["slurm_exit_code"] == 3
    assert '"exit_code": 3' in meta["stdout_tail"]
    assert Path(meta["slurm_job_dir"], f"slurm-{meta['slurm_job_id']}.out").is_file(), (
        "a failed job's files stay"
    )
    assert any("--- stdout" in m and '"exit_code": 3' in m for m in logs(instance, result)), (
        "the job's stdout tail goes to the Dagster log"
    )


def test_job_past_its_time_limit_is_timeout(slurm: Path) -> None:
    start = time.monotonic()
    result = run(
        probe_asset({"sleep_s": 300}, Resources(gpus=1, cpus=1, mem_mb=100, time_limit_min=1))
    )
    assert not result.success
    text, meta = failure(result)
    assert meta["slurm_state"] == "TIMEOUT" and "TIMEOUT: ran past its time limit" in text, text
    assert 60 <= meta["slurm_elapsed_s"] < 200 and time.monotonic() - start < 240


SCRIPT = textwrap.dedent(
    """
    import sys
    import dagster as dg
    sys.path.insert(0, {tests!r})
    from test_smoke_slurm_sandbox import probe_asset, run
    instance = dg.DagsterInstance.local_temp(tempdir={home!r}) if {home!r} else None
    result = run(probe_asset({{"sleep_s": {sleep}, "message": "background"}}), instance)
    print("SUCCESS" if result.success else "FAILED", flush=True)
    """
)


def start_background(sleep: float, home: str = "") -> tuple[subprocess.Popen[str], str]:
    """A Dagster process materializing a probe job; returns it and the job id once RUNNING."""
    code = SCRIPT.format(tests=str(Path(__file__).parent), home=home, sleep=sleep)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    job_id = ""
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        m = re.search(r"submitted SLURM job (\d+)", line)
        if m:
            job_id = m.group(1)
            break
        assert time.monotonic() < deadline, "no job submitted"
    assert job_id, "the background process ended without submitting"
    while (
        "RUNNING"
        not in subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, check=False
        ).stdout
    ):
        time.sleep(0.3)
        assert time.monotonic() < deadline, "job never started"
    return proc, job_id


def test_terminating_the_run_runs_scancel(slurm: Path) -> None:
    proc, job_id = start_background(120)
    proc.send_signal(signal.SIGINT)  # what terminating a run does to its step: an interrupt
    out = proc.communicate(timeout=60)[0]
    assert f"scancel {job_id} exited 0" in out, out[-3000:]
    deadline = time.monotonic() + 30
    while not sacct_line(job_id).startswith("CANCELLED"):
        time.sleep(0.5)
        assert time.monotonic() < deadline, sacct_line(job_id)
    by = subprocess.run(
        ["sacct", "-P", "-n", "-X", "-j", job_id, "--format=State"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    mlops_uid = subprocess.run(
        ["id", "-u", "mlops"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert by.strip() == f"CANCELLED by {mlops_uid}", (
        "cancelled by the login user, i.e. our scancel over SSH"
    )


def test_killed_dagster_process_leaves_the_job_running_and_the_orphan_sensor_reattaches(
    slurm: Path, tmp_path: Path
) -> None:
    """SIGKILL the Dagster process mid-job: the job keeps running; once the run is marked
    failed (what run monitoring does for a dead worker; no daemon runs in tests) the orphan
    reconcile finds the job through the run's tag and one squeue and requests a run for that
    asset, which re-attaches instead of submitting; the next tick has nothing left."""
    from mlops_assets.defs.smoke.definitions import orphan_tick

    home = str(tmp_path / "dagster_home")
    os.makedirs(home)
    proc, job_id = start_background(12, home)
    proc.kill()  # SIGKILL: nothing runs, as when the orchestrator's host dies
    proc.wait(timeout=30)
    time.sleep(1)
    assert (
        "RUNNING"
        in subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, check=False
        ).stdout
    )
    instance = dg.DagsterInstance.local_temp(tempdir=home)
    runner = build_resources(active().catalog)["hpc"].runner()
    assets = ["slurm_probe_test"]
    alive = orphan_tick(instance, runner, None, assets)
    assert not alive.run_requests, "the run is still STARTED: its own process may come back"
    dead = instance.get_runs()[0]
    assert dead.tags[tag_key(dg.AssetKey("slurm_probe_test"))].startswith(f"{job_id};")
    instance.report_run_failed(dead, "run worker died (SIGKILL)")
    tick = orphan_tick(instance, runner, alive.cursor, assets)
    assert [
        (r.run_key, r.tags["mlops/reattach_job"], r.asset_selection)
        for r in tick.run_requests or []
    ] == [(f"reattach:{job_id}", job_id, [dg.AssetKey("slurm_probe_test")])]
    obs = (tick.asset_events or [])[0]
    assert (
        obs.metadata["orphan_action"].value == "reattach"
        and obs.metadata["orphan_slurm_state"].value == "RUNNING"
    )
    result = run(
        probe_asset({"sleep_s": 12, "message": "background"}), instance
    )  # the requested run
    assert result.success
    meta = {
        k: v.value
        for k, v in result.asset_materializations_for_node("slurm_probe_test")[0].metadata.items()
    }
    assert str(meta["slurm_job_id"]) == job_id, "re-attached to the first job, none submitted"
    assert meta["slurm_state"] == "COMPLETED"
    assert any(f"re-attached to SLURM job {job_id}" in m for m in logs(instance, result))
    assert not orphan_tick(instance, runner, tick.cursor, assets).run_requests, "handled once"


def smoke_asset(key: str, catalog: Catalog | None = None) -> dg.AssetsDefinition:
    from mlops_assets.defs.smoke.definitions import smoke_assets

    return next(
        a for a in smoke_assets(catalog or active().catalog) if a.key.to_user_string() == key
    )


def gpus_declared_real() -> Catalog:
    """The sandbox's catalog with `hpc.gpus.fake: false`, as production's: the payload config
    the orchestrator then sends is production's (no allow_cpu, NCCL)."""
    cat = active().catalog
    return cat.model_copy(
        update={
            "hpc": cat.hpc.model_copy(
                update={"gpus": cat.hpc.gpus.model_copy(update={"fake": False})}
            )
        }
    )


def materialized(result: dg.ExecuteInProcessResult, key: str) -> dict[str, Any]:
    assert result.success, failure(result)
    return {k: v.value for k, v in result.asset_materializations_for_node(key)[0].metadata.items()}


def assert_cpu_result_on_fake_gpus(key: str, meta: dict[str, Any]) -> None:
    """What a smoke result on the sandbox's fake GPUs must say: a real job with real GRES,
    device cpu, CPU figures named and verified, no GPU figure at all, a WARN naming the fake
    GPUs, and a peak RSS inside the job's memory."""
    job = {
        "smoke_gpu": active().catalog.smoke.jobs.gpu,
        "smoke_multi_gpu_nccl": active().catalog.smoke.jobs.nccl,
    }[key]
    assert (
        meta["slurm_state"] == "COMPLETED"
        and meta["slurm_exit_code"] == 0
        and meta["slurm_nodes"] == NODE
    )
    assert (
        meta["slurm_alloc_gpus"] == job.gpus and f"gres/gpu={job.gpus}" in meta["slurm_alloc_tres"]
    ), "real GRES allocation"
    assert (
        meta["cuda_visible_devices"] == ",".join(str(i) for i in range(job.gpus))
        and meta["gres_gpus_visible"] == job.gpus
    )
    assert meta["device"] == "cpu" and meta["cpu_fallback"] is True and meta["cuda_devices"] == 0
    assert meta["no_cuda_reason"].startswith("no CUDA device"), (
        "the driver probe's measured fact is kept"
    )
    assert meta["verdict"] == "WARN" and "fake GPUs" in json.dumps(meta["result"]["messages"]), (
        "never PASS as if a GPU ran"
    )
    assert rules.gpu_figures_in(meta) == [] and rules.gpu_figures_in(meta["result"]) == [], (
        "no GPU figure is invented"
    )
    assert not any(re.match(r"gpu\d+_", k) or "bf16" in k for k in meta), (
        "no per-GPU or bf16 figure"
    )
    assert 0 < meta["max_rss_bytes"] < job.mem_mb * 2**20, "the job's memory fits its processes"


@pytest.mark.parametrize("key", ["smoke_gpu", "smoke_multi_gpu_nccl"])
def test_gpu_smoke_assets_on_fake_gpus_materialize_with_cpu_figures_only(
    slurm: Path, key: str
) -> None:
    """Per-node smoke on the sandbox's fake GPUs: the node partition is the job's --nodelist;
    the payload measures the job's CPUs and materializes, so the UI plots those figures."""
    meta = materialized(run(smoke_asset(key), partition_key=NODE), key)
    assert_cpu_result_on_fake_gpus(key, meta)
    if key == "smoke_gpu":
        assert meta["nvidia_smi_gpus"] == 0 and "nvidia_smi" in meta["result"], (
            "the inventory is taken"
        )
        assert meta["cpu_matmul_verified"] is True and meta["cpu_copy_verified"] is True
        assert (
            meta["cpu_matmul_fp32_gflops"] > 0
            and meta["cpu_copy_gbps"] > 0
            and meta["cpu_matmul_n"] == 512
        )
        assert meta["torch_threads"] == active().catalog.smoke.jobs.gpu.cpus
    else:
        assert meta["backend"] == "gloo (fake GPUs: CPU processes)" and meta["world_size"] == 2
        assert meta["wrong_values"] == 0 and meta["cpu_allreduce_busbw_gbps"] > 0
        sizes = meta["result"]["sizes"]
        assert [s["bytes"] for s in sizes] == [1 << 20, 16 << 20] and all(
            s["checked"] == s["bytes"] for s in sizes
        ), "every element, both ranks, twice"
        assert "nccl" not in meta and "busbw_gbps" not in meta, (
            "no NCCL version or bus bandwidth of a GPU"
        )


@pytest.mark.parametrize("key", ["smoke_gpu", "smoke_multi_gpu_nccl"])
def test_gpu_smoke_assets_with_gpus_declared_real_fail_with_no_cuda_device(
    slurm: Path, key: str
) -> None:
    """The same assets and jobs with production's payload config (the catalog not declaring
    the GPUs fake): no CUDA device stays a failure, with no figure of any kind."""
    from mlops_assets.core.slurm_jobs import smoke_payload_config

    real = gpus_declared_real()
    kind = {"smoke_gpu": "gpu", "smoke_multi_gpu_nccl": "nccl"}[key]
    assert smoke_payload_config(real, kind)["allow_cpu"] is False
    result = run(smoke_asset(key, real), partition_key=NODE)
    assert not result.success
    text, meta = failure(result)
    assert f"FAILED with exit code 1 on {NODE}" in text and "no CUDA device" in text, text
    assert meta["slurm_nodes"] == NODE and meta["cuda_devices"] == 0
    gpus = 2 if key == "smoke_multi_gpu_nccl" else 1
    assert meta["slurm_alloc_gpus"] == gpus, "real GRES allocation"
    assert meta["cuda_visible_devices"] == ",".join(str(i) for i in range(gpus))
    assert "device" not in meta and not any(
        k.endswith(("tflops", "gflops", "gbps")) for k in meta
    ), "no figure at all"


WRONG_ALLREDUCE = textwrap.dedent(
    """
    # nccl_allreduce.py with a faulty collective: rank 1's all-reduce returns one wrong
    # element. Module level, so the spawned ranks (which re-import this main module) get it.
    import sys
    sys.path.insert(0, {payloads!r})
    import torch.distributed as dist

    _all_reduce = dist.all_reduce

    def _faulty(tensor, *args, **kwargs):
        work = _all_reduce(tensor, *args, **kwargs)
        if dist.get_rank() == 1:
            tensor[17] += 1.0
        return work

    dist.all_reduce = _faulty
    import nccl_allreduce

    if __name__ == "__main__":
        n = nccl_allreduce
        sys.exit(n.run("nccl_allreduce", n.measure, n.DEFAULTS))
    """
)


def test_gloo_allreduce_with_a_wrong_value_fails(sandbox: Path, tmp_path: Path) -> None:
    """The fake-GPU all-reduce (gloo over CPU processes, the sandbox's config) keeps the exact
    check: one wrong element on one rank is a FAIL, however fast, with the size named."""
    from mlops_assets.core.slurm_jobs import smoke_payload_config

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(smoke_payload_config(active().catalog, "nccl")))
    script = tmp_path / "faulty_allreduce.py"
    script.write_text(WRONG_ALLREDUCE.format(payloads=str(REPO / "mlops_assets" / "payloads")))
    env = {"PATH": "/usr/bin:/bin", "SLURM_CPUS_PER_TASK": "2"}
    proc = subprocess.run(
        [active().catalog.hpc.python, str(script), "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["backend"] == "gloo (fake GPUs: CPU processes)" and line["verdict"] == "FAIL"
    assert line["wrong_values"] == 4, (
        "one wrong element per verification (before and after the timed loop), per size"
    )
    assert "1048576 B: 2 of 1048576 values wrong after all-reduce" in line["messages"], line[
        "messages"
    ]
    assert "16777216 B: 2 of 16777216 values wrong after all-reduce" in line["error"]


def test_mnist_smoke_trains_on_cpu_in_a_real_slurm_job_and_learns(slurm: Path, cli: Any) -> None:
    """The sandbox's GPUs are fake, so MLOPS-1.1 runs on the job's CPUs (Debian's torch in the
    HPC venv) on the staged real digits, with the sandbox catalog's epochs and threshold."""
    staged = cli(
        "materialize", "--select", "dataset_mnist", "--format", "json", env={"DAGSTER_HOME": ""}
    )
    assert staged.returncode == 0, staged.stdout[-2000:] + staged.stderr[-2000:]
    smoke = active().catalog.smoke
    result = run(smoke_asset("smoke_mnist_training"))
    assert result.success, failure(result)
    meta = {
        k: v.value
        for k, v in result.asset_materializations_for_node("smoke_mnist_training")[
            0
        ].metadata.items()
    }
    try:
        assert meta["slurm_state"] == "COMPLETED" and meta["slurm_alloc_gpus"] == 1, (
            "a real job with real GRES"
        )
        assert meta["device"] == "cpu" and meta["cpu_fallback"] is True, "it says it ran on CPU"
        assert meta["torch_threads"] == smoke.jobs.mnist.cpus, "as many threads as the job has CPUs"
        assert (
            meta["epochs"] == smoke.mnist_epochs
            and meta["train_samples"] == 4000
            and meta["test_samples"] == 1000
        )
        assert meta["accuracy"] >= smoke.mnist_min_accuracy >= 0.9, "learns: chance is 10 %"
        assert meta["verdict"] == "PASS" and meta["total_seconds"] < smoke.mnist_max_seconds
        assert 0 < meta["max_rss_bytes"] < smoke.jobs.mnist.mem_mb * 2**20, (
            "the job's memory fits torch"
        )
        assert not any(k.endswith(("tflops", "gbps")) for k in meta), "no GPU figure is invented"
        metrics = json.loads(Path(meta["output_dir"], "metrics.json").read_text())
        assert (
            metrics["accuracy"] == meta["accuracy"]
            and Path(meta["output_dir"], "model.pt").stat().st_size > 4_000_000
        )
        assert Path(meta["output_dir"]).name == f"job-{meta['slurm_job_id']}", (
            "the seed's location: models/mnist/job-<id>"
        )
    finally:
        shutil.rmtree(str(meta.get("output_dir", "")), ignore_errors=True) if meta.get(
            "output_dir"
        ) else None


def sensor_tick(cursor: str | None) -> dg.SensorResult:
    from mlops_assets.defs.smoke.definitions import node_sensor

    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        cursor=cursor,
        resources={"hpc": build_resources(active().catalog)["hpc"]},
    ) as ctx:
        out = node_sensor(active().catalog)(ctx)
    assert isinstance(out, dg.SensorResult)
    return out


def test_drain_then_resume_requests_a_smoke_run_for_that_node_only(slurm: Path) -> None:
    from mlops_assets.defs.smoke.definitions import GPU_NODES_NAME, NODE_JOB

    baseline = sensor_tick(None)
    assert not baseline.run_requests and re.search(
        r'"gpu-01":"(IDLE|MIXED|ALLOCATED)\|gpu:h200:2', baseline.cursor or ""
    ), baseline.cursor  # the sandbox is shared: others' jobs may run
    adds = baseline.dynamic_partitions_requests or []
    assert [(r.partitions_def_name, list(r.partition_keys)) for r in adds] == [
        (GPU_NODES_NAME, GPU_NODES)
    ], "the GPU nodes become partitions"
    assert not sensor_tick(baseline.cursor).run_requests, "nothing changed: no run"
    subprocess.run(
        ["scontrol", "update", f"nodename={NODE}", "state=drain", "reason=smoke sensor test"],
        check=True,
    )
    try:
        wait_state(lambda s: "drain" in s)
        drained = sensor_tick(baseline.cursor)
        assert not drained.run_requests, "a drained node gets no smoke job"
        assert drained.cursor and "DRAIN" in drained.cursor
    finally:
        subprocess.run(["scontrol", "update", f"nodename={NODE}", "state=resume"], check=True)
    wait_state(lambda s: s in ("idle", "mixed", "allocated"))  # responding and schedulable again
    resumed = sensor_tick(drained.cursor)
    assert len(resumed.run_requests or []) == 1
    req = (resumed.run_requests or [])[0]
    assert req.tags["mlops/node"] == NODE and req.tags["mlops/trigger"] == "resumed"
    assert req.job_name == NODE_JOB and req.partition_key == NODE, "that node's partition only"
    # the request as the daemon would launch it: the node job for that partition, real SLURM jobs
    from mlops_assets.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(GPU_NODES_NAME, [NODE])
    result = (
        defs()
        .resolve_job_def(NODE_JOB)
        .execute_in_process(
            instance=instance, partition_key=req.partition_key, tags=req.tags, raise_on_error=False
        )
    )
    assert result.success and result.dagster_run.tags["dagster/partition"] == NODE, failure(result)
    for key in ("smoke_gpu", "smoke_multi_gpu_nccl"):
        assert_cpu_result_on_fake_gpus(key, materialized(result, key))


def test_cli_materializes_the_per_node_smoke_once_per_gpu_node(
    slurm: Path, cli: Any, tmp_path: Path
) -> None:
    """`mlops-assets materialize --select smoke_gpu` adds the GPU nodes sinfo shows as
    partitions and runs the job per node, reported as smoke_gpu[node]."""
    from mlops_assets.defs.smoke.definitions import GPU_NODES_NAME

    res = cli(
        "materialize",
        "--select",
        "smoke_gpu",
        "--format",
        "json",
        env={"DAGSTER_HOME": str(tmp_path)},
    )
    rows = {(r["asset"], r["check"]): r for r in json.loads(res.stdout)["results"]}
    for node in GPU_NODES:
        row = rows[(f"smoke_gpu[{node}]", "materialized")]
        assert row["passed"], row  # fake GPUs: the CPU result materializes (a WARN inside)
    assert res.returncode == 0
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        assert sorted(inst.get_dynamic_partitions(GPU_NODES_NAME)) == GPU_NODES
        ev = inst.get_latest_materialization_event(dg.AssetKey("smoke_gpu"))
        assert (
            ev is not None
            and ev.asset_materialization is not None
            and ev.asset_materialization.partition in GPU_NODES
        )
        assert ev.asset_materialization.metadata["device"].value == "cpu"
        runs = inst.get_runs()
        assert (
            sorted(
                r.tags.get("dagster/partition") or ""
                for r in runs
                if r.tags.get("mlops/cli", "").startswith("mlops_materialize_partitioned")
            )
            == GPU_NODES
        )


def test_nightly_schedule_tick_runs_everything_and_the_node_smoke_per_usable_node(
    slurm: Path, tmp_path: Path
) -> None:
    from mlops_assets.definitions import defs
    from mlops_assets.defs.smoke.definitions import GPU_NODES_NAME, NODE_ASSETS

    d = defs()
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path))
    schedule = d.get_schedule_def("nightly_full_validation_schedule")
    with dg.build_schedule_context(
        instance=instance,
        resources={"hpc": build_resources(active().catalog)["hpc"]},
        repository_def=d.get_repository_def(),
    ) as ctx:
        data = schedule.evaluate_tick(ctx)
    reqs = data.run_requests or []
    assert [r.partition_key for r in reqs] == [None, *GPU_NODES], data.skip_message
    assert sorted(k.to_user_string() for k in reqs[1].asset_selection or []) == sorted(NODE_ASSETS)
    assert sorted(instance.get_dynamic_partitions(GPU_NODES_NAME)) == GPU_NODES, (
        "sinfo's GPU nodes became partitions"
    )
