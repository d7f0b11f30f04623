"""The thin Dagster layer over core.checks: a CheckSpec becomes an @asset_check whose
result carries measured value, threshold, unit, hint, severity and duration as metadata.

`encode`/`decode` are the one translation between an Evaluation and Dagster's check-result
metadata: the UI shows what `encode` writes, and the CLI report (headless) and the metrics
export (defs/observability) read it back with `from_check_evaluation`."""

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import replace
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

import dagster as dg

from mlops_assets.catalog.schema import Catalog, Freshness
from mlops_assets.core.checks import (
    CheckSpec,
    Evaluation,
    Outcome,
    ProbeFailed,
    Scalar,
    Severity,
    run_check,
)
from mlops_assets.core.transport.hostexec import Runner
from mlops_assets.resources.clients import HttpServiceResource, KubernetesResource, S3Resource
from mlops_assets.resources.hpc import HpcSide

LIGHT_TAG = "mlops/light"
MAX_CONCURRENT_PROBES = 8


R = TypeVar("R")


class _Resource(Generic[R]):
    """A ProbeContext attribute: the run's resource of the same key, of type `kind`. One line
    per resource, each typed, so mypy checks probe code against the resource it really gets."""

    def __init__(self, kind: type[R]) -> None:
        self.kind = kind
        self.key = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    @overload
    def __get__(self, ctx: None, owner: type | None = None) -> "_Resource[R]": ...

    @overload
    def __get__(self, ctx: "ProbeContext", owner: type | None = None) -> R: ...

    def __get__(self, ctx: "ProbeContext | None", owner: type | None = None) -> "R | _Resource[R]":
        if ctx is None:
            return self
        value = getattr(ctx._resources, self.key, None)
        if value is None:
            raise ProbeFailed(
                f"this check's probe uses the {self.key!r} resource but its spec does not "
                "require it",
                f"add {self.key!r} to the CheckSpec's `requires`",
            )
        if not isinstance(value, self.kind):
            raise TypeError(
                f"resource {self.key!r} is a {type(value).__name__}, not {self.kind.__name__}"
            )
        return value


class ProbeContext:
    """What a probe sees: the catalog, a logger, and the resources its spec `requires`, each
    typed (see _Resource). A resource the spec did not ask for is absent from the run (Dagster
    provides only required keys): asking for it fails the probe naming the missing `requires`
    entry instead of an AttributeError."""

    hpc = _Resource(HpcSide)
    s3 = _Resource(S3Resource)
    kubernetes = _Resource(KubernetesResource)
    mlflow = _Resource(HttpServiceResource)
    minio_http = _Resource(HttpServiceResource)
    prometheus = _Resource(HttpServiceResource)
    pushgateway = _Resource(HttpServiceResource)
    grafana = _Resource(HttpServiceResource)

    def __init__(self, catalog: Catalog, resources: Any = None, log: Any = None) -> None:
        self.catalog = catalog
        self._resources = resources
        self.log = log


#: A check of this package: its probe is given a ProbeContext.
ProbeSpec = CheckSpec[ProbeContext]


#: The metadata keys every check result carries; anything else is one of the probe's extras.
STANDARD_KEYS = frozenset(
    {"measured", "threshold", "unit", "severity", "hint", "duration_s", "nodes", "detail"}
)
#: An extra whose name is a standard key is stored under this prefix, so it cannot overwrite it.
EXTRA_PREFIX = "extra/"


def _scalar(v: Scalar) -> dg.MetadataValue:
    """bool before int (bool is an int), int kept int, so a figure reads back as it was."""
    if v is None:
        return dg.MetadataValue.null()
    if isinstance(v, bool):
        return dg.MetadataValue.bool(v)
    if isinstance(v, int):
        return dg.MetadataValue.int(v)
    if isinstance(v, float):
        return dg.MetadataValue.float(v)
    return dg.MetadataValue.text(str(v))


def encode(ev: Evaluation) -> dict[str, dg.MetadataValue]:
    """An Evaluation as AssetCheckResult metadata: what the UI shows and what `decode` reads
    back (duration to the millisecond). Nodes are a JSON list, so a name may hold anything."""
    meta: dict[str, dg.MetadataValue] = {
        "measured": _scalar(ev.measured),
        "threshold": _scalar(ev.threshold),
        "unit": dg.MetadataValue.text(ev.unit),
        "severity": dg.MetadataValue.text(str(ev.severity)),
        "hint": dg.MetadataValue.text(ev.hint),
        "duration_s": dg.MetadataValue.float(round(ev.duration_s, 3)),
    }
    if ev.nodes:
        meta["nodes"] = dg.MetadataValue.json(list(ev.nodes))
    if ev.detail:
        meta["detail"] = dg.MetadataValue.text(ev.detail)
    for key, extra in ev.extra.items():
        meta[EXTRA_PREFIX + key if key in STANDARD_KEYS else key] = _scalar(extra)
    return meta


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


def _nodes(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, list | tuple):
        return tuple(str(n) for n in value)
    # results recorded before nodes became a JSON list: ", "-joined text
    return tuple(n.strip() for n in str(value).split(",") if n.strip())


def decode(
    *, asset: str, check: str, passed: bool, severity: Any, metadata: Mapping[str, Any]
) -> Evaluation:
    """The Evaluation that `encode` wrote, from a check result's fields and metadata (as
    MetadataValues or plain values). `severity` is Dagster's AssetCheckSeverity or ours."""
    md = {k: _plain(v) for k, v in metadata.items()}
    sev = md.get("severity")
    if sev not in (Severity.ERROR, Severity.WARN):
        sev = (
            Severity.ERROR
            if severity in (dg.AssetCheckSeverity.ERROR, Severity.ERROR)
            else Severity.WARN
        )
    extra: dict[str, Scalar] = {}
    for key, value in md.items():
        if key in STANDARD_KEYS or key.startswith("dagster/"):
            continue
        extra[key.removeprefix(EXTRA_PREFIX)] = value
    return Evaluation(
        asset=asset,
        check=check,
        passed=bool(passed),
        severity=Severity(sev),
        measured=md.get("measured"),
        threshold=md.get("threshold"),
        unit=str(md.get("unit") or ""),
        hint=str(md.get("hint") or ""),
        duration_s=float(md.get("duration_s") or 0.0),
        nodes=_nodes(md.get("nodes")),
        detail=str(md.get("detail") or ""),
        extra=extra,
    )


def from_check_evaluation(data: Any) -> Evaluation:
    """An AssetCheckEvaluation, from a run result or the event log, as the Evaluation its
    check produced: what the CLI report and the metrics export read."""
    return decode(
        asset=data.asset_key.to_user_string(),
        check=data.check_name,
        passed=data.passed,
        severity=data.severity,
        metadata=data.metadata or {},
    )


def to_check_result(ev: Evaluation) -> dg.AssetCheckResult:
    """The result names its check, so a multi-check can yield many."""
    severity = (
        dg.AssetCheckSeverity.ERROR if ev.severity == Severity.ERROR else dg.AssetCheckSeverity.WARN
    )
    text = f"{ev.measured} {ev.unit} (threshold {ev.threshold})".strip()
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(ev.asset),
        check_name=ev.check,
        passed=ev.passed,
        severity=severity,
        metadata=encode(ev),
        description=text if ev.passed else f"{text}. {ev.detail} Hint: {ev.hint}".strip(),
    )


def _log_failure(log: Any, ev: Evaluation) -> None:
    if not ev.passed:
        log.warning(f"{ev.asset}/{ev.check} failed: {ev.detail} Hint: {ev.hint}")


def recorded_result(
    spec: CheckSpec[Any], outcome: Outcome | Callable[[], Outcome], log: Any
) -> dg.AssetCheckResult:
    """A check judged outside a ProbeContext (defs/fleet, defs/registry, defs/serving): from
    what an asset recorded (an Outcome), or by a callable that measures now. run_check still
    builds the Evaluation as for every probe (a raise becomes a failed check with its hint;
    severity, redaction, bounded detail)."""
    measure = outcome if callable(outcome) else (lambda: outcome)
    ev = run_check(replace(spec, probe=lambda _ctx: measure()), None)
    _log_failure(log, ev)
    return to_check_result(ev)


def latest_metadata(
    instance: dg.DagsterInstance, key: str, before: float | None = None
) -> tuple[Any, dict[str, Any]]:
    """The newest materialization record of `key` (before a timestamp) and its metadata as
    plain values: (None, {}) when there is none."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), before_timestamp=before), limit=1
    ).records
    record = records[0] if records else None
    mat = record.asset_materialization if record is not None else None
    return record, {k: v.value for k, v in (mat.metadata if mat is not None else {}).items()}


# (spec, judge): a check judged from its asset's latest materialization metadata
Recorded = tuple[CheckSpec[Any], Callable[[dict[str, Any]], Outcome]]


def recorded_checks(name: str, rows: Sequence[Recorded]) -> dg.AssetChecksDefinition:
    """One subsettable multi-check whose checks judge what their asset's latest
    materialization recorded (defs/registry's budgets, defs/serving's figures): after it in a
    run that materializes, alone in `validate`."""
    by_key = {dg.AssetCheckKey(dg.AssetKey(s.asset), s.name): (s, judge) for s, judge in rows}

    @dg.multi_asset_check(name=name, specs=[check_spec(s) for s, _ in rows], can_subset=True)
    def _checks(context: dg.AssetCheckExecutionContext) -> Any:
        metas: dict[str, dict[str, Any]] = {}
        for key, (spec, judge) in by_key.items():
            if key not in context.selected_asset_check_keys:
                continue
            if spec.asset not in metas:
                metas[spec.asset] = latest_metadata(context.instance, spec.asset)[1]
            yield recorded_result(spec, judge(metas[spec.asset]), context.log)

    return _checks


def asset_checks(specs: Iterable[ProbeSpec], *, name: str) -> list[dg.AssetChecksDefinition]:
    """One subsettable multi-check per domain: the selected probes run concurrently and
    share the domain's resources (one SSH connection for all HPC checks of a run). Checks
    that need materialized assets form their own multi-check after those assets; kept apart,
    the domain's blocking checks never wait on assets downstream of them (a cycle)."""
    groups: dict[tuple[str, ...], list[ProbeSpec]] = {}
    for spec in specs:
        groups.setdefault(tuple(sorted(spec.needs)), []).append(spec)
    return [
        c
        for needs, group in groups.items()
        for c in _multi_check(
            group, name=name if not needs else f"{name}_after_{'_'.join(needs)}", needs=needs
        )
    ]


def check_spec(spec: CheckSpec, needs: Sequence[str] = ()) -> dg.AssetCheckSpec:
    """A CheckSpec as Dagster's spec, with the severity and light metadata every check
    carries (the light-checks job and the snapshot read them). Also for checks an asset
    reports itself (defs/fleet)."""
    return dg.AssetCheckSpec(
        spec.name,
        asset=dg.AssetKey(spec.asset),
        description=spec.description,
        blocking=spec.blocking,
        additional_deps=[dg.AssetKey(k) for k in needs],
        metadata={"mlops/severity": str(spec.severity), LIGHT_TAG: str(spec.light).lower()},
    )


def _multi_check(
    specs: list[ProbeSpec], *, name: str, needs: tuple[str, ...]
) -> list[dg.AssetChecksDefinition]:
    if not specs:
        return []
    by_key = {dg.AssetCheckKey(dg.AssetKey(s.asset), s.name): s for s in specs}
    resources: set[str] = set().union(*(s.requires for s in specs))

    @dg.multi_asset_check(
        name=name,
        specs=[check_spec(s, needs) for s in specs],
        can_subset=True,
        required_resource_keys=resources,
    )
    def _checks(context):
        from mlops_assets.platform import active, secret_values

        catalog = active().catalog
        ctx = ProbeContext(catalog, context.resources, context.log)
        secrets = secret_values(catalog)
        selected = [by_key[k] for k in context.selected_asset_check_keys if k in by_key]
        with ThreadPoolExecutor(max_workers=min(MAX_CONCURRENT_PROBES, len(selected) or 1)) as pool:
            futures = [pool.submit(run_check, spec, ctx, secrets) for spec in selected]
            for future in as_completed(futures):
                ev = future.result()
                _log_failure(context.log, ev)
                yield to_check_result(ev)

    return [_checks]


def asset_checks_per_asset(specs: Iterable[ProbeSpec]) -> list[dg.AssetChecksDefinition]:
    """One multi-check per asset rather than per domain, where one asset's failure must not
    leave its siblings' checks unrun (staged datasets and models)."""
    by_asset: dict[str, list[ProbeSpec]] = {}
    for spec in specs:
        by_asset.setdefault(spec.asset, []).append(spec)
    return [
        c for asset, group in by_asset.items() for c in asset_checks(group, name=f"{asset}_checks")
    ]


def external(
    key: str,
    *,
    group: str,
    kinds: Sequence[str],
    description: str,
    deps: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
    freshness: Freshness | None = None,
) -> dg.AssetSpec:
    """Something we observe but do not build here: an AssetSpec carrying checks."""
    return dg.AssetSpec(
        key=key,
        group_name=group,
        kinds=set(kinds),
        description=description,
        deps=list(deps),
        metadata=metadata or {},
        freshness_policy=freshness_policy(freshness) if freshness else None,
    )


def freshness_policy(fresh: Freshness) -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=fresh.fail_after_hours),
        warn_window=timedelta(hours=fresh.warn_after_hours) if fresh.warn_after_hours else None,
    )


def sensor_status(catalog: Catalog) -> dg.DefaultSensorStatus:
    """`automation.running` as a sensor's default status: one catalog key for every sensor
    and schedule the catalog governs (defs/smoke, defs/automation)."""
    return (
        dg.DefaultSensorStatus.RUNNING
        if catalog.automation.running
        else dg.DefaultSensorStatus.STOPPED
    )


def schedule_status(catalog: Catalog) -> dg.DefaultScheduleStatus:
    """`automation.running` as a schedule's default status."""
    return (
        dg.DefaultScheduleStatus.RUNNING
        if catalog.automation.running
        else dg.DefaultScheduleStatus.STOPPED
    )


def on_hpc(rule: Callable[[Runner, Catalog], Outcome]) -> Callable[[ProbeContext], Outcome]:
    """An HPC rule of core/probes (`rule(runner, catalog)`) as a check's probe: the rules take
    the login node's command runner, not the resource, so a test can give them a local one.
    Its check `requires` "hpc"."""
    return lambda ctx: rule(ctx.hpc.runner(), ctx.catalog)


#: One row of `externals`: (key, kinds, description), then the deps where there are any.
Observed = tuple[str, list[str], str] | tuple[str, list[str], str, list[str]]


def externals(group: str, *rows: Observed) -> list[dg.AssetSpec]:
    """A domain's observed assets as a table, a row each, rather than an `external` call
    apiece that repeats the group."""
    return [
        external(key, group=group, kinds=kinds, description=text, deps=deps[0] if deps else ())
        for key, kinds, text, *deps in rows
    ]
