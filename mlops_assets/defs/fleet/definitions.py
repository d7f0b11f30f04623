"""Fleet: each node's smoke figures as a baseline, the nodes below their peers or their own
past, and the opt-in quarantine loop. Thin: the rules are core/fleet.py and
core/quarantine.py; this file reads the event log, runs sinfo/scontrol and reports.

- `fleet_baseline` (materializable, after the per-node smoke assets): reads the smoke
  materializations recorded since its own last run (a storage-id cursor kept in its own
  metadata), appends them to each node's bounded history (also its metadata, read back from
  its latest materialization), and reports two checks with the result:
  `fleet_nodes_within_peers` and `fleet_nodes_within_own_past` (severity `fleet.severity`).
  Each node's figures are metadata `<asset>.<figure>@<node>`, so the metrics exporter
  publishes them with a node label.
- `slurm_node_quarantine` (external): where the loop's actions show, as observations.
- `fleet_quarantine_sensor`: off unless `fleet.quarantine.enabled`; each tick reads the
  per-node smoke status and the listed checks, decides (core/quarantine.py), runs the
  scontrol commands unless dry-run, records an observation per changed decision and pushes
  `mlops_quarantine_*` to the Pushgateway.
"""

import json
import shlex
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog
from mlops_assets.checking import check_spec, external, recorded_result
from mlops_assets.core import fleet as rules
from mlops_assets.core import quarantine as q
from mlops_assets.core.checks import CheckSpec, Outcome, Severity
from mlops_assets.defs.smoke.definitions import (
    GPU_NODES,
    GPU_NODES_NAME,
    NODE_ASSETS,
    NODE_JOB,
    NODE_TAG,
    rerun_on_upstream,
)
from mlops_assets.defs.smoke.definitions import defs as smoke_defs
from mlops_assets.platform import active
from mlops_assets.resources.clients import HttpServiceResource
from mlops_assets.resources.hpc import HpcSide

GROUP = "fleet"
ASSET = "fleet_baseline"
QUARANTINE_ASSET = "slurm_node_quarantine"
PEERS_CHECK = "fleet_nodes_within_peers"
OWN_CHECK = "fleet_nodes_within_own_past"
SENSOR = "fleet_quarantine_sensor"
SCAN_LIMIT = 5000  # smoke materializations read per asset and run; the cursor goes on from there


def rule(catalog: Catalog) -> "rules.FleetRule":
    """The rule's thresholds, read by name from the catalog's `fleet:` (same names, same
    units), so a threshold added to both is carried without another line here."""
    names = {f.name for f in fields(rules.FleetRule)}
    return rules.FleetRule(**catalog.fleet.model_dump(include=names))


def _plain(v: Any) -> Any:
    return getattr(v, "value", v)


def _reported_by_asset(_ctx: Any) -> Outcome:
    raise RuntimeError(f"{ASSET} reports this check with each materialization")


def check_specs(catalog: Catalog) -> list[CheckSpec]:
    """The two checks `fleet_baseline` reports with each materialization (their probes
    only hand over the outcome the asset computed)."""
    sev = Severity(catalog.fleet.severity)
    return [
        CheckSpec(
            ASSET,
            PEERS_CHECK,
            sev,
            "A node whose smoke figure is far below its peers' (catalog fleet: sigma below the"
            " others' mean, or a fraction of their median) is named; too few peers is a WARN.",
            _reported_by_asset,
            light=False,
        ),
        CheckSpec(
            ASSET,
            OWN_CHECK,
            sev,
            "A node whose latest smoke figure is far below its own median of its last runs is"
            " named; too short a history is a WARN.",
            _reported_by_asset,
            light=False,
        ),
    ]


@dataclass
class Scan:
    """New smoke figures since the cursor: (figure, node, unix time, value) samples, the
    nodes whose newest result carried a figure as no measurement, the new cursor."""

    samples: list[tuple[str, str, float, Any]] = field(default_factory=list)
    invalid: dict[str, set[str]] = field(default_factory=dict)
    valid: dict[str, set[str]] = field(default_factory=dict)
    cursor: dict[str, int] = field(default_factory=dict)

    def still_invalid(self, before: Any) -> dict[str, list[str]]:
        """Nodes whose newest result has no valid figure: this scan's, and earlier ones'
        that no valid figure has replaced since."""
        out: dict[str, set[str]] = {f: set(n) for f, n in self.invalid.items()}
        for figure, nodes in (before if isinstance(before, dict) else {}).items():
            for node in nodes if isinstance(nodes, list) else []:
                if node not in self.valid.get(figure, set()):
                    out.setdefault(str(figure), set()).add(str(node))
        return {f: sorted(n) for f, n in out.items() if n}


def scan(instance: dg.DagsterInstance, catalog: Catalog, cursor: Mapping[str, int]) -> Scan:
    """The per-node smoke materializations recorded after `cursor` (storage ids per asset),
    oldest first; the node is the partition key (else the result's `slurm_node`)."""
    out = Scan(cursor=dict(cursor))
    by_asset: dict[str, list[Any]] = {}
    for f in catalog.fleet.figures:
        by_asset.setdefault(f.asset, []).append(f)
    for asset, figures in sorted(by_asset.items()):
        after = cursor.get(asset)
        res = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=after),
            limit=SCAN_LIMIT,
            ascending=after is not None,
        )
        records = sorted(res.records, key=lambda r: r.storage_id)
        newest: dict[tuple[str, str], tuple[float, Any]] = {}
        for rec in records:
            mat = rec.asset_materialization
            if mat is None:
                continue
            md = {k: _plain(v) for k, v in (mat.metadata or {}).items()}
            node = rec.partition_key or md.get("slurm_node") or md.get("host")
            if not node:
                continue
            for f in figures:
                if f.key in md:
                    out.samples.append((f.id, str(node), rec.timestamp, md[f.key]))
                    newest[(f.id, str(node))] = (rec.timestamp, md[f.key])
        for (figure, node), (_, value) in newest.items():
            bucket = out.invalid if rules.measurement(value) is None else out.valid
            bucket.setdefault(figure, set()).add(node)
        if records:
            out.cursor[asset] = records[-1].storage_id
    return out


def peer_groups(
    catalog: Catalog, runner: Any, history: "rules.History"
) -> dict[str, dict[str, str]]:
    """Node -> its GRES (`gpu:h200:2`) for each figure grouped by GRES, from one sinfo."""
    wanted = [f.id for f in catalog.fleet.figures if f.group_by == "gres" and history.get(f.id)]
    if not wanted:
        return {}
    from mlops_assets.core import node_watch
    from mlops_assets.core.probes.node_step import sinfo_nodes

    gres = {n: v.partition("|")[2] for n, v in node_watch.snapshot(sinfo_nodes(runner)).items()}
    return {fid: gres for fid in wanted}


def latest_metadata(instance: dg.DagsterInstance) -> dict[str, Any]:
    """`fleet_baseline`'s latest materialization metadata as plain values ({} before any)."""
    ev = instance.get_latest_materialization_event(dg.AssetKey(ASSET))
    if ev is None or ev.asset_materialization is None:
        return {}
    return {k: _plain(v) for k, v in (ev.asset_materialization.metadata or {}).items()}


def judge_recorded(
    catalog: Catalog, md: Mapping[str, Any], runner: Any, now: float
) -> "tuple[rules.FleetReport, rules.History]":
    """Both rules over the history that `fleet_baseline` recorded (its metadata)."""
    history = rules.read_history(md.get("history"))
    invalid = md.get("invalid") if isinstance(md.get("invalid"), dict) else {}
    report = rules.judge(
        history,
        rule(catalog),
        now=now,
        max_age_s=catalog.fleet.max_figure_age_hours * 3600,
        groups=peer_groups(catalog, runner, history),
        invalid={str(k): [str(n) for n in v] for k, v in (invalid or {}).items()},
    )
    return report, history


def outcomes(catalog: Catalog, report: "rules.FleetReport") -> list[tuple[CheckSpec, Outcome]]:
    r = rule(catalog)
    peers, own = check_specs(catalog)
    return [(peers, rules.peers_outcome(report, r)), (own, rules.own_past_outcome(report, r))]


def fleet_view(report: "rules.FleetReport", current: Mapping[str, Mapping[str, float]]) -> str:
    """A Markdown table of each node's newest figures and what was named."""
    named = {(f.node, f.figure): f for f in report.below_fleet()}
    own = {(f.node, f.figure): f for f in report.own_past}
    lines = ["| node | figure | value | named |", "|---|---|---|---|"]
    for figure in sorted(current):
        for node in sorted(current[figure]):
            finding = named.get((node, figure)) or own.get((node, figure))
            lines.append(
                f"| {node} | {figure} | {current[figure][node]:.4g} |"
                f" {finding.message if finding else ''} |"
            )
    return "\n".join(lines)


def baseline_asset(catalog: Catalog) -> dg.AssetsDefinition:
    deps = sorted({f.asset for f in catalog.fleet.figures})

    @dg.asset(
        name=ASSET,
        group_name=GROUP,
        kinds={"slurm"},
        deps=deps,
        automation_condition=rerun_on_upstream(deps),
        description="Each node's per-node smoke figures as a bounded history (metadata"
        " `history`, read back from the latest materialization); its checks name the nodes"
        " below their peers or below their own past (catalog fleet:).",
    )
    def _baseline(context: dg.AssetExecutionContext, hpc: HpcSide) -> dg.MaterializeResult:
        md = latest_metadata(context.instance)
        history = rules.read_history(md.get("history"))
        cursor = md.get("cursor") if isinstance(md.get("cursor"), dict) else {}
        found = scan(context.instance, catalog, cursor or {})
        history = rules.record(history, found.samples, catalog.fleet.history_length)
        invalid = found.still_invalid(md.get("invalid"))
        now = time.time()
        meta_in = {"history": history, "invalid": invalid}
        report, _ = judge_recorded(catalog, meta_in, hpc.runner(), now)
        current = rules.latest(history, now, catalog.fleet.max_figure_age_hours * 3600)
        named = {f.node for f in report.below_fleet()} | {f.node for f in report.own_past}
        nodes = sorted({n for by in current.values() for n in by})
        meta: dict[str, Any] = {
            "history": dg.MetadataValue.json(history),
            "invalid": dg.MetadataValue.json(invalid),
            "cursor": dg.MetadataValue.json(found.cursor),
            "new_figures": len(found.samples),
            "nodes": len(nodes),
            "nodes_named": dg.MetadataValue.json(sorted(named)),
            "fleet_view": dg.MetadataValue.md(fleet_view(report, current)),
        }
        for figure, by_node in current.items():
            for node, value in by_node.items():
                meta[f"{figure}@{node}"] = float(value)
        for node in nodes:
            meta[f"named@{node}"] = 1 if node in named else 0
        return dg.MaterializeResult(metadata=meta)

    return _baseline


def fleet_checks(catalog: Catalog) -> dg.AssetChecksDefinition:
    """The two checks, over what `fleet_baseline` last recorded: in a run that materializes
    it they run after it; alone (validate, the nightly job) they judge the recorded history."""
    specs = check_specs(catalog)
    by_key = {dg.AssetCheckKey(dg.AssetKey(s.asset), s.name): s for s in specs}

    @dg.multi_asset_check(
        name="fleet_checks",
        specs=[check_spec(s) for s in specs],
        can_subset=True,
    )
    def _checks(
        context: dg.AssetCheckExecutionContext, hpc: HpcSide
    ) -> Iterator[dg.AssetCheckResult]:
        md = latest_metadata(context.instance)
        report, _ = judge_recorded(catalog, md, hpc.runner(), time.time())
        for spec, out in outcomes(catalog, report):
            key = dg.AssetCheckKey(dg.AssetKey(spec.asset), spec.name)
            if key not in context.selected_asset_check_keys or key not in by_key:
                continue
            yield recorded_result(spec, out, context.log)

    return _checks


# ------------------------------------------------------------------------- quarantine


def check_key(source: str) -> dg.AssetCheckKey:
    """`asset/check` (the catalog's spelling) as Dagster's key."""
    asset, _, name = source.partition("/")
    return dg.AssetCheckKey(dg.AssetKey(asset), name)


def evidence(instance: dg.DagsterInstance, catalog: Catalog) -> "list[q.Evidence]":
    """Each per-node smoke asset's latest attempt per node (FAILED: failing; a
    materialization: passing) and each listed check's latest result per node it names (an
    ERROR failure: failing; a pass: passing; a WARN failure decides nothing)."""
    out: list[q.Evidence] = []
    qc = catalog.fleet.quarantine
    nodes = list(instance.get_dynamic_partitions(GPU_NODES_NAME))
    for asset in qc.smoke_assets:
        key = dg.AssetKey(asset)
        status = instance.get_status_by_partition(key, nodes, GPU_NODES) or {}
        for node in nodes:
            st = status.get(node)
            if st == dg.AssetPartitionStatus.FAILED:
                info = instance.get_latest_planned_materialization_info(key, node)
                run = instance.get_run_record_by_id(info.run_id) if info else None
                ts = (run.end_time or run.create_timestamp.timestamp()) if run else time.time()
                out.append(q.Evidence(node, asset, False, info.run_id if info else "?", ts))
            elif st == dg.AssetPartitionStatus.MATERIALIZED:
                recs = instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=key, asset_partitions=[node]), limit=1
                ).records
                if recs:
                    out.append(q.Evidence(node, asset, True, recs[0].run_id, recs[0].timestamp))
    check_keys = [check_key(c) for c in qc.checks]
    from mlops_assets.checking import from_check_evaluation

    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    for ck, rec in latest.items():
        if rec.event is None or rec.evaluation is None:
            continue
        ev = from_check_evaluation(rec.evaluation)
        source = f"{ck.asset_key.to_user_string()}/{ck.name}"
        failing = not ev.passed and ev.severity == Severity.ERROR
        if not ev.passed and not failing:
            continue
        for node in ev.nodes:
            out.append(q.Evidence(node, source, ev.passed, rec.run_id, rec.event.timestamp))
    return out


@dataclass
class Tick:
    """One pass of the loop: its decisions (as executed), what is new to report, the runs it
    asks for (re-tests), the cursor, and how many nodes it holds drained per partition."""

    actions: "list[q.Action]"
    observations: list[dg.AssetObservation]
    cursor: str
    drained: dict[str, int]
    requests: list[dg.RunRequest] = field(default_factory=list)


RECHECK_JOB = "fleet_quarantine_recheck"


def policy(catalog: Catalog) -> "q.Policy":
    qc = catalog.fleet.quarantine
    return q.Policy(
        dry_run=qc.dry_run,
        max_drained_fraction=qc.max_drained_fraction,
        reason_prefix=qc.reason_prefix,
        retest_after_s=qc.retest_after_minutes * 60,
        retest_window_s=qc.retest_window_minutes * 60,
        user=catalog.hpc.access.login.user,
    )


def run_requests(requests: "list[q.Request]", now: float) -> list[dg.RunRequest]:
    """A re-test's runs: the node's smoke jobs in its reservation; after they pass, for a
    check source, the fleet baseline and the listed checks again."""
    out: list[dg.RunRequest] = []
    for r in requests:
        tags = {NODE_TAG: r.node, "mlops/quarantine": "retest", "mlops/reservation": r.reservation}
        if r.kind == q.SMOKE:
            config = {"config": {"reservation": r.reservation, "node": "", "reattach": False}}
            out.append(
                dg.RunRequest(
                    run_key=f"retest:{r.node}:{int(now)}",
                    job_name=NODE_JOB,
                    partition_key=r.node,
                    run_config={"ops": {a: config for a in NODE_ASSETS}},
                    tags=tags,
                )
            )
        else:
            out.append(
                dg.RunRequest(
                    run_key=f"recheck:{r.node}:{int(now)}", job_name=RECHECK_JOB, tags=tags
                )
            )
    return out


def quarantine_tick(
    instance: dg.DagsterInstance,
    runner: Any,
    catalog: Catalog,
    cursor: str | None,
    now: float | None = None,
) -> Tick:
    """Read, decide, act (unless dry-run) and say so: testable without a sensor context.
    The cursor keeps when this loop drained each node, the nodes out on a re-test and the
    last decision per node, so an unchanged decision is not reported again every tick."""
    from mlops_assets.core.parse.slurm.nodes import SINFO_NODE_FORMAT, parse_sinfo_nodes
    from mlops_assets.core.probes.node_step import parsed
    from mlops_assets.core.transport.hostexec import must

    now = time.time() if now is None else now
    state = json.loads(cursor) if cursor else {}
    pol = policy(catalog)
    res = must(
        runner, ["sinfo", "-h", "-N", "-o", SINFO_NODE_FORMAT], "check that slurmctld answers"
    )
    nodes = parsed("sinfo", parse_sinfo_nodes, res.stdout)
    decision = q.decide(
        nodes,
        evidence(instance, catalog),
        pol,
        state.get("drained_at", {}),
        now,
        state.get("retesting", {}),
    )
    actions = q.apply(decision.actions, runner)
    failed_retests = {a.node for a in actions if a.action == q.RETEST and not a.executed}
    for node in failed_retests:  # the reservation or the resume was refused: still drained
        decision.retesting.pop(node, None)
        decision.drained_at[node] = now
    requests = run_requests([r for r in decision.requests if r.node not in failed_retests], now)
    last: dict[str, str] = dict(state.get("last", {}))
    observations = []
    for a in actions:
        seen = f"{a.action}|{a.source}|{a.run_id}|{a.dry_run}|{a.outcome}|{a.reservation}"
        if last.get(a.node) == seen:
            continue
        last[a.node] = seen
        observations.append(
            dg.AssetObservation(
                asset_key=QUARANTINE_ASSET,
                metadata={
                    "node": a.node,
                    "action": a.action,
                    "mode": "dry_run" if a.dry_run else "live",
                    "executed": a.executed,
                    "message": a.message,
                    "reason": a.reason,
                    "source": a.source,
                    "run_id": a.run_id,
                    "outcome": a.outcome,
                    "commands": "; ".join(shlex.join(c) for c in a.commands()),
                    "partitions": ",".join(a.partitions),
                },
            )
        )
    drained: dict[str, int] = {}
    after = {a.node: a for a in actions if a.executed}
    for n in nodes:
        ours = q.drained_by_us(n, pol.reason_prefix)
        act = after.get(n.name)
        if act is not None:
            ours = act.action == q.DRAIN
        for p in n.partitions:
            drained[p] = drained.get(p, 0) + (1 if ours else 0)
    new_cursor = json.dumps(
        {"drained_at": decision.drained_at, "retesting": decision.retesting, "last": last},
        sort_keys=True,
    )
    return Tick(actions, observations, new_cursor, drained, requests)


def push_metrics(catalog: Catalog, tick: Tick, url: str, timeout_s: float, now: float) -> int:
    """The tick's decisions and drained counts as `mlops_quarantine_*`, one group per node
    and per partition."""
    from mlops_assets.core.metrics import push, quarantine_groups, quarantine_samples
    from mlops_assets.platform import secret_values

    samples = quarantine_samples(
        QUARANTINE_ASSET, tick.actions, tick.drained, timestamp=now, secrets=secret_values(catalog)
    )
    return push(url, quarantine_groups(samples), timeout_s=timeout_s) if samples else 0


def quarantine_sensor(catalog: Catalog) -> dg.SensorDefinition:
    qc = catalog.fleet.quarantine
    running = qc.enabled and catalog.automation.running

    node_job = next(j for j in smoke_defs.jobs or [] if j.name == NODE_JOB)
    recheck = dg.define_asset_job(
        RECHECK_JOB,
        selection=dg.AssetSelection.assets(ASSET)
        | dg.AssetSelection.checks(*(check_key(c) for c in qc.checks)),
        description="The quarantine loop's re-check of a node whose smoke passed in its re-test:"
        " the fleet baseline and the checks of fleet.quarantine.checks.",
    )

    @dg.sensor(
        name=SENSOR,
        jobs=[node_job, recheck],
        minimum_interval_seconds=qc.interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING
        if running
        else dg.DefaultSensorStatus.STOPPED,
        description="Opt-in (fleet.quarantine.enabled), dry-run by default: drains nodes whose"
        " per-node smoke or listed ERROR checks fail, within max_drained_fraction of a"
        " partition; resumes only its own drains once they pass again. Every decision is an"
        " observation of slurm_node_quarantine and a mlops_quarantine_* metric.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, hpc: HpcSide, pushgateway: HttpServiceResource
    ) -> dg.SensorResult:
        now = time.time()
        tick = quarantine_tick(context.instance, hpc.runner(), catalog, context.cursor, now)
        for a in tick.actions:
            context.log.info(f"{a.action}: {a.message}{' -> ' + a.outcome if a.outcome else ''}")
        if catalog.cloud.services.prometheus.pushgateway_url:
            try:
                push_metrics(catalog, tick, pushgateway.url, pushgateway.timeout_s, now)
            except Exception as exc:  # the actions are done; say the metrics are missing
                context.log.warning(f"quarantine metrics not pushed to {pushgateway.url}: {exc}")
        if not tick.observations and not tick.requests:
            return dg.SensorResult(
                skip_reason=f"{len(tick.actions)} decision(s), none new", cursor=tick.cursor
            )
        return dg.SensorResult(
            run_requests=tick.requests, asset_events=tick.observations, cursor=tick.cursor
        )

    return _sensor


def build(catalog: Catalog) -> dg.Definitions:
    qc = catalog.fleet.quarantine
    unknown = [a for a in qc.smoke_assets if a not in NODE_ASSETS]
    if unknown:
        raise ValueError(
            f"fleet.quarantine.smoke_assets {unknown} are not per-node smoke assets"
            f" ({', '.join(NODE_ASSETS)})"
        )
    marker = external(
        QUARANTINE_ASSET,
        group=GROUP,
        kinds=["slurm"],
        description="The quarantine loop's drains and resumes (or, in dry-run, what it would"
        f" do), as observations. {'Enabled' if qc.enabled else 'Disabled'},"
        f" {'dry-run' if qc.dry_run else 'live'}, at most {qc.max_drained_fraction:.0%} of a"
        " partition drained.",
        deps=[ASSET],
    )
    return dg.Definitions(
        assets=[baseline_asset(catalog), marker],
        asset_checks=[fleet_checks(catalog)],
        sensors=[quarantine_sensor(catalog)],
    )


defs = build(active().catalog)
