"""Dagster Pipes through SLURM: a payload runs as a batch job on a compute node and reports
back through a message file on the shared filesystem (hpc_pipes.RunnerFileMessageReader).

Why a job and not a process: the data mover, the build partition and the smoke jobs need the
resources, the node and the accounting that only SLURM gives, and a job outlives the Dagster
process that submitted it. So the client records the job id in the run's tags
(`mlops/slurm_job.<asset>` = `id;job dir;message file`) and, when told to re-attach, a later
run picks up a job that SLURM still has queued or running instead of submitting another;
terminating the run (SIGTERM/SIGINT) runs `scancel`, while a killed process leaves the job
running for the next run. The final state always comes from `sacct` (the queue forgets a job
as soon as it ends), and a failed job's directory stays for inspection. The job's size, the
partition and the container are fixed when HpcSide makes the client, so `run` is the one
PayloadClient signature every placement shares (defined once, in PayloadClient).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import dagster as dg

from mlops_assets.core import slurm_jobs as sj
from mlops_assets.core.parse.slurm import jobs as job_text
from mlops_assets.core.parse.slurm import states
from mlops_assets.core.transport.hostexec import Runner
from mlops_assets.resources.hpc_pipes import (
    Extras,
    PayloadClient,
    RunnerFileMessageReader,
    open_payload_session,
    payload_env,
)
from mlops_assets.resources.shipping import SMOKE

MAX_SCRIPT_BYTES = 96 * 1024
SACCT_WAIT_S = 60.0
LOG_TAIL_LINES = 30


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
    return f"{sj.JOB_TAG_PREFIX}{key}" + (f".{partition}" if partition else "")


class SlurmPipesClient(PayloadClient):
    """A payload as a SLURM job of size `job` on `partition` (in `container` when given); see
    the module docstring. It holds no state beyond its settings."""

    def __init__(
        self,
        runner: Runner,
        *,
        partition: str,
        job: sj.Resources,
        python: str,
        scripts_dir: str,
        jobs_dir: str,
        env: Mapping[str, str],
        kit: str = SMOKE,
        container: str | None = None,
        binds: Sequence[str] = (),
        reattach: bool = False,
        backoff: sj.Backoff | None = None,
        sacct_wait_s: float = SACCT_WAIT_S,
        keep_succeeded_job_dirs: bool = False,
    ) -> None:
        super().__init__(runner, python=python, scripts_dir=scripts_dir, env=env)
        self.partition = partition
        self.job = job
        self.jobs_dir = jobs_dir.rstrip("/")
        self.kit = kit
        self.container = container
        self.binds = list(binds)
        self.reattach = reattach
        self.backoff = backoff or sj.Backoff()
        self.sacct_wait_s = sacct_wait_s
        self.keep_succeeded_job_dirs = keep_succeeded_job_dirs

    # ------------------------------------------------------------------ the Pipes run

    def _launch(
        self, context: dg.AssetExecutionContext, payload: str, where: str, extras: Extras
    ) -> dg.PipesClientCompletedInvocation:
        """With `reattach`, this asset's (and node's) job of an earlier run that SLURM still
        has queued or running is picked up instead of submitting another."""
        scope = self.job.nodelist
        reattach = (
            find_reattachable(context.instance, self.runner, tag_key(context.asset_key, scope))
            if self.reattach
            else None
        )
        if reattach is None:
            token = f"{payload.removesuffix('.py')}-{context.run.run_id[:8]}-{uuid.uuid4().hex[:8]}"
            job_dir = f"{self.jobs_dir}/{token}"
            attached = Attached("", job_dir, f"{job_dir}/pipes-messages.jsonl")
        else:
            attached = reattach
        reader = RunnerFileMessageReader(self.runner, attached.messages, fresh=reattach is None)
        with open_payload_session(context, reader, extras) as session:
            if reattach is None:
                spec = self.job_spec(
                    payload, where, attached.job_dir, session.get_bootstrap_env_vars()
                )
                attached = replace(attached, job_id=self.submit(spec))
                self._tag(context, attached, scope)
                node = f", node {scope}" if scope else ""
                if self.job.nodes > 1:
                    node += f", {self.job.nodes} nodes"
                context.log.info(
                    f"submitted SLURM job {attached.job_id} ({payload}, partition "
                    f"{self.partition}, gres gpu:{self.job.gpus}{node})"
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
            # the job dir stays for inspection
            self._fail(context, attached, outcome, session, meta)
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
        bootstrap: Mapping[str, str],
        args: Sequence[str] = (),
    ) -> sj.JobSpec:
        """The batch job that runs `payload` (in the container's python3 when there is one)."""
        python = "python3" if self.container else self.python
        return sj.JobSpec(
            name=f"mlops-{payload.removesuffix('.py')}".replace("_", "-"),
            partition=self.partition,
            command=[python, f"{where}/{payload}", *args],
            workdir=job_dir,
            size=self.job,
            container=self.container,
            binds=self.binds,
            env=payload_env(self.env, bootstrap),
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
                    "hint": (
                        "the jobs directory on BeeGFS must be writable (materialize beegfs_layout)"
                    )
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
        return str(job_text.parse_sbatch(res.stdout).job_id)

    def wait(self, context: Any, job_id: str) -> sj.JobOutcome:
        """squeue with backoff until the job leaves the queue, then sacct until it shows a
        terminal state (accounting can trail the controller by a moment)."""
        backoff = sj.Backoff(self.backoff.first, self.backoff.factor, self.backoff.cap)
        last: str | None = None
        while True:
            res = self.runner.run(sj.squeue_argv(job_id), timeout_s=60)
            records = job_text.parse_squeue(res.stdout) if res.ok else []
            if res.ok and not records:
                break
            if records:
                rec = records[0]
                if rec.state in states.TERMINAL_JOB_STATES:
                    break
                shown = (
                    f"{rec.state}"
                    f"{' (' + rec.reason + ')' if rec.reason else ''}"
                    f"{' on ' + ','.join(rec.nodes) if rec.nodes else ''}"
                )
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
                    f"SLURM job {job_id}: sacct's answer is unreadable, "
                    f"so its final state is unknown: {exc}",
                    metadata={
                        "hint": "run the sacct command by hand; "
                        "check SACCT_FORMAT in the environment and the SLURM version"
                    },
                ) from None
            if outcome is not None:
                return outcome
            if time.monotonic() > deadline:
                raise dg.Failure(
                    f"SLURM job {job_id} left the queue but sacct shows no final state "
                    f"after {self.sacct_wait_s:.0f}s" + (f": {res.tail(2)}" if not res.ok else ""),
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
            f"{outcome.describe()}\n"
            f"--- stdout (last {LOG_TAIL_LINES} lines) ---\n{out}\n"
            f"--- stderr (last {LOG_TAIL_LINES} lines) ---\n{err}"
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
        records = job_text.parse_squeue(res.stdout) if res.ok else []
        if records and records[0].state not in states.TERMINAL_JOB_STATES:
            return attached
        return None  # the newest job for this key has finished: nothing to re-attach to
    return None
