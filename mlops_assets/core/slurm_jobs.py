"""SLURM batch jobs as data: the job script, the command lines that submit, poll, account
and cancel, the poll backoff, the final outcome read from sacct, and the smoke payloads'
configuration from the catalog. Pure: nothing here runs a command or imports Dagster.

Every value that reaches a shell is either an argv element (the host layer quotes argv with
shlex) or, inside the job script, passed through :func:`shlex.quote`; ``#SBATCH`` values
are validated against strict patterns because sbatch reads them before any shell does.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core import node_watch
from mlops_assets.core.parse.slurm.jobs import SACCT_FORMAT, SQUEUE_FORMAT, SacctRecord, parse_sacct
from mlops_assets.core.parse.slurm.nodes import parse_sinfo_nodes
from mlops_assets.core.parse.slurm.units import tres_gpus

_SAFE_SBATCH = re.compile(r"^[A-Za-z0-9_.,:@/=+\-\[\]]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: All-reduce sizes over gloo (CPU processes) where the GPUs are fake: 1 MiB and 16 MiB.
FAKE_GPU_ALLREDUCE_SIZES = (1 << 20, 16 << 20)


def _sbatch_value(what: str, value: str) -> str:
    if not value or not _SAFE_SBATCH.match(value):
        raise ValueError(
            f"{what} {value!r} is not a safe #SBATCH value (letters, digits, _.,:@/=+-[] only)"
        )
    return value


def _sbatch_path(what: str, path: str) -> str:
    """A path that may hold sbatch's `%j` (the job id), checked as a value with `%j` set aside."""
    return _sbatch_value(what, path.replace("%j", "JOBID")).replace("JOBID", "%j")


@dataclass(frozen=True)
class Resources:
    """What one job asks SLURM for; gpus, cpus and memory are per node. ``nodes`` > 1 or
    ``srun`` run the command once per node through ``srun`` (one task per node, ``cpus``
    each): the multi-node training smoke. A placement's client holds one (HpcSide fixes it)."""

    gpus: int = 0
    cpus: int = 1
    mem_mb: int = 1024
    time_limit_min: int = 10
    nodelist: str | None = None
    #: run inside this SLURM reservation (the quarantine loop's re-test of a node)
    reservation: str | None = None
    nodes: int = 1
    #: run the command through ``srun`` (one task per node) even on one node
    srun: bool = False

    @property
    def tasks_per_node(self) -> bool:
        """Whether the command runs as one srun task per node rather than as the batch step."""
        return self.srun or self.nodes > 1


@dataclass(frozen=True)
class JobSpec:
    """One batch job of size ``size``. ``command`` is the argv run on the compute node; with
    ``container`` it runs as ``apptainer exec --nv [--bind ...] <container> <command>``."""

    name: str
    partition: str
    command: Sequence[str]
    workdir: str
    size: Resources = Resources()
    container: str | None = None
    binds: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def stdout_path(self) -> str:
        return f"{self.workdir}/slurm-%j.out"

    @property
    def stderr_path(self) -> str:
        return f"{self.workdir}/slurm-%j.err"


def stdout_of(spec: JobSpec, job_id: int | str) -> str:
    return spec.stdout_path.replace("%j", str(job_id))


def stderr_of(spec: JobSpec, job_id: int | str) -> str:
    return spec.stderr_path.replace("%j", str(job_id))


def render_script(spec: JobSpec) -> str:
    """The batch script: #SBATCH header, exported environment (Pipes bootstrap included),
    then ``exec`` of the command so the job's exit code is the payload's (on several nodes:
    ``exec srun ...``, whose exit code is the worst task's)."""
    size = spec.size
    if size.time_limit_min < 1 or size.cpus < 1 or size.mem_mb < 1 or size.gpus < 0:
        raise ValueError("time limit, cpus and memory must be positive, gpus >= 0")
    if size.nodes < 1:
        raise ValueError("nodes must be >= 1")
    if not spec.command:
        raise ValueError("empty command")
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={_sbatch_value('job name', spec.name)}",
        f"#SBATCH --partition={_sbatch_value('partition', spec.partition)}",
        f"#SBATCH --time={size.time_limit_min}",
        f"#SBATCH --nodes={size.nodes}",
        "#SBATCH --ntasks-per-node=1" if size.tasks_per_node else "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={size.cpus}",
        f"#SBATCH --mem={size.mem_mb}M",
        f"#SBATCH --chdir={_sbatch_value('workdir', spec.workdir)}",
        f"#SBATCH --output={_sbatch_path('stdout path', spec.stdout_path)}",
        f"#SBATCH --error={_sbatch_path('stderr path', spec.stderr_path)}",
    ]
    if size.gpus:
        lines.append(f"#SBATCH --gres=gpu:{size.gpus}")
    if size.nodelist:
        lines.append(f"#SBATCH --nodelist={_sbatch_value('node list', size.nodelist)}")
    if size.reservation:
        lines.append(f"#SBATCH --reservation={_sbatch_value('reservation', size.reservation)}")
    lines.append("set -u")
    for key, value in spec.env.items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"invalid environment variable name {key!r}")
        lines.append(f"export {key}={shlex.quote(value)}")
    argv = list(spec.command)
    if spec.container:
        binds: list[str] = []
        for b in spec.binds:
            binds += ["--bind", b]
        argv = ["apptainer", "exec", "--nv", *binds, spec.container, *argv]
    if size.tasks_per_node:
        argv = [*srun_argv(size.nodes, size.cpus), *argv]
    lines.append("exec " + shlex.join(argv))
    return "\n".join(lines) + "\n"


def srun_argv(nodes: int, cpus: int) -> list[str]:
    """One task per node with the job's CPUs each: srun of SLURM 22.05 to 23.02 does not
    inherit --cpus-per-task from sbatch, so it is said again. A task that fails does not
    kill the others at once, so rank 0 can still name it (it stops waiting at its timeout)."""
    return [
        "srun",
        f"--nodes={nodes}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={cpus}",
        "--kill-on-bad-exit=0",
    ]


def sbatch_argv(script_path: str) -> list[str]:
    return ["sbatch", "--parsable", script_path]


def squeue_argv(job_id: int | str) -> list[str]:
    return ["squeue", "-h", "-j", str(job_id), "-o", SQUEUE_FORMAT]


def sacct_argv(job_id: int | str) -> list[str]:
    return ["sacct", "-P", "-n", "-j", str(job_id), f"--format={SACCT_FORMAT}"]


def scancel_argv(job_id: int | str) -> list[str]:
    return ["scancel", str(job_id)]


@dataclass
class Backoff:
    """Poll intervals: ``first``, growing by ``factor`` up to ``cap`` seconds."""

    first: float = 0.2
    factor: float = 1.5
    cap: float = 5.0
    _next: float = 0.0

    def next(self) -> float:
        self._next = self.first if self._next == 0 else min(self._next * self.factor, self.cap)
        return self._next


@dataclass(frozen=True)
class JobOutcome:
    """A job's final state from sacct, with the figures that go into metadata."""

    job_id: str
    state: str
    exit_code: int
    exit_signal: int
    cancelled_by: str | None
    elapsed_s: int | None
    alloc_tres: Mapping[str, str]
    max_rss_bytes: int | None
    nodes: tuple[str, ...]
    #: Finished steps (batch, extern, numbered) that did not complete with 0:0, as
    #: ``(step id, state, exit code, signal)``: a killed step fails a COMPLETED job.
    failed_steps: tuple[tuple[str, str, int, int], ...] = ()

    @property
    def succeeded(self) -> bool:
        return (
            self.state == "COMPLETED"
            and self.exit_code == 0
            and self.exit_signal == 0
            and not self.failed_steps
        )

    @property
    def gpus(self) -> int:
        return tres_gpus(self.alloc_tres)

    def describe(self) -> str:
        where = f" on {','.join(self.nodes)}" if self.nodes else ""
        if self.state == "COMPLETED" and self.failed_steps:
            step, state, code, signal = self.failed_steps[0]
            more = (
                f" (and {len(self.failed_steps) - 1} more step(s))"
                if len(self.failed_steps) > 1
                else ""
            )
            return (
                f"SLURM job {self.job_id} COMPLETED but step {step} ended {state} "
                f"{code}:{signal}{more}{where}: {_step_cause(state, signal)}"
            )
        if self.state == "CANCELLED":
            by = f" by uid {self.cancelled_by}" if self.cancelled_by else ""
            return f"SLURM job {self.job_id} CANCELLED{by}{where}"
        if self.state == "TIMEOUT":
            return (
                f"SLURM job {self.job_id} TIMEOUT: ran past its "
                f"time limit ({self.elapsed_s} s elapsed){where}"
            )
        sig = f", signal {self.exit_signal}" if self.exit_signal else ""
        return f"SLURM job {self.job_id} {self.state} with exit code {self.exit_code}{sig}{where}"

    def metadata(self) -> dict[str, Any]:
        return {
            "slurm_job_id": self.job_id,
            "slurm_state": self.state,
            "slurm_exit_code": self.exit_code,
            "slurm_elapsed_s": self.elapsed_s,
            "slurm_alloc_tres": ",".join(f"{k}={v}" for k, v in sorted(self.alloc_tres.items())),
            "slurm_alloc_gpus": self.gpus,
            "slurm_max_rss_bytes": self.max_rss_bytes,
            "slurm_nodes": ",".join(self.nodes),
            "slurm_failed_steps": ", ".join(
                f"{s} {st} {c}:{g}" for s, st, c, g in self.failed_steps
            ),
        }


def _step_cause(state: str, signal: int) -> str:
    """The usual cause of a step's end, and its usual fix."""
    if state == "OUT_OF_MEMORY":
        return (
            "the step ran out of memory (cgroup OOM kill): "
            "raise --mem or lower the step's memory use"
        )
    if state == "NODE_FAIL":
        return "a node of the step failed: check the node's slurmd log and `sinfo -R`, then rerun"
    if state == "CANCELLED" or signal:
        return (
            f"the step was killed (signal {signal}): check its stderr and whether it was "
            "scancelled or hit a limit"
        )
    return "the step failed while the batch script still exited 0: check its stderr"


def outcome_from_sacct(text: str, job_id: int | str) -> JobOutcome | None:
    """The job's line (state, exit code, elapsed, AllocTRES), every finished step that did
    not complete with 0:0 (a step killed by a signal, OUT_OF_MEMORY or NODE_FAIL under a
    COMPLETED job line is not a success), and the largest MaxRSS of the steps; None while
    accounting has not recorded a terminal state yet. Unreadable output (a state cut to the
    column width, no ExitCode) raises ValueError."""
    records: list[SacctRecord] = [r for r in parse_sacct(text) if r.job == str(job_id)]
    job = next((r for r in records if not r.is_step), None)
    if job is None or not job.terminal:
        return None
    if job.exit_code is None or job.exit_signal is None:
        raise ValueError(f"sacct printed no ExitCode for job {job.job_id}")
    failed = tuple(
        (r.job_id, r.state, r.exit_code or 0, r.exit_signal or 0)
        for r in records
        if r.is_step and r.terminal and not r.succeeded
    )
    rss = [r.max_rss_bytes for r in records if r.max_rss_bytes is not None]
    # the job line's NodeList, then any node only its steps name: right after a short job,
    # slurmdbd can still hold the batch host alone on the job line (SLURM 22.05.8 on the
    # sandbox: "527|FAILED|gpu-01" while step 527.0 listed gpu-[01-02], corrected seconds
    # later), and a failure that names one node of two sends the reader to the wrong place
    nodes = list(job.nodes)
    nodes += [n for r in records if r.is_step for n in r.nodes if n not in nodes]
    return JobOutcome(
        job_id=job.job_id,
        state=job.state,
        exit_code=job.exit_code,
        exit_signal=job.exit_signal,
        failed_steps=failed,
        cancelled_by=job.cancelled_by,
        elapsed_s=job.elapsed_s,
        alloc_tres=job.alloc_tres,
        max_rss_bytes=max(rss) if rss else None,
        nodes=tuple(nodes),
    )


# ------------------------------------------------------------------- smoke payloads


def smoke_payload_config(catalog: Catalog, kind: str) -> dict[str, Any]:
    """What each smoke payload needs from the catalog (sent as Pipes extras)."""
    s = catalog.smoke
    profiles = {k: p.model_dump() for k, p in s.gpu_profiles.items()}
    # GPUs the catalog declares fake (the sandbox) have no driver: the payloads measure the
    # job's CPUs instead, name those figures as CPU figures and report no GPU figure; on real
    # GPUs a missing CUDA device stays a failure
    fake = catalog.hpc.gpus.fake
    if kind == "gpu":
        return {
            "gpu_profiles": profiles,
            "sibling_min_fraction": s.sibling_min_fraction,
            "allow_cpu": fake,
        }
    if kind == "nccl":
        if fake:  # the same exact verification over CPU processes, at sizes a CPU moves quickly
            return {
                "world_size": s.multi_gpu_count,
                "gpu_profiles": profiles,
                "allow_cpu": True,
                "backend": "gloo",
                "sizes_bytes": list(FAKE_GPU_ALLREDUCE_SIZES),
            }
        return {
            "world_size": s.multi_gpu_count,
            "gpu_profiles": profiles,
            "allow_cpu": False,
            "backend": "nccl",
        }
    if kind == "ddp":
        d = s.ddp
        return {
            "dataset_dir": _mnist_dir(catalog),
            "epochs": d.epochs,
            "batch_size": d.batch_size,
            "min_accuracy": d.min_accuracy,
            "max_seconds": d.max_seconds,
            "min_speedup": d.min_speedup,
            "nodes_requested": d.nodes,
            "join_timeout_s": d.join_timeout_s,
            "timeout_s": d.timeout_s,
            "baseline_batches": d.baseline_batches,
            "backend": "auto",  # NCCL on CUDA devices; gloo on CPUs only where GPUs are fake
            "allow_cpu": fake,
        }
    if kind == "cifar_ddp":
        c = s.cifar_ddp
        return {
            "dataset_dir": catalog.dataset_path(c.dataset),  # as dataset_cifar10 staged it
            "models_dir": catalog.hpc.beegfs.directory("models"),
            "output_name": f"{c.dataset}-resnet18",
            **c.model_dump(exclude={"dataset", "nodes"}),
            "nodes_requested": c.nodes,
            "backend": "auto",  # NCCL on CUDA devices; gloo on CPUs only where GPUs are fake
            "allow_cpu": fake,
        }
    if kind == "mnist":
        b = catalog.hpc.beegfs
        return {
            "dataset_dir": _mnist_dir(catalog),
            "models_dir": b.directory("models"),
            "epochs": s.mnist_epochs,
            "min_accuracy": s.mnist_min_accuracy,
            "max_seconds": s.mnist_max_seconds,
            "allow_cpu": fake,  # trains on the job's CPUs and says so (device: cpu)
        }
    if kind == "sft":
        t = s.sft
        model = catalog.models[t.model]
        return {
            # the staged snapshots the model_/dataset_ assets made, read where they lie
            "model_dir": catalog.model_path(t.model),
            "dataset_dir": catalog.dataset_path(t.dataset),
            "models_dir": catalog.hpc.beegfs.directory("models"),
            "output_name": f"{t.model}-sft",
            "expected_parameters": model.parameters,
            "parameters_tolerance": model.parameters_tolerance,
            **t.model_dump(exclude={"model", "dataset", "container"}),
            "allow_cpu": fake,  # trains on the job's CPUs and says so (device: cpu)
        }
    raise ValueError(f"unknown smoke kind {kind!r}: no payload config for it")


def usable_partition_nodes(sinfo_text: str, partition: str, gpus: int) -> list[str]:
    """Nodes of ``partition`` a job could start on now (with a GPU each when ``gpus`` > 0),
    read from ``sinfo -h -N -o SINFO_NODE_FORMAT``: how many nodes the DDP smoke can span."""
    return sorted(
        n.name
        for n in parse_sinfo_nodes(sinfo_text)
        if partition in n.partitions
        and (gpus <= 0 or n.gpus >= gpus)
        and node_watch.usable(str(n.state))
    )


def _mnist_dir(catalog: Catalog) -> str:
    """The staged MNIST on BeeGFS (the catalog's torchvision MNIST dataset)."""
    b = catalog.hpc.beegfs
    mnist = next(
        (d for d in catalog.datasets.values() if getattr(d.source, "dataset_class", "") == "MNIST"),
        None,
    )
    return b.path(mnist.path) if mnist else f"{b.directory('datasets')}/mnist"


# ------------------------------------------------------------------- orphaned jobs

#: Run tag prefix under which the SLURM Pipes client records a job:
#: ``<prefix><asset>[.<partition>]``
#: = ``<job id>;<job dir>;<message file>``.
JOB_TAG_PREFIX = "mlops/slurm_job."
#: Dagster run statuses whose run can still pick up its own job.
RUN_IN_PROGRESS = frozenset(
    {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING", "MANAGED"}
)
REATTACH, REPORT = "reattach", "report"


@dataclass(frozen=True)
class TaggedJob:
    """A SLURM job as a Dagster run's tag recorded it."""

    run_id: str
    run_status: str
    asset: str
    partition: str | None
    job_id: str
    job_dir: str

    @property
    def scope(self) -> tuple[str, str | None]:
        return (self.asset, self.partition)


def parse_job_tag(
    key: str, value: str, run_id: str, run_status: str, assets: Sequence[str]
) -> TaggedJob | None:
    """``mlops/slurm_job.smoke_gpu.gpu01`` = ``123;dir;msgs`` → TaggedJob; None for other
    tags, malformed values and assets not in ``assets`` (a node name may contain dots, an
    asset name does not)."""
    if not key.startswith(JOB_TAG_PREFIX):
        return None
    asset, _, partition = key[len(JOB_TAG_PREFIX) :].partition(".")
    parts = value.split(";")
    if asset not in assets or len(parts) != 3 or not parts[0].isdigit():
        return None
    return TaggedJob(run_id, run_status, asset, partition or None, parts[0], parts[1])


@dataclass(frozen=True)
class OrphanAction:
    """What to do about a job whose Dagster run is no longer running."""

    job: TaggedJob
    action: str  # REATTACH or REPORT
    slurm_state: str
    message: str


def reconcile_orphans(
    tagged_newest_first: Sequence[TaggedJob], live: Mapping[str, str], ended: Mapping[str, str]
) -> list[OrphanAction]:
    """For each (asset, partition) only the newest recorded job counts (older ones were
    superseded). Its run still in progress: nothing to do, the run waits for it. Its run
    FAILED (the process died; run monitoring marks it so) and SLURM still has the job
    (``live``: job id → state): re-attach. The run ended otherwise but the job lives on
    (terminated run whose scancel did not happen): report it with the scancel to run. The
    job ended after its run died (``ended``: job id → sacct state): report its final state,
    since no materialization recorded it. A job in neither map is forgotten by SLURM: skipped."""
    out: list[OrphanAction] = []
    seen: set[tuple[str, str | None]] = set()
    for job in tagged_newest_first:
        if job.scope in seen:
            continue
        seen.add(job.scope)
        if job.run_status in RUN_IN_PROGRESS or job.run_status == "SUCCESS":
            continue
        where = f"{job.asset}" + (f"[{job.partition}]" if job.partition else "")
        if job.job_id in live:
            state = live[job.job_id]
            if job.run_status == "FAILURE":
                out.append(
                    OrphanAction(
                        job,
                        REATTACH,
                        state,
                        f"SLURM job {job.job_id} ({where}) is {state} but run {job.run_id[:8]} "
                        "died: re-attaching a new run",
                    )
                )
            else:
                out.append(
                    OrphanAction(
                        job,
                        REPORT,
                        state,
                        f"SLURM job {job.job_id} ({where}) is {state} though "
                        f"run {job.run_id[:8]} is {job.run_status}: scancel "
                        f"{job.job_id} if it should stop",
                    )
                )
        elif job.job_id in ended:
            state = ended[job.job_id]
            out.append(
                OrphanAction(
                    job,
                    REPORT,
                    state,
                    f"SLURM job {job.job_id} ({where}) ended {state} after run "
                    f"{job.run_id[:8]} ({job.run_status}) stopped waiting: no "
                    f"result was recorded; materialize {where} again",
                )
            )
    return out


def squeue_all_argv() -> list[str]:
    """Every job SLURM still holds, one call per reconcile tick."""
    return ["squeue", "-h", "-o", SQUEUE_FORMAT]


def sacct_jobs_argv(job_ids: Sequence[str]) -> list[str]:
    for j in job_ids:
        if not j.isdigit():
            raise ValueError(f"job id {j!r} is not a number")
    return ["sacct", "-P", "-n", "-X", "-j", ",".join(job_ids), f"--format={SACCT_FORMAT}"]
