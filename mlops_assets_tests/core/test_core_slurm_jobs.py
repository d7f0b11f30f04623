"""core.slurm_jobs: the job script, command lines, backoff and the outcome read from sacct
(recorded sandbox sacct lines; see core/fixtures/SOURCES.md)."""

from __future__ import annotations

import shlex
from dataclasses import fields
from pathlib import Path

import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.core import slurm_jobs as sj
from mlops_assets.platform import active

FIX = Path(__file__).parent / "fixtures"


def spec(**kw: object) -> sj.JobSpec:
    """A job spec; a keyword that names a field of sj.Resources sets the job's size."""
    base: dict[str, object] = {
        "name": "mlops-gpu-smoke",
        "partition": "gpu",
        "command": ["python3", "/b/scripts/p/gpu_smoke.py"],
        "workdir": "/b/jobs/smoke/x",
    }
    size: dict[str, object] = {"time_limit_min": 10, "cpus": 4, "mem_mb": 8192, "gpus": 2}
    sizes = {f.name for f in fields(sj.Resources)}
    for key, value in kw.items():
        (size if key in sizes else base)[key] = value
    return sj.JobSpec(**base, size=sj.Resources(**size))  # type: ignore[arg-type]


def test_script_carries_every_resource_and_execs_the_payload() -> None:
    text = sj.render_script(
        spec(nodelist="gpu01", env={"DAGSTER_PIPES_CONTEXT": "eJx$(rm -rf /)'q"})
    )
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    for want in (
        "--partition=gpu",
        "--time=10",
        "--cpus-per-task=4",
        "--mem=8192M",
        "--gres=gpu:2",
        "--nodelist=gpu01",
        "--output=/b/jobs/smoke/x/slurm-%j.out",
        "--error=/b/jobs/smoke/x/slurm-%j.err",
    ):
        assert f"#SBATCH {want}" in lines
    export = next(ln for ln in lines if ln.startswith("export DAGSTER_PIPES_CONTEXT="))
    assert (
        shlex.split(export.removeprefix("export "))[0] == "DAGSTER_PIPES_CONTEXT=eJx$(rm -rf /)'q"
    )
    assert lines[-1] == "exec python3 /b/scripts/p/gpu_smoke.py"


def test_container_runs_under_apptainer_nv_with_binds() -> None:
    text = sj.render_script(
        spec(container="/b/containers/pytorch_24.07-py3.sif", binds=["/b"], gpus=0)
    )
    assert (
        text.splitlines()[-1]
        == "exec apptainer exec --nv --bind /b /b/containers/pytorch_24.07-py3.sif python3 "
        "/b/scripts/p/gpu_smoke.py"
    )
    assert "--gres" not in text


def test_multi_node_job_runs_one_srun_task_per_node_inside_the_container() -> None:
    """The DDP smoke: one job of 2 nodes, the payload once per node through srun (which
    wraps apptainer, so every node runs its own container), the CPUs said again to srun."""
    text = sj.render_script(spec(nodes=2, container="/b/c.sif", binds=["/b"], gpus=1))
    lines = text.splitlines()
    assert "#SBATCH --nodes=2" in lines and "#SBATCH --ntasks-per-node=1" in lines
    assert "#SBATCH --ntasks=1" not in lines and "#SBATCH --gres=gpu:1" in lines
    assert lines[-1] == (
        "exec srun --nodes=2 --ntasks-per-node=1 --cpus-per-task=4 --kill-on-bad-exit=0 "
        "apptainer exec --nv --bind /b /b/c.sif python3 /b/scripts/p/gpu_smoke.py"
    )
    one = sj.render_script(spec(nodes=1, srun=True)).splitlines()
    assert "#SBATCH --nodes=1" in one and one[-1].startswith("exec srun --nodes=1 ")
    plain = sj.render_script(spec()).splitlines()
    assert "#SBATCH --nodes=1" in plain and "#SBATCH --ntasks=1" in plain
    assert not any("srun" in ln for ln in plain), "a one-node smoke stays the batch step"


@pytest.mark.parametrize(
    "bad",
    [
        {"nodes": 0},
        {"partition": "gpu\n#SBATCH --uid=0"},
        {"nodelist": "a b"},
        {"workdir": "/x;y"},
        {"env": {"A-B": "1"}},
        {"command": []},
        {"cpus": 0},
    ],
)
def test_unsafe_or_invalid_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        sj.render_script(spec(**bad))


def test_command_lines() -> None:
    assert sj.sbatch_argv("/j/job.sh") == ["sbatch", "--parsable", "/j/job.sh"]
    assert sj.squeue_argv(7) == ["squeue", "-h", "-j", "7", "-o", "%i|%T|%r|%N"]
    assert sj.sacct_argv(7)[:5] == ["sacct", "-P", "-n", "-j", "7"]
    assert sj.scancel_argv(7) == ["scancel", "7"]


def test_backoff_grows_to_its_cap() -> None:
    b = sj.Backoff(0.2, 2.0, 1.0)
    assert [b.next() for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def _recorded() -> str:
    return "\n".join(
        ln
        for ln in (FIX / "sacct_P_n_jobs_sandbox_22.05.txt").read_text().splitlines()
        if not ln.startswith("#@")
    )


def test_outcome_of_a_completed_gpu_job() -> None:
    out = sj.outcome_from_sacct(_recorded(), 1)
    assert out is not None and out.succeeded and out.gpus == 1 and out.nodes == ("localhost",)
    meta = out.metadata()
    assert (
        meta["slurm_state"] == "COMPLETED"
        and meta["slurm_alloc_gpus"] == 1
        and "gres/gpu=1" in meta["slurm_alloc_tres"]
    )


def test_outcome_of_a_job_that_exited_3_names_the_code() -> None:
    out = sj.outcome_from_sacct(_recorded(), 2)
    assert out is not None and not out.succeeded
    assert out.describe() == "SLURM job 2 FAILED with exit code 3 on localhost"


def test_outcome_of_cancelled_timeout_and_running_jobs() -> None:
    cancelled = sj.outcome_from_sacct("9|x|CANCELLED by 1000|0:15|00:00:07|cpu=1||localhost", 9)
    assert (
        cancelled is not None
        and cancelled.describe() == "SLURM job 9 CANCELLED by uid 1000 on localhost"
    )
    timeout = sj.outcome_from_sacct(
        "10|x|TIMEOUT|0:0|00:01:09|cpu=1||localhost\n"
        "10.batch|batch|CANCELLED|0:15|00:01:10|cpu=1|1024K|localhost",
        10,
    )
    assert timeout is not None and timeout.state == "TIMEOUT" and "time limit" in timeout.describe()
    assert timeout.max_rss_bytes == 1024 * 1024
    assert sj.outcome_from_sacct("11|x|RUNNING|0:0|00:00:03|cpu=1||localhost", 11) is None
    assert sj.outcome_from_sacct("", 12) is None


def test_smoke_config_from_the_catalog() -> None:
    cat = active().catalog
    assert (
        sj.smoke_payload_config(cat, "mnist")["dataset_dir"] == "/mnt/sandbox-beegfs/datasets/mnist"
    )
    assert sj.smoke_payload_config(cat, "mnist")["epochs"] == cat.smoke.mnist_epochs
    # CPU training only where the catalog declares the GPUs fake (the sandbox), never in production
    assert cat.hpc.gpus.fake and sj.smoke_payload_config(cat, "mnist")["allow_cpu"] is True
    prod = load_catalog(profile="production", env={}).catalog
    assert not prod.hpc.gpus.fake and sj.smoke_payload_config(prod, "mnist")["allow_cpu"] is False
    assert sj.smoke_payload_config(cat, "nccl")["world_size"] == 2
    assert "H200" in sj.smoke_payload_config(cat, "gpu")["gpu_profiles"]
    with pytest.raises(ValueError):
        sj.smoke_payload_config(cat, "nope")


def test_fake_gpus_choose_cpu_measurement_and_gloo_production_keeps_gpu_only() -> None:
    """Where the catalog declares the GPUs fake (the sandbox), the GPU smoke may measure the CPU
    and the all-reduce runs over gloo at small sizes; in production neither: no CUDA device
    stays a failure, and the all-reduce is NCCL at the payload's sizes (>= 1 GiB included)."""
    cat = active().catalog
    assert cat.hpc.gpus.fake
    gpu, nccl = sj.smoke_payload_config(cat, "gpu"), sj.smoke_payload_config(cat, "nccl")
    assert gpu["allow_cpu"] is True
    assert nccl["backend"] == "gloo" and nccl["allow_cpu"] is True
    assert (
        nccl["sizes_bytes"] == [1 << 20, 16 << 20]
        and nccl["world_size"] == cat.smoke.multi_gpu_count
    )
    prod = load_catalog(profile="production", env={}).catalog
    assert not prod.hpc.gpus.fake
    pgpu, pnccl = sj.smoke_payload_config(prod, "gpu"), sj.smoke_payload_config(prod, "nccl")
    assert pgpu["allow_cpu"] is False
    assert pnccl["backend"] == "nccl" and pnccl["allow_cpu"] is False
    assert "sizes_bytes" not in pnccl, "the payload's own sizes, up to 4 GiB, where busbw is judged"
    # the same catalog with the GPUs declared real: the choice follows hpc.gpus.fake alone
    real = cat.model_copy(
        update={
            "hpc": cat.hpc.model_copy(
                update={"gpus": cat.hpc.gpus.model_copy(update={"fake": False})}
            )
        }
    )
    assert sj.smoke_payload_config(real, "gpu")["allow_cpu"] is False
    assert sj.smoke_payload_config(real, "nccl")["backend"] == "nccl"
    assert sj.smoke_payload_config(real, "mnist")["allow_cpu"] is False


def _tag(run: str, status: str, key: str, job: str) -> sj.TaggedJob:
    t = sj.parse_job_tag(
        f"mlops/slurm_job.{key}",
        f"{job};/b/jobs/smoke/x-{job};/b/jobs/smoke/x-{job}/m.jsonl",
        run,
        status,
        ["smoke_gpu", "smoke_mnist_training"],
    )
    assert t is not None
    return t


def test_job_tags_parse_with_dotted_node_names_and_ignore_other_assets() -> None:
    t = _tag("r1", "FAILURE", "smoke_gpu.gpu01.cluster.local", "42")
    assert (t.asset, t.partition, t.job_id) == ("smoke_gpu", "gpu01.cluster.local", "42")
    assert _tag("r1", "FAILURE", "smoke_mnist_training", "7").partition is None
    assert (
        sj.parse_job_tag("mlops/slurm_job.container_oumi", "1;d;m", "r", "FAILURE", ["smoke_gpu"])
        is None
    )
    assert (
        sj.parse_job_tag("mlops/slurm_job.smoke_gpu", "x;d;m", "r", "FAILURE", ["smoke_gpu"])
        is None
    )
    assert sj.parse_job_tag("dagster/partition", "gpu01", "r", "FAILURE", ["smoke_gpu"]) is None


def test_orphans_reattach_a_dead_runs_live_job_and_report_the_rest() -> None:
    tagged = [  # newest first
        _tag("r9", "STARTED", "smoke_gpu.gpu01", "90"),  # in progress: its run waits for it
        _tag("r8", "FAILURE", "smoke_gpu.gpu01", "80"),  # superseded by r9's job
        _tag("r7", "FAILURE", "smoke_gpu.gpu02", "70"),  # run died, job running -> re-attach
        _tag(
            "r6", "CANCELED", "smoke_mnist_training", "60"
        ),  # terminated, job still running -> report
        _tag("r5", "FAILURE", "smoke_gpu.gpu03", "50"),  # run died, job ended -> report its state
        _tag("r4", "FAILURE", "smoke_gpu.gpu04", "40"),  # SLURM forgot it -> nothing to say
        _tag("r3", "SUCCESS", "smoke_gpu.gpu05", "30"),
    ]
    live = {"90": "RUNNING", "80": "RUNNING", "70": "RUNNING", "60": "PENDING", "30": "RUNNING"}
    got = sj.reconcile_orphans(tagged, live, {"50": "COMPLETED"})
    assert [(a.job.job_id, a.action, a.slurm_state) for a in got] == [
        ("70", sj.REATTACH, "RUNNING"),
        ("60", sj.REPORT, "PENDING"),
        ("50", sj.REPORT, "COMPLETED"),
    ]
    assert "scancel 60" in got[1].message and "smoke_gpu[gpu03]" in got[2].message
    assert sj.sacct_jobs_argv(["5", "6"])[-2:] == ["5,6", f"--format={sj.SACCT_FORMAT}"]
    with pytest.raises(ValueError, match="not a number"):
        sj.sacct_jobs_argv(["5; rm -rf /"])


# --- issue 15, class 3: a killed step under a COMPLETED job line is no success ---------------


@pytest.mark.parametrize(
    ("step", "cause"),
    [
        (
            "41.0|python|CANCELLED|0:10|00:00:03|cpu=1,mem=100M,node=1|2048K|gpu01",
            "killed (signal 10)",
        ),
        (
            "41.0|python|OUT_OF_MEMORY|0:125|00:00:03|cpu=1,mem=100M,node=1|99M|gpu01",
            "out of memory",
        ),
        (
            "41.0|python|NODE_FAIL|1:0|00:00:03|cpu=1,mem=100M,node=1||gpu01",
            "node of the step failed",
        ),
    ],
)
def test_killed_step_under_completed_job_is_not_success(step: str, cause: str) -> None:
    text = "\n".join(
        [
            "41|train|COMPLETED|0:0|00:00:05|billing=1,cpu=1,mem=100M,node=1||gpu01",
            "41.batch|batch|COMPLETED|0:0|00:00:05|cpu=1,mem=100M,node=1|1128K|gpu01",
            "41.extern|extern|COMPLETED|0:0|00:00:05|billing=1,cpu=1,mem=100M,node=1|0|gpu01",
            step,
        ]
    )
    out = sj.outcome_from_sacct(text, 41)
    assert out is not None and out.state == "COMPLETED"
    assert not out.succeeded
    assert out.failed_steps[0][0] == "41.0"
    assert "COMPLETED but step 41.0" in out.describe() and cause in out.describe()
    assert "41.0" in str(out.metadata()["slurm_failed_steps"])


def test_completed_steps_keep_a_completed_job_successful() -> None:
    text = (FIX / "sacct_P_n_composed_22.05.txt").read_text()
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("#@"))
    out = sj.outcome_from_sacct(text, 101)
    assert out is not None and out.succeeded and out.failed_steps == ()


# --- issue 15, class 7a: a width-cut state is never a state ------------------------------------


@pytest.mark.parametrize("state", ["OUT_OF_ME+", "CANCELLED+", "COMPLETED+"])
def test_cut_sacct_state_is_unreadable(state: str) -> None:
    with pytest.raises(ValueError, match="cut to its column width"):
        sj.outcome_from_sacct(f"41|train|{state}|0:0|00:00:05|cpu=1||gpu01", 41)


def test_outcome_names_every_node_when_the_job_line_still_lists_the_batch_host_alone() -> None:
    """sacct right after a 2-node job ended (SLURM 22.05.8, sandbox job 527): the job line
    held gpu-01 alone for a few seconds while its step listed both nodes."""
    text = (
        "527|wrap|FAILED|1:0|00:00:02|billing=2,cpu=2,gres/gpu=2,node=2||gpu-01\n"
        "527.batch|batch|FAILED|1:0|00:00:02|cpu=1,gres/gpu=1,mem=0,node=1|0|gpu-01\n"
        "527.0|bash|FAILED|1:0|00:00:01|cpu=2,gres/gpu=2,mem=0,node=2|0|gpu-[01-02]"
    )
    out = sj.outcome_from_sacct(text, 527)
    assert out is not None and out.nodes == ("gpu-01", "gpu-02")
    assert out.describe().endswith("on gpu-01,gpu-02")
