"""The jobs and schedules that span the domains, built over their merged definitions
(definitions.py passes them in), so nothing here imports a domain to learn its checks:

- `light_checks` / `light_checks_schedule` (catalog automation.light_checks_cron): the checks
  whose spec metadata says `mlops/light=true` (set by checking.py from `CheckSpec.light`):
  cheap probes, no jobs;
- `full_validation` / `nightly_full_validation_schedule` (automation.full_validation_cron):
  every asset and check in one run, then the per-node smoke once per usable GPU node;
- `smoke_rerun_automation_sensor`: evaluates every asset's automation condition (today only
  the smoke assets declare one).

Their default status follows the catalog's `automation.running`, like every sensor's. The
GPU nodes are the smoke domain's knowledge: the nightly tick asks defs/smoke for them
(`sync_node_partitions`), at run time only."""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog
from mlops_assets.checking import LIGHT_TAG, schedule_status, sensor_status
from mlops_assets.resources.hpc import HpcSide

LIGHT_JOB = "light_checks"
FULL_JOB = "full_validation"


def _value(v: Any) -> Any:
    """Spec metadata as written (a str) or as Dagster normalized it (a MetadataValue)."""
    return getattr(v, "value", v)


def check_specs(domains: dg.Definitions) -> Iterable[dg.AssetCheckSpec]:
    """Every check spec the domains declare: those of @asset_check/@multi_asset_check
    definitions and those attached to assets."""
    for d in [*(domains.asset_checks or []), *(domains.assets or [])]:
        if isinstance(d, dg.AssetsDefinition):
            yield from d.check_specs


def light_check_keys(domains: dg.Definitions) -> list[dg.AssetCheckKey]:
    """The checks whose metadata marks them light, sorted: read from the definitions, so a
    new domain's light checks join the job without being listed anywhere."""
    keys = {
        s.key
        for s in check_specs(domains)
        if str(_value((s.metadata or {}).get(LIGHT_TAG))) == "true"
    }
    return sorted(keys, key=lambda c: (c.asset_key.to_user_string(), c.name))


def nightly_requests(graph: Any, node_partitions: Sequence[str], tick: str) -> list[dg.RunRequest]:
    """The nightly full validation as runs of one job: every unpartitioned asset and every
    check in one run, then the per-node smoke once per GPU node partition."""
    from mlops_assets.defs.smoke.definitions import NODE_TAG

    per_node = [
        k for k in graph.materializable_asset_keys if graph.get(k).partitions_def is not None
    ]
    others = sorted(
        (k for k in graph.materializable_asset_keys if k not in per_node),
        key=lambda k: k.to_user_string(),
    )
    checks = sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name))
    return [
        dg.RunRequest(run_key=f"full:{tick}", asset_selection=others, asset_check_keys=checks),
        *(
            dg.RunRequest(
                run_key=f"node:{n}:{tick}",
                partition_key=n,
                asset_selection=per_node,
                tags={NODE_TAG: n, "mlops/trigger": "nightly"},
            )
            for n in node_partitions
        ),
    ]


def automation_condition_sensor(catalog: Catalog) -> dg.AutomationConditionSensorDefinition:
    """Declared rather than Dagster's implicit default one, so its status follows the catalog."""
    return dg.AutomationConditionSensorDefinition(
        "smoke_rerun_automation_sensor",
        target=dg.AssetSelection.all(),
        default_status=sensor_status(catalog),
        description=(
            "Evaluates the smoke assets' automation conditions: a re-materialized container or "
            "MNIST dataset re-runs the smoke jobs that use it."
        ),
    )


def build(catalog: Catalog, domains: dg.Definitions) -> dg.Definitions:
    """The cross-domain jobs, schedules and sensor over `domains`, the merged definitions of
    every folder in the registry (mlops_assets/defs/__init__.py)."""
    light_job = dg.define_asset_job(
        LIGHT_JOB,
        selection=dg.AssetSelection.checks(*light_check_keys(domains)),
        description=f"The checks whose metadata has {LIGHT_TAG}=true: cheap probes, no jobs.",
    )
    full_job = dg.define_asset_job(
        FULL_JOB,
        selection=dg.AssetSelection.all() | dg.AssetSelection.all_asset_checks(),
        description="Every asset materialized and every check run, smoke jobs included.",
    )

    @dg.schedule(
        name="nightly_full_validation_schedule",
        job=full_job,
        cron_schedule=catalog.automation.full_validation_cron,
        default_status=schedule_status(catalog),
        description=(
            "Every asset and check in one run, and the per-node "
            "smoke once per usable GPU node (from sinfo)."
        ),
    )
    def nightly(
        context: dg.ScheduleEvaluationContext, hpc: HpcSide
    ) -> list[dg.RunRequest] | dg.SkipReason:
        from mlops_assets.defs.smoke.definitions import sync_node_partitions

        try:
            nodes = sync_node_partitions(catalog, context.instance, hpc.runner())
        except RuntimeError as exc:  # still validate everything else; the failed sinfo is named
            context.log.warning(f"{exc}: the per-node smoke runs are skipped tonight")
            nodes = []
        try:  # a tick has its scheduled time; a hand-built context (tests, tools) may not
            when = context.scheduled_execution_time or datetime.now(UTC)
        except Exception:
            when = datetime.now(UTC)
        stamp = when.strftime("%Y%m%dT%H%M")
        return nightly_requests(context.repository_def.asset_graph, nodes, stamp)

    schedules = [
        dg.ScheduleDefinition(
            name="light_checks_schedule",
            job=light_job,
            cron_schedule=catalog.automation.light_checks_cron,
            default_status=schedule_status(catalog),
        ),
        nightly,
    ]
    return dg.Definitions(
        jobs=[light_job, full_job],
        schedules=schedules,
        sensors=[automation_condition_sensor(catalog)],
    )
