"""Dagster Pipes through SLURM: a payload runs as a batch job on a compute node and reports
back through a message file on the shared filesystem.

`SlurmPipesClient.run`:

1. ships the payloads (hpc_pipes.ship_payloads: sha256-compared, temp file + rename) to BeeGFS
   `scripts/mlops_payloads/`, with core/smoke_rules.py as `mlops_smoke_rules.py`, core/parse/nvidia_smi.py
   as `mlops_nvidia_smi.py` and the orchestrator's own `dagster_pipes` module (stdlib only), so a container without
   dagster-pipes still speaks the protocol;
2. builds the job script (core.slurm_jobs.render_script: partition, time, cpus, mem,
   `--gres=gpu:N`, `--nodelist`, `apptainer exec --nv <image>` when the catalog names one)
   with the Pipes bootstrap exported in it, writes it to a per-job directory under BeeGFS
   `jobs/smoke/`, and submits it with `sbatch --parsable` through the host runner;
3. records the job id in the run's tags (`mlops/slurm_job.<asset>` = `id;job dir;message
   file`), so a later run re-attaches to a job that is still queued or running instead of
   submitting another (`find_reattachable`);
4. tails the Pipes message file (hpc_pipes.RunnerFileMessageReader), polls `squeue` with
   backoff, then confirms the final state and exit code with `sacct` and attaches its figures
   (elapsed, state, exit code, AllocTRES incl. gres/gpu, MaxRSS) as metadata;
5. on failure logs the tail of the job's stdout/stderr and raises `dg.Failure` naming the
   state and exit code, with the payload's own result (a custom Pipes message) as metadata;
   a failed job's directory stays for inspection, a succeeded one is removed;
6. terminating the run (SIGTERM/SIGINT → DagsterExecutionInterruptedError/KeyboardInterrupt)
   runs `scancel`; a process that is killed outright leaves the job running, and the next run
   re-attaches.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core import slurm_jobs as sj
from mlops_assets.core.parse.slurm.jobs import parse_sbatch, parse_squeue
from mlops_assets.core.parse.slurm.states import TERMINAL_JOB_STATES
from mlops_assets.core.transport.hostexec import Runner
from mlops_assets.resources.hpc_pipes import (
    PAYLOAD_ENV,
    PAYLOAD_FILES,
    HpcPipesClient,
    RunnerFileMessageReader,
    ship_payloads,
)

SMOKE_FILES: dict[str, tuple[str, str]] = {
    "smoke_common.py": ("mlops_assets.payloads", "smoke_common.py"),
    "gpu_smoke.py": ("mlops_assets.payloads", "gpu_smoke.py"),
    "nccl_allreduce.py": ("mlops_assets.payloads", "nccl_allreduce.py"),
    "mnist_train.py": ("mlops_assets.payloads", "mnist_train.py"),
    "mnist_ddp.py": ("mlops_assets.payloads", "mnist_ddp.py"),
    "slurm_probe.py": ("mlops_assets.payloads", "slurm_probe.py"),
    "mlops_smoke_rules.py": ("mlops_assets.core", "smoke_rules.py"),
    "mlops_nvidia_smi.py": ("mlops_assets.core.parse", "nvidia_smi.py"),
    "mlops_nodelist.py": ("mlops_assets.core.parse", "nodelist.py"),
    "dagster_pipes.py": ("dagster_pipes", "__init__.py"),
}
TAG_PREFIX = sj.JOB_TAG_PREFIX
MAX_SCRIPT_BYTES = 96 * 1024
SACCT_WAIT_S = 60.0
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class Resources:
    """What one job asks SLURM for; gpus, cpus and memory are per node. ``nodes`` > 1 or
    ``srun`` run the payload once per node through srun (the multi-node training smoke)."""

    gpus: int = 0
    cpus: int = 1
    mem_mb: int = 1024
    time_limit_min: int = 10
    nodelist: str | None = None
    nodes: int = 1
    srun: bool = False


@dataclass(frozen=True)
class Attached:
    """A submitted job and where its files are: enough to re-attach from another run."""

    job_id: str
    job_dir: str
    messages: str

    def tag(self) -> str:
        return f"{self.job_id};{self.job_dir};{self.messages}"

    @staticmethod
    def from_tag(value: str) -> Attached | None:
        parts = value.split(";")
        if len(parts) != 3 or not parts[0].isdigit():
            return None
        return Attached(*parts)


def tag_key(asset_key: dg.AssetKey, partition: str | None = None) -> str:
    key = asset_key.to_user_string().replace("/", ".")
    return f"{TAG_PREFIX}{key}" + (f".{partition}" if partition else "")


class SlurmPipesClient(dg.PipesClient):
    """See the module docstring. One instance per asset execution is fine; it holds no state
    beyond its settings."""

    def __init__(
        self,
        runner: Runner,
        *,
        partition: str,
        python: str,
        scripts_dir: str,
        jobs_dir: str,
        env: Mapping[str, str] | None = None,
        container: str | None = None,
        binds: Sequence[str] = (),
        files: Mapping[str, tuple[str, str]] | None = None,
        backoff: sj.Backoff | None = None,
        sacct_wait_s: float = SACCT_WAIT_S,
        keep_succeeded_job_dirs: bool = False,
    ) -> None:
        self.runner = runner
        self.partition = partition
        self.python = python
        self.scripts_dir = scripts_dir
        self.jobs_dir = jobs_dir.rstrip("/")
        self.env = dict(env or {})
        self.container = container
        self.binds = list(binds)
        self.files = dict(files or SMOKE_FILES)
        self.backoff = backoff or sj.Backoff()
        self.sacct_wait_s = sacct_wait_s
        self.keep_succeeded_job_dirs = keep_succeeded_job_dirs

    # ------------------------------------------------------------------ the Pipes run

    def run(  # type: ignore[override]
        self,
        *,
        context: dg.AssetExecutionContext,
        payload: str,
        resources: Resources,
        extras: dict[str, Any] | None = None,
        args: Sequence[str] = (),
        reattach: Attached | None = None,
        tag_scope: str | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        if payload not in self.files or not payload.endswith(".py"):
            raise ValueError(f"unknown payload {payload!r}")
        where = ship_payloads(self.runner, self.scripts_dir, self.files)
        if reattach is None:
            token = f"{payload.removesuffix('.py')}-{context.run.run_id[:8]}-{uuid.uuid4().hex[:8]}"
            job_dir = f"{self.jobs_dir}/{token}"
            attached = Attached("", job_dir, f"{job_dir}/pipes-messages.jsonl")
        else:
            attached = reattach
        reader = RunnerFileMessageReader(self.runner, attached.messages, fresh=reattach is None)
        with dg.open_pipes_session(
            context=context,
            context_injector=dg.PipesEnvContextInjector(),
            message_reader=reader,
            extras=extras,
        ) as session:
            if reattach is None:
                spec = self.job_spec(
                    payload,
                    where,
                    attached.job_dir,
                    resources,
                    session.get_bootstrap_env_vars(),
                    args,
                )
                attached = replace(attached, job_id=self.submit(spec))
                self._tag(context, attached, tag_scope)
                where = f", node {resources.nodelist}" if resources.nodelist else ""
                if resources.nodes > 1:
                    where += f", {resources.nodes} nodes"
                context.log.info(
                    f"submitted SLURM job {attached.job_id} ({payload}, partition {self.partition}, "
                    f"gres gpu:{resources.gpus}{where})"
                )
            else:
                context.log.info(f"re-attached to SLURM job {attached.job_id} ({attached.job_dir})")
            session.report_launched(
                {"extras": {"slurm_job_id": attached.job_id, "job_dir": attached.job_dir}}
            )
            try:
                outcome = self.wait(context, attached.job_id)
            except (KeyboardInterrupt, dg.DagsterExecutionInterruptedError):
                res = self.runner.run(sj.scancel_argv(attached.job_id), timeout_s=30)
                context.log.warning(
                    f"run terminated: scancel {attached.job_id} exited {res.returncode}"
                    + (f" ({res.tail(2)})" if not res.ok else "")
                )
                raise
        meta = outcome.metadata()
        meta["slurm_job_dir"] = attached.job_dir
        if not outcome.succeeded:
            self._fail(
                context, attached, outcome, session, meta
            )  # the job dir stays for inspection
        if not self.keep_succeeded_job_dirs and attached.job_dir.startswith(self.jobs_dir + "/"):
            self.runner.run(["rm", "-rf", "--", attached.job_dir], timeout_s=60)
            meta.pop("slurm_job_dir", None)
        return dg.PipesClientCompletedInvocation(session, metadata=meta)

    # --------------------------------------------------------------------- the pieces

    def job_spec(
        self,
        payload: str,
        where: str,
        job_dir: str,
        res: Resources,
        bootstrap: Mapping[str, str],
        args: Sequence[str] = (),
    ) -> sj.JobSpec:
        python = "python3" if self.container else self.python
        return sj.JobSpec(
            name=f"mlops-{payload.removesuffix('.py')}".replace("_", "-"),
            partition=self.partition,
            command=[python, f"{where}/{payload}", *args],
            workdir=job_dir,
            time_limit_min=res.time_limit_min,
            cpus=res.cpus,
            mem_mb=res.mem_mb,
            gpus=res.gpus,
            nodelist=res.nodelist,
            nodes=res.nodes,
            srun=res.srun,
            container=self.container,
            binds=self.binds,
            env={**self.env, **PAYLOAD_ENV, **bootstrap},
        )

    def submit(self, spec: sj.JobSpec) -> str:
        """Write the script into the job directory and sbatch it; returns the job id."""
        script = sj.render_script(spec)
        if len(script) > MAX_SCRIPT_BYTES:
            raise dg.Failure(
                f"job script of {len(script)} bytes is too large (Pipes extras too big?)"
            )
        path = f"{spec.workdir}/job.sh"
        encoded = base64.b64encode(script.encode()).decode()
        wrote = self.runner.run(
            [
                "sh",
                "-c",
                'mkdir -p -- "$1" && printf %s "$2" | base64 -d > "$3"',
                "sh",
                spec.workdir,
                encoded,
                path,
            ],
            timeout_s=60,
        )
        if not wrote.ok:
            raise dg.Failure(
                f"cannot write {path} on {self.runner.where}: {wrote.tail(3)}",
                metadata={
                    "hint": "the jobs directory on BeeGFS must be writable (materialize beegfs_layout)"
                },
            )
        res = self.runner.run(sj.sbatch_argv(path), timeout_s=60)
        if not res.ok:
            raise dg.Failure(
                f"sbatch refused the job (exit {res.returncode}): {res.tail(3)}",
                metadata={
                    "hint": "check the partition, GRES and limits in the catalog's smoke.jobs",
                    "script": dg.MetadataValue.md(f"```bash\n{script}\n```"),
                },
            )
        return str(parse_sbatch(res.stdout).job_id)

    def wait(self, context: Any, job_id: str) -> sj.JobOutcome:
        """squeue with backoff until the job leaves the queue, then sacct until it shows a
        terminal state (accounting can trail the controller by a moment)."""
        backoff = sj.Backoff(self.backoff.first, self.backoff.factor, self.backoff.cap)
        last: str | None = None
        while True:
            res = self.runner.run(sj.squeue_argv(job_id), timeout_s=60)
            records = parse_squeue(res.stdout) if res.ok else []
            if res.ok and not records:
                break
            if records:
                rec = records[0]
                if rec.state in TERMINAL_JOB_STATES:
                    break
                shown = f"{rec.state}{' (' + rec.reason + ')' if rec.reason else ''}{' on ' + ','.join(rec.nodes) if rec.nodes else ''}"
                if shown != last:
                    context.log.info(f"SLURM job {job_id}: {shown}")
                    last = shown
            time.sleep(backoff.next())
        deadline = time.monotonic() + self.sacct_wait_s
        delay = sj.Backoff(0.1, 1.5, 2.0)
        while True:
            res = self.runner.run(sj.sacct_argv(job_id), timeout_s=60)
            try:
                outcome = sj.outcome_from_sacct(res.stdout, job_id) if res.ok else None
            except ValueError as exc:  # never guess a final state from output we cannot read
                raise dg.Failure(
                    f"SLURM job {job_id}: sacct's answer is unreadable, so its final state is unknown: {exc}",
                    metadata={
                        "hint": "run the sacct command by hand; check SACCT_FORMAT in the environment and the SLURM version"
                    },
                ) from None
            if outcome is not None:
                return outcome
            if time.monotonic() > deadline:
                raise dg.Failure(
                    f"SLURM job {job_id} left the queue but sacct shows no final state after {self.sacct_wait_s:.0f}s"
                    + (f": {res.tail(2)}" if not res.ok else ""),
                    metadata={"hint": "check slurmdbd (sacct needs accounting storage)"},
                )
            time.sleep(delay.next())

    def _tag(self, context: Any, attached: Attached, scope: str | None) -> None:
        for key in context.selected_asset_keys:
            context.instance.add_run_tags(context.run.run_id, {tag_key(key, scope): attached.tag()})

    def tail(self, path: str, lines: int = LOG_TAIL_LINES) -> str:
        res = self.runner.run(["tail", "-n", str(lines), "--", path], timeout_s=30)
        return res.stdout.strip() if res.ok else f"(cannot read {path}: {res.tail(1)})"

    def _fail(
        self,
        context: Any,
        attached: Attached,
        outcome: sj.JobOutcome,
        session: Any,
        meta: dict[str, Any],
    ) -> None:
        out = self.tail(f"{attached.job_dir}/slurm-{attached.job_id}.out")
        err = self.tail(f"{attached.job_dir}/slurm-{attached.job_id}.err")
        context.log.error(
            f"{outcome.describe()}\n--- stdout (last {LOG_TAIL_LINES} lines) ---\n{out}\n--- stderr (last {LOG_TAIL_LINES} lines) ---\n{err}"
        )
        result = payload_result(session.get_custom_messages())
        reason = str(result.get("error") or "") if result else ""
        for key, value in (result or {}).items():
            if isinstance(value, bool | int | float | str) and key not in meta:
                meta[key] = value
        meta["stdout_tail"] = dg.MetadataValue.text(out)
        meta["stderr_tail"] = dg.MetadataValue.text(err)
        raise dg.Failure(
            description=outcome.describe() + (f": {reason}" if reason else ""), metadata=meta
        )


def payload_result(custom_messages: Sequence[Any]) -> dict[str, Any] | None:
    """The smoke payload's result from its custom Pipes message (sent on FAIL)."""
    for msg in reversed(list(custom_messages)):
        if isinstance(msg, dict) and isinstance(msg.get("result"), dict):
            return dict(msg["result"])
    return None


def find_reattachable(
    instance: dg.DagsterInstance, runner: Runner, key: str, limit: int = 25
) -> Attached | None:
    """The job of an earlier run for this tag key that SLURM still has queued or running."""
    for run in instance.get_runs(limit=limit):
        value = run.tags.get(key)
        attached = Attached.from_tag(value) if value else None
        if attached is None:
            continue
        res = runner.run(sj.squeue_argv(attached.job_id), timeout_s=30)
        records = parse_squeue(res.stdout) if res.ok else []
        if records and records[0].state not in TERMINAL_JOB_STATES:
            return attached
        return None  # the newest job for this key has finished: nothing to re-attach to
    return None


def partition_client(
    catalog: Catalog, runner: Runner, partition: str, jobs_subdir: str, payloads: Sequence[str]
) -> SlurmPipesClient:
    """HPC-side payloads as SLURM jobs on `partition`, with the HPC Python and the catalog's job
    environment; `payloads` are shipped with their helpers (stage_common, manifest)."""
    b = catalog.hpc.beegfs
    names = ("stage_common.py", "mlops_manifest.py", *payloads)
    return SlurmPipesClient(
        runner,
        partition=partition,
        python=catalog.hpc.python,
        scripts_dir=b.directory("scripts"),
        jobs_dir=f"{b.directory('jobs')}/{jobs_subdir}",
        env=dict(catalog.hpc.env),
        files={n: PAYLOAD_FILES[n] for n in names},
    )


def build_client_for(catalog: Catalog, runner: Runner, partition: str) -> SlurmPipesClient:
    """Container builds as SLURM jobs on the build partition, with the HPC Python (the image
    being built cannot run its own build)."""
    return partition_client(
        catalog, runner, partition, "containers", ("mlops_apptainer.py", "container_image.py")
    )


class PartitionPayloadClient(HpcPipesClient):
    """HpcPipesClient's interface over a SLURM job: the staging assets call `run(context=,
    payload=, extras=)` the same way whether the catalog has a data-mover partition or not."""

    def __init__(self, client: SlurmPipesClient, resources: Resources) -> None:
        super().__init__(
            client.runner,
            python=client.python,
            scripts_dir=client.scripts_dir,
            messages_dir=client.jobs_dir,
            env=client.env,
        )
        self.client = client
        self.resources = resources

    @classmethod
    def for_data_mover(cls, catalog: Catalog, runner: Runner) -> PartitionPayloadClient:
        mover = catalog.hpc.data_mover
        assert mover is not None
        staging = [
            n for n in PAYLOAD_FILES if n.startswith(("stage_", "sync_")) and n != "stage_common.py"
        ]
        job = mover.job
        res = Resources(
            gpus=job.gpus, cpus=job.cpus, mem_mb=job.mem_mb, time_limit_min=job.time_limit_min
        )
        return cls(partition_client(catalog, runner, mover.partition, "data-mover", staging), res)

    def run(  # type: ignore[override]
        self,
        *,
        context: dg.AssetExecutionContext,
        payload: str,
        extras: dict[str, Any] | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        context.log.info(
            f"{payload} as a SLURM job on the data-mover partition {self.client.partition}"
        )
        return self.client.run(
            context=context, payload=payload, resources=self.resources, extras=extras
        )


def client_for(catalog: Catalog, runner: Runner) -> SlurmPipesClient:
    """The smoke jobs' client, from the catalog."""
    b = catalog.hpc.beegfs
    container = None
    if catalog.smoke.container is not None:
        container = catalog.container_path(catalog.smoke.container)
    return SlurmPipesClient(
        runner,
        partition=catalog.smoke.partition,
        python=catalog.hpc.python,
        scripts_dir=b.directory("scripts"),
        jobs_dir=f"{b.directory('jobs')}/smoke",
        env=dict(catalog.hpc.env),
        container=container,
        binds=[catalog.hpc.beegfs.root] if container else [],
    )
