"""Export every check result and materialization figure to Prometheus, through the
Pushgateway, from one sensor that reads the Dagster event log.

Why a sensor reading the event log, and why the Pushgateway: runs are short-lived (one pod
per run under the K8sRunLauncher, an in-process run for the CLI), so nothing stays up to be
scraped; the daemon that evaluates sensors does. Reading the event log (cursor = storage id)
covers every run the instance records, whoever launched it (UI, schedule, sensor, CLI), with
no hook in the runs themselves; the cursor holds what was pushed, so a failed push is retried
on the next tick. The Pushgateway is already part of the platform (the catalog's
`pushgateway_url`, checked by hpc_reaches_pushgateway) and keeps the last value of a result
until the next one replaces it, which is the semantics of a check result. See
deploy/prometheus/README.md for the metric names.
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from mlops_assets.checking import from_check_evaluation
from mlops_assets.core import metrics
from mlops_assets.resources.clients import HttpServiceResource

SENSOR_NAME = "mlops_metrics_exporter"


def _value(md: Any) -> Any:
    return getattr(md, "value", md)


def _graph(context: Any) -> Any:
    return context.repository_def.asset_graph


def collect_samples(
    instance: dg.DagsterInstance, graph: Any, cursor: dict[str, Any], secrets: list[str]
) -> tuple[list[metrics.Sample], dict[str, Any], int, int]:
    """Samples of the newest evaluation of each check and the newest materialization of each
    asset of the code location that the cursor has not seen; the new cursor; the counts.

    The cursor keeps one id per check and per asset, not one high-water mark: an execution
    row gets its id when the check is planned, so a long check can finish after a later one
    and a single mark would skip it. Reading the latest record per key works on every event
    log storage (run-sharded SQLite included) with two queries per tick."""
    check_ids: dict[str, int] = dict(cursor.get("checks", {}))
    mat_ids: dict[str, int] = dict(cursor.get("assets", {}))
    asset_keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    groups = {k.to_user_string(): graph.get(k).group_name or "" for k in asset_keys}
    samples: list[metrics.Sample] = []
    n_checks = n_mats = 0
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        list(graph.asset_check_keys)
    )
    for key, rec in sorted(latest.items(), key=lambda kv: kv[0].to_user_string()):
        data = rec.evaluation
        name = key.to_user_string()
        if data is None or rec.event is None or check_ids.get(name) == rec.id:
            continue  # planned/running, or already exported
        ev = from_check_evaluation(data)
        samples += metrics.check_samples(
            ev, timestamp=rec.event.timestamp, group=groups.get(ev.asset, ""), secrets=secrets
        )
        check_ids[name] = rec.id
        n_checks += 1
    for record in instance.get_asset_records(asset_keys):
        last = record.asset_entry.last_materialization_record
        asset = record.asset_entry.asset_key.to_user_string()
        if (
            last is None
            or mat_ids.get(asset) == last.storage_id
            or last.asset_materialization is None
        ):
            continue
        metadata = {k: _value(v) for k, v in (last.asset_materialization.metadata or {}).items()}
        samples += metrics.materialization_samples(
            asset,
            group=groups.get(asset, ""),
            timestamp=last.timestamp,
            metadata=metadata,
            secrets=secrets,
        )
        mat_ids[asset] = last.storage_id
        n_mats += 1
    return samples, {"checks": check_ids, "assets": mat_ids}, n_checks, n_mats


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Pushes every new asset-check result and materialization figure to the "
    "Pushgateway (mlops_check_*, mlops_asset_* metrics); the cursor is the event log's storage id.",
)
def metrics_exporter(
    context: dg.SensorEvaluationContext, pushgateway: HttpServiceResource
) -> dg.SensorResult | dg.SkipReason:
    """A tick with nothing new skips and says so. A tick that pushed returns a SensorResult
    carrying the new cursor and logs what it pushed (the tick's log in the UI): it is not a
    skip. Dagster 1.13's daemon still labels a tick that requests no run SKIPPED, whatever the
    sensor returns (dagster-io/dagster#9504); no public API marks it SUCCESS. A failed metrics.push
    raises, so the tick fails and the unchanged cursor retries on the next one."""
    from mlops_assets.platform import active, secret_values

    cursor: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
    samples, new_cursor, n_checks, n_mats = collect_samples(
        context.instance, _graph(context), cursor, secret_values(active().catalog)
    )
    if not samples:
        return dg.SkipReason("no new check results or materializations")
    pushed = metrics.push(
        pushgateway.url, metrics.push_groups(samples), timeout_s=pushgateway.timeout_s
    )
    context.log.info(
        f"pushed {pushed} groups to {pushgateway.url}: "
        f"{n_checks} check results, {n_mats} materializations"
    )
    return dg.SensorResult(cursor=json.dumps(new_cursor, sort_keys=True))


defs = dg.Definitions(sensors=[metrics_exporter])
