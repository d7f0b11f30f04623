"""Run checks and materializations headless through the same Definitions the UI uses, and
turn the run's events into report rows."""

from __future__ import annotations

import difflib
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from mlops_assets.checking import from_check_evaluation
from mlops_assets.core.checks import Evaluation, Severity
from mlops_assets.defs import GROUPS

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

# status ("PASS", "WARN", "FAIL", "DONE"), what finished ("asset check" or "asset"), the
# seconds its step had run: what `Progress.finished` takes
OnProgress = Callable[[str, str, float], None]


class SelectionError(ValueError):
    pass


#: Dagster's error for a run stopped by SIGINT or SIGTERM (Ctrl-C) or a termination request
_INTERRUPT = "DagsterExecutionInterruptedError"
NOT_RUN = "not run: an upstream step failed or a blocking check failed"
NOT_RUN_INTERRUPTED = "not judged: the run was interrupted (Ctrl-C or a termination)"
INTERRUPTED_HINT = "run it again"


class Interrupted(KeyboardInterrupt):
    """A run of this invocation was interrupted, so no later run starts. `rows`: what every
    run had judged by then, the rest marked not run because of the interrupt."""

    def __init__(self, rows: list[Evaluation], run_id: str | None) -> None:
        super().__init__("interrupted")
        self.rows, self.run_id = rows, run_id


@dataclass(frozen=True)
class Selected:
    assets: list[dg.AssetKey]
    materializable: list[dg.AssetKey]
    checks: list[dg.AssetCheckKey]


def select(defs: dg.Definitions, items: Sequence[str]) -> Selected:
    """Groups and single asset keys, the same vocabulary as the UI and the schedules.
    Empty means everything."""
    graph = defs.resolve_asset_graph()
    all_keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    names = {k.to_user_string(): k for k in all_keys}
    wanted: list[dg.AssetKey] = []
    tokens = [t.strip() for item in items for t in item.split(",") if t.strip()]
    for token in tokens or ["*"]:
        if token in ("*", "all"):
            wanted.extend(all_keys)
        elif token in GROUPS:
            wanted.extend(k for k in all_keys if graph.get(k).group_name == token)
        elif token in names:
            wanted.append(names[token])
        else:
            close = difflib.get_close_matches(token, [*GROUPS, *names], n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise SelectionError(
                f"unknown selection {token!r}: use a group ({', '.join(GROUPS)}) or an asset key "
                f"(`mlops-assets list` lists them).{hint}"
            )
    unique = list(dict.fromkeys(wanted))
    checks = [ck for ck in graph.asset_check_keys if ck.asset_key in set(unique)]
    materializable = [k for k in unique if graph.get(k).is_materializable]
    return Selected(
        unique, materializable, sorted(checks, key=lambda c: (c.asset_key.to_user_string(), c.name))
    )


def listing(defs: dg.Definitions) -> list[dict[str, Any]]:
    """Every asset key with its group and check names: the vocabulary of --select."""
    graph = defs.resolve_asset_graph()
    checks: dict[dg.AssetKey, list[str]] = {}
    for ck in graph.asset_check_keys:
        checks.setdefault(ck.asset_key, []).append(ck.name)
    return [
        {
            "group": graph.get(k).group_name or "default",
            "asset": k.to_user_string(),
            "checks": sorted(checks.get(k, [])),
        }
        for k in sorted(
            graph.get_all_asset_keys(),
            key=lambda k: (graph.get(k).group_name or "", k.to_user_string()),
        )
    ]


def progress_listener(on_progress: OnProgress) -> Callable[[Any], None]:
    """An event-log listener that calls on_progress as each asset materializes, each check
    evaluates and each step fails: with the seconds since its step started, for a check its
    probe's own seconds."""
    starts: dict[str, float] = {}

    def listen(entry: Any) -> None:
        event = entry.dagster_event
        if event is None:
            return
        kind, step = event.event_type_value, event.step_key or ""
        if kind == "STEP_START":
            starts[step] = entry.timestamp
            return
        took = entry.timestamp - starts.get(step, entry.timestamp)
        where = f"[{event.partition}]" if event.partition else ""
        if kind == "ASSET_MATERIALIZATION" and event.asset_key is not None:
            on_progress("DONE", event.asset_key.to_user_string() + where, took)
        elif kind == "ASSET_CHECK_EVALUATION":
            ev = from_check_evaluation(event.event_specific_data)
            status = "PASS" if ev.passed else ("FAIL" if ev.severity == Severity.ERROR else "WARN")
            # the probe's own seconds: one step may evaluate many checks one after another
            on_progress(status, f"{ev.asset}{where} {ev.check}", ev.duration_s or took)
        elif kind == "STEP_FAILURE":
            message = _failure_message(event)
            reason = f": {message[:120]}" if message else ""
            on_progress("FAIL", f"step {step}{where} failed{reason}", took)

    return listen


def instance() -> dg.DagsterInstance:
    """The instance of DAGSTER_HOME, so the UI shows headless runs; ephemeral without it."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


@dataclass(frozen=True)
class _Runs:
    """What every run of one `execute` shares: the Definitions, the instance the runs are
    recorded in, the progress callback, and whether assets materialize or only checks run."""

    defs: dg.Definitions
    inst: dg.DagsterInstance
    on_progress: OnProgress | None
    materialize: bool

    def in_process(self, job: Any, **kwargs: Any) -> Any:
        """execute_in_process with a progress listener on the run's event log (the run id is
        chosen here so the listener is in place before the first event)."""
        run_id = str(uuid.uuid4())  # Dagster's own run ids are uuid4 strings
        if self.on_progress is not None:
            self.inst.add_event_listener(run_id, progress_listener(self.on_progress))
        return job.execute_in_process(
            instance=self.inst, raise_on_error=False, run_config=QUIET_LOGS, run_id=run_id, **kwargs
        )

    def job(self, name: str, selection: dg.AssetSelection | None, **kwargs: Any) -> Any:
        """The asset job `name` over `selection`, resolved against the Definitions."""
        job = dg.define_asset_job(name, selection=selection, **kwargs)
        return dg.Definitions.merge(self.defs, dg.Definitions(jobs=[job])).resolve_job_def(name)

    def one(self, sel: Selected) -> tuple[list[Evaluation], str | None]:
        """One run of `sel`'s checks and (when materializing) its assets."""
        if not sel.checks and not (self.materialize and sel.materializable):
            return [], None
        selection: dg.AssetSelection | None = (
            dg.AssetSelection.checks(*sel.checks) if sel.checks else None
        )
        if self.materialize and sel.materializable:
            mats = dg.AssetSelection.assets(*sel.materializable)
            selection = mats if selection is None else mats | selection
        name = "mlops_materialize" if self.materialize else "mlops_validate"
        result = self.in_process(self.job(name, selection), tags={"mlops/cli": name})
        stopped = interrupted(result)
        rows = collect(result, sel, self.materialize, stopped)
        if stopped:
            raise Interrupted(rows, result.run_id)
        return rows, result.run_id

    def partitioned(self, keys: list[dg.AssetKey]) -> list[Evaluation]:
        """One run per partition key of each partitions definition among `keys`."""
        graph = self.defs.resolve_asset_graph()
        groups: dict[str, list[dg.AssetKey]] = {}
        pdefs: dict[str, Any] = {}
        for k in keys:
            pdef = graph.get(k).partitions_def
            name = getattr(pdef, "name", None) or str(pdef)
            groups.setdefault(name, []).append(k)
            pdefs[name] = pdef
        rows: list[Evaluation] = []
        for i, (name, group) in enumerate(sorted(groups.items())):
            names = [k.to_user_string() for k in group]
            try:
                partitions = _partition_keys(name, self.inst)
            except Exception as exc:  # sinfo failed or the HPC side is unreachable
                partitions, why = [], f"cannot list the partitions {name}: {exc}"
            else:
                why = (
                    f"no partition of {name} to run (for GPU nodes: "
                    "no usable GPU node in the smoke partition)"
                )
            if not partitions:
                rows += [
                    Evaluation(
                        asset=n,
                        check="materialized",
                        passed=False,
                        severity=Severity.ERROR,
                        measured="not run",
                        threshold="yes",
                        unit="materialization",
                        hint="check sinfo and the node states",
                        duration_s=0.0,
                        detail=why,
                    )
                    for n in names
                ]
                continue
            job_name = f"mlops_materialize_partitioned_{i}"
            job = self.job(job_name, dg.AssetSelection.assets(*group), partitions_def=pdefs[name])
            for pk in partitions:
                result = self.in_process(job, partition_key=pk, tags={"mlops/cli": job_name})
                done = {
                    e.asset_key.to_user_string()
                    for e in result.get_asset_materialization_events()
                    if e.asset_key
                }
                failures = _step_failures(result)
                stopped = interrupted(result)
                rows += [
                    _materialized(f"{n}[{pk}]", n in done, failures.get(n, ""), stopped)
                    for n in names
                ]
                if stopped:
                    raise Interrupted(rows, result.run_id)
        return rows


def execute(
    defs: dg.Definitions,
    sel: Selected,
    *,
    materialize: bool,
    inst: dg.DagsterInstance,
    on_progress: OnProgress | None = None,
) -> tuple[list[Evaluation], str | None]:
    """One run for the unpartitioned assets and the checks; partitioned assets (the per-node
    smoke) then get one run per partition key, reported as `asset[partition]`; unpartitioned
    assets downstream of them (the fleet baseline, which reads every node's smoke) and their
    checks run last, so they judge this invocation's figures."""

    runs = _Runs(defs, inst, on_progress, materialize)
    done: list[Evaluation] = []
    try:
        return _execute(runs, sel, done)
    except Interrupted as exc:  # with what the runs before the interrupted one judged
        raise Interrupted(done + exc.rows, exc.run_id) from None


def _execute(
    runs: _Runs, sel: Selected, done: list[Evaluation]
) -> tuple[list[Evaluation], str | None]:
    """execute's runs in their order; `done` gathers the rows of each finished run."""
    graph = runs.defs.resolve_asset_graph()
    partitioned = (
        [k for k in sel.materializable if graph.get(k).partitions_def is not None]
        if runs.materialize
        else []
    )
    if partitioned:
        after = [
            k
            for k in sel.materializable
            if k not in partitioned and set(graph.get(k).parent_keys) & set(partitioned)
        ]
        first = [k for k in sel.materializable if k not in partitioned and k not in after]
        rest = Selected(sel.assets, first, [c for c in sel.checks if c.asset_key not in after])
        rows, run_id = runs.one(rest)
        done += rows
        done += runs.partitioned(partitioned)
        if after:
            done += runs.one(
                Selected(after, after, [c for c in sel.checks if c.asset_key in after])
            )[0]
        return done, run_id
    return runs.one(sel)


def _partition_keys(name: str, inst: dg.DagsterInstance) -> list[str]:
    """The keys to run now: for the GPU nodes (the only dynamic partitions) the usable GPU
    nodes that sinfo shows, added as partitions first; otherwise the instance's keys."""
    from mlops_assets.defs.smoke.definitions import GPU_NODES_NAME, sync_node_partitions

    if name != GPU_NODES_NAME:
        return list(inst.get_dynamic_partitions(name))
    from mlops_assets.platform import active, build_resources

    catalog = active().catalog
    return sync_node_partitions(catalog, inst, build_resources(catalog)["hpc"].runner())


def _materialized(asset: str, done: bool, failure: str, stopped: bool = False) -> Evaluation:
    """The row that reports an asset's materialization as if it were a check, so the report
    shows what was built beside what was checked. `failure`: the failed step's message;
    `stopped`: the run was interrupted, which is the cause when no step failure names one."""
    if stopped:
        failure, hint = failure or NOT_RUN_INTERRUPTED, INTERRUPTED_HINT
    else:
        hint = "see the run's log in the Dagster UI for the failing step"
    return Evaluation(
        asset=asset,
        check="materialized",
        passed=done,
        severity=Severity.ERROR,
        measured="yes" if done else "no",
        threshold="yes",
        unit="materialization",
        hint="" if done else hint,
        duration_s=0.0,
        detail="" if done else failure,
    )


def interrupted(result: Any) -> bool:
    """Whether Dagster stopped the run on an interrupt: a failure whose error, or a cause of
    it, is Dagster's interrupt error (the run's own failure and the steps it cut short)."""
    for event in result.all_events:
        if event.event_type_value not in ("STEP_FAILURE", "PIPELINE_FAILURE", "RUN_FAILURE"):
            continue
        err = getattr(event.event_specific_data, "error", None)
        while err is not None:
            if getattr(err, "cls_name", "") == _INTERRUPT:
                return True
            err = getattr(err, "cause", None)
    return False


def collect(
    result: Any, sel: Selected, materialize: bool, stopped: bool = False
) -> list[Evaluation]:
    """The report's rows of one run: each check's evaluation, each asset's materialization
    when materializing, and a row for every selected check that did not run, saying why
    (`stopped`: the run was interrupted, see `interrupted`)."""
    rows: list[Evaluation] = []
    seen: set[tuple[str, str]] = set()
    for data in result.get_asset_check_evaluations():
        ev = from_check_evaluation(data)
        seen.add((ev.asset, ev.check))
        rows.append(ev)
    failures = _step_failures(result)
    if materialize:
        materialized = {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        }
        for key in sel.materializable:
            name = key.to_user_string()
            rows.append(_materialized(name, name in materialized, failures.get(name, ""), stopped))
    for ck in sel.checks:
        asset, check = ck.asset_key.to_user_string(), ck.name
        if (asset, check) not in seen:
            reason = (
                failures.get(check)
                or failures.get(asset)
                or (NOT_RUN_INTERRUPTED if stopped else NOT_RUN)
            )
            rows.append(
                Evaluation(
                    asset=asset,
                    check=check,
                    passed=False,
                    severity=Severity.ERROR,
                    measured="not run",
                    threshold=None,
                    unit="",
                    hint=INTERRUPTED_HINT
                    if stopped
                    else "fix the failure named here, then run again",
                    duration_s=0.0,
                    detail=reason[:500],
                )
            )
    return rows


def _step_failures(result: Any) -> dict[str, str]:
    """Step key -> the error's message (resource init errors, e.g. a missing EnvVar)."""
    out: dict[str, str] = {}
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE" or not event.step_key:
            continue
        key = event.step_key.split(".")[-1].removesuffix("_check")
        out[key] = _failure_message(event) or "step failed"
        out[event.step_key] = out[key]
    return out


def _failure_message(event: Any) -> str:
    """A STEP_FAILURE's innermost cause, first line (Dagster wraps the user's exception in
    DagsterExecutionStepExecutionError, whose own message names only the op)."""
    err = getattr(event.event_specific_data, "error", None)
    message = getattr(err, "message", "") if err else ""
    cause = getattr(err, "cause", None)
    while cause is not None:
        message = getattr(cause, "message", message)
        cause = getattr(cause, "cause", None)
    return message.strip().splitlines()[0] if message.strip() else ""
