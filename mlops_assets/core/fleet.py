"""Fleet baselines: which node sits below its peers, or below its own past. Pure.

The per-node smoke jobs (GPU matmul and copy, the all-reduce; their CPU stand-ins on fake
GPUs) each judge one node against a fixed profile. A fleet sees more: a node that passes its
profile but runs 30 % slower than the identical nodes beside it (a throttled GPU, a power
cap, a noisy neighbour, a degraded link), or one that is 30 % slower than it was last week.

Two rules, as the catalog sets them (`fleet:`):

- **below the fleet**: a node's figure is compared with the *other* nodes of its peer group
  (leave-one-out, so the slow node does not drag the mean and inflate the spread it is
  measured with: with all nodes counted, no node of a 4-node fleet can ever be 2 sigma out,
  because the largest possible z-score of n values is (n-1)/sqrt(n) = 1.5). It is named
  when it is more than `sigma` standard deviations below their mean, or under
  `min_fraction_of_median` of their median. The spread is never taken below
  `sigma_floor_fraction` of the mean, so nodes that measure identically do not turn a 1 %
  difference into a 10-sigma outlier. Fewer than `min_nodes` nodes with the figure: the
  figure cannot be judged, which is said (a WARN), never passed silently.
- **below its own past**: the node's latest figure against the median of its previous
  `own_window` figures; named under `own_min_fraction` of it; judged once it has
  `own_min_samples` earlier figures.

A missing, non-numeric, negative or non-finite figure is no measurement: the node is listed
as unmeasured, never counted as zero. History is kept bounded (`history_length` per node and
figure) and round-trips through JSON, so it can live in asset metadata.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.core.checks import Outcome, Scalar, Severity

#: One figure's history per node: [[unix time, value], ...], oldest first.
History = dict[str, dict[str, list[list[float]]]]

FLEET, OWN_PAST = "fleet", "own_past"


@dataclass(frozen=True)
class FleetRule:
    """The catalog's `fleet:` thresholds (see catalog/schema/fleet.py Fleet for the units)."""

    sigma: float = 2.0
    min_fraction_of_median: float = 0.8
    sigma_floor_fraction: float = 0.05
    min_nodes: int = 3
    own_min_fraction: float = 0.8
    own_window: int = 10
    own_min_samples: int = 3
    history_length: int = 20


@dataclass(frozen=True)
class Finding:
    """One node named below its peers (`kind` fleet) or below its own past (own_past)."""

    node: str
    figure: str
    kind: str
    value: float
    reference: float
    fraction: float
    sigmas: float | None
    message: str


@dataclass(frozen=True)
class FigureJudgement:
    """One figure in one peer group: who was compared, who was named, and why not judged."""

    figure: str
    group: str
    nodes: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    unjudged: str = ""
    unmeasured: tuple[str, ...] = ()


@dataclass
class FleetReport:
    """Every figure's judgement for both rules, and what could not be judged."""

    fleet: list[FigureJudgement] = field(default_factory=list)
    own_past: list[Finding] = field(default_factory=list)
    own_judged: list[tuple[str, str]] = field(default_factory=list)  # (node, figure)
    own_unjudged: list[str] = field(default_factory=list)

    def below_fleet(self) -> list[Finding]:
        return [f for j in self.fleet for f in j.findings]

    def unjudged_fleet(self) -> list[FigureJudgement]:
        return [j for j in self.fleet if j.unjudged]


def measurement(value: Any) -> float | None:
    """A figure as a number, or None when it is no measurement (missing, text, bool, NaN,
    infinite, negative: throughput figures are never below zero)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) and f >= 0 else None


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def judge_group(
    figure: str, values: Mapping[str, Any], rule: FleetRule, group: str = "all"
) -> FigureJudgement:
    """One figure across one peer group ({node: value}); leave-one-out mean, spread and median."""
    good = {n: v for n, raw in values.items() if (v := measurement(raw)) is not None}
    unmeasured = tuple(sorted(n for n in values if n not in good))
    nodes = tuple(sorted(good))
    if len(good) < max(rule.min_nodes, 2):
        return FigureJudgement(
            figure,
            group,
            nodes,
            unjudged=(
                f"{figure} ({group}): {len(good)} node(s) measured, the fleet rule needs"
                f" {rule.min_nodes}: cannot be judged"
            ),
            unmeasured=unmeasured,
        )
    findings: list[Finding] = []
    for node in nodes:
        v = good[node]
        others = [good[o] for o in nodes if o != node]
        mean = statistics.fmean(others)
        median = statistics.median(others)
        sd = statistics.stdev(others) if len(others) >= 2 else 0.0
        spread = max(sd, rule.sigma_floor_fraction * mean)
        sigmas = (mean - v) / spread if spread > 0 else None
        low_sigma = sigmas is not None and sigmas > rule.sigma
        low_median = median > 0 and v < rule.min_fraction_of_median * median
        if not (low_sigma or low_median):
            continue
        fraction = v / median if median > 0 else 0.0
        why = []
        if low_sigma and sigmas is not None:
            why.append(
                f"{sigmas:.1f} sigma below the others' mean {_fmt(mean)} (rule {rule.sigma:g})"
            )
        if low_median:
            why.append(
                f"{fraction:.0%} of the others' median {_fmt(median)}"
                f" (rule {rule.min_fraction_of_median:.0%})"
            )
        findings.append(
            Finding(
                node,
                figure,
                FLEET,
                v,
                median,
                fraction,
                sigmas,
                f"{node} {figure} {_fmt(v)} is {' and '.join(why)}"
                f" of {len(others)} peers ({group})",
            )
        )
    return FigureJudgement(figure, group, nodes, tuple(findings), "", unmeasured)


def judge_fleet(
    current: Mapping[str, Mapping[str, Any]],
    rule: FleetRule,
    groups: Mapping[str, Mapping[str, str]] | None = None,
) -> list[FigureJudgement]:
    """Every figure ({figure: {node: value}}), each within its peer groups: `groups[figure]`
    maps a node to its group (e.g. its GRES, so H200 nodes are not compared with A100 ones);
    a figure without a mapping is one group, "all". A figure no node reported is left out."""
    out: list[FigureJudgement] = []
    for figure in sorted(current):
        values = current[figure]
        if not values:
            continue
        mapping = (groups or {}).get(figure)
        by_group: dict[str, dict[str, Any]] = {}
        for node, v in values.items():
            by_group.setdefault(mapping.get(node, "?") if mapping else "all", {})[node] = v
        out += [judge_group(figure, by_group[g], rule, g) for g in sorted(by_group)]
    return out


def judge_own_past(
    figure: str, node: str, series: Sequence[Sequence[float]], rule: FleetRule
) -> Finding | str | None:
    """The node's latest figure against the median of its previous `own_window` ones: a
    Finding when it is below `own_min_fraction` of it, None when not, and a text saying why
    when it cannot be judged (too short a history, a zero median)."""
    values = [v for _, raw in series if (v := measurement(raw)) is not None]
    if len(values) < rule.own_min_samples + 1:
        earlier = max(len(values) - 1, 0)
        return f"{node} {figure}: {earlier} earlier figure(s), needs {rule.own_min_samples}"
    latest, past = values[-1], values[:-1][-rule.own_window :]
    median = statistics.median(past)
    if median <= 0:
        return f"{node} {figure}: its past median is 0, nothing to compare with"
    fraction = latest / median
    if fraction >= rule.own_min_fraction:
        return None
    return Finding(
        node,
        figure,
        OWN_PAST,
        latest,
        median,
        fraction,
        None,
        f"{node} {figure} {_fmt(latest)} is {fraction:.0%} of its own median {_fmt(median)}"
        f" over its last {len(past)} runs (rule {rule.own_min_fraction:.0%})",
    )


def record(
    history: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    samples: Iterable[tuple[str, str, float, Any]],
    limit: int,
) -> History:
    """A copy of `history` with (figure, node, unix time, value) samples appended in time
    order, each node's series cut to its newest `limit`. Non-measurements are not recorded."""
    out: History = {
        f: {n: [list(p) for p in s] for n, s in by.items()} for f, by in history.items()
    }
    for figure, node, ts, raw in sorted(samples, key=lambda s: s[2]):
        v = measurement(raw)
        if v is None:
            continue
        series = out.setdefault(figure, {}).setdefault(node, [])
        series.append([float(ts), v])
        series.sort(key=lambda p: p[0])
        del series[:-limit]
    return out


def read_history(data: Any) -> History:
    """History read back from metadata JSON; anything malformed is dropped, not trusted."""
    out: History = {}
    if not isinstance(data, dict):
        return out
    for figure, by_node in data.items():
        if not isinstance(by_node, dict):
            continue
        for node, series in by_node.items():
            if not isinstance(series, list):
                continue
            good = [
                [float(p[0]), float(p[1])]
                for p in series
                if isinstance(p, list | tuple)
                and len(p) == 2
                and measurement(p[0]) is not None
                and measurement(p[1]) is not None
            ]
            if good:
                out.setdefault(str(figure), {})[str(node)] = good
    return out


def latest(history: History, now: float, max_age_s: float | None) -> dict[str, dict[str, float]]:
    """Each node's newest figure per figure, leaving out figures older than `max_age_s`
    (a node that left the cluster must not stay in its peers' baseline forever)."""
    out: dict[str, dict[str, float]] = {}
    for figure, by_node in history.items():
        for node, series in by_node.items():
            if series and (max_age_s is None or now - series[-1][0] <= max_age_s):
                out.setdefault(figure, {})[node] = series[-1][1]
    return out


def judge(
    history: History,
    rule: FleetRule,
    *,
    now: float,
    max_age_s: float | None = None,
    groups: Mapping[str, Mapping[str, str]] | None = None,
    invalid: Mapping[str, Iterable[str]] | None = None,
) -> FleetReport:
    """Both rules over the recorded history: the fleet rule on each node's newest figure,
    the own-past rule on each node's series. `invalid` ({figure: nodes}): nodes whose newest
    result carried the figure as no measurement (NaN, text): unmeasured, not compared."""
    current = latest(history, now, max_age_s)
    for figure, nodes in (invalid or {}).items():
        for node in nodes:
            current.setdefault(figure, {})[node] = math.nan
    report = FleetReport(fleet=judge_fleet(current, rule, groups))
    for figure in sorted(history):
        for node in sorted(history[figure]):
            series = history[figure][node]
            if max_age_s is not None and (not series or now - series[-1][0] > max_age_s):
                continue
            res = judge_own_past(figure, node, series, rule)
            if isinstance(res, str):
                report.own_unjudged.append(res)
                continue
            report.own_judged.append((node, figure))
            if res is not None:
                report.own_past.append(res)
    return report


# --------------------------------------------------------------------------- verdicts

_CAUSES = (
    (
        "busbw",
        "a slow all-reduce on one node: an NVLink/PCIe link trained down or NCCL fell back to a"
        " slower transport (NCCL_DEBUG=INFO names it; `nvidia-smi topo -m`,"
        " `nvidia-smi nvlink -s`)",
    ),
    (
        "cpu_",
        "a CPU figure below its peers: a CPU quota or cpuset on the node, a frequency governor or"
        " power cap (`cpupower frequency-info`), or another job sharing its cores",
    ),
    (
        "copy",
        "device memory bandwidth below its peers: memory clocks throttled or HBM rows"
        " remapped/pending (`nvidia-smi -q -d CLOCK,ROW_REMAPPER`)",
    ),
    (
        "",
        "GPU throughput below its peers: clocks throttled by power cap, temperature or HW"
        " slowdown (`nvidia-smi -q -d PERFORMANCE,POWER` names the reason), or a lower power limit",
    ),
)
FIX = (
    "; compare with a healthy peer, fix or drain the node (the quarantine loop can), then"
    " re-run its smoke"
)


def cause_hint(figures: Iterable[str]) -> str:
    """The usual causes of the figures named, one line each, and the usual fix."""
    seen: list[str] = []
    for figure in figures:
        text = next(t for k, t in _CAUSES if k in figure)
        if text not in seen:
            seen.append(text)
    return "; ".join(seen) + FIX if seen else ""


def _named(
    named: Sequence[Finding],
    threshold: str,
    unit: str,
    extra: dict[str, Scalar],
    notes: Sequence[str] = (),
) -> Outcome:
    """Both checks fail the same way: the nodes named, each finding's message (then any
    notes), and the usual causes of the figures they fell short on."""
    nodes = tuple(sorted({f.node for f in named}))
    return Outcome(
        False,
        len(nodes),
        threshold,
        unit,
        cause_hint(f.figure for f in named),
        nodes=nodes,
        detail="; ".join([*(f.message for f in named), *notes]),
        extra=extra,
    )


def peers_outcome(report: FleetReport, rule: FleetRule) -> Outcome:
    """The below-the-fleet check: named nodes fail it (the spec's severity); figures that
    cannot be judged (too few peers, unmeasured nodes) are a WARN saying so, never a PASS."""
    named = report.below_fleet()
    threshold = (
        f"> {rule.sigma:g} sigma below the peers' mean or < {rule.min_fraction_of_median:.0%}"
        " of their median"
    )
    unjudged = [j.unjudged for j in report.unjudged_fleet()]
    unmeasured = sorted({f"{n} ({j.figure})" for j in report.fleet for n in j.unmeasured})
    unmeasured_nodes = tuple(sorted({n for j in report.fleet for n in j.unmeasured}))
    notes = unjudged + ([f"no valid figure from {', '.join(unmeasured)}"] if unmeasured else [])
    judged = [j for j in report.fleet if not j.unjudged]
    extra: dict[str, Scalar] = {
        "figures_judged": len(judged),
        "nodes_compared": len({n for j in judged for n in j.nodes}),
    }
    if named:
        return _named(named, threshold, "nodes below the fleet", extra, notes)
    if not report.fleet:
        return Outcome(
            False,
            "unjudged",
            threshold,
            "",
            "materialize the per-node smoke (smoke_gpu, one partition per node) on every node",
            detail="no per-node smoke figure recorded yet: nothing to compare",
            extra=extra,
            severity=Severity.WARN,
        )
    if notes:
        return Outcome(
            False,
            "unjudged" if not judged else 0,
            threshold,
            "nodes below the fleet",
            "run the per-node smoke on more nodes of the group, or group peers differently"
            " (fleet.figures[].group_by)",
            nodes=unmeasured_nodes,
            detail="; ".join(notes),
            extra=extra,
            severity=Severity.WARN,
        )
    compared = tuple(sorted({n for j in judged for n in j.nodes}))
    return Outcome(True, 0, threshold, "nodes below the fleet", "", nodes=compared, extra=extra)


def own_past_outcome(report: FleetReport, rule: FleetRule) -> Outcome:
    """The below-its-own-past check: named nodes fail it; when no node has history enough
    to be judged it is a WARN saying so."""
    threshold = (
        f"< {rule.own_min_fraction:.0%} of its own median over the last {rule.own_window} runs"
    )
    named = report.own_past
    extra: dict[str, Scalar] = {
        "series_judged": len(report.own_judged),
        "series_unjudged": len(report.own_unjudged),
    }
    if named:
        return _named(named, threshold, "nodes below their past", extra)
    if not report.own_judged:
        why = report.own_unjudged[:5] or ["no per-node smoke figure recorded yet"]
        return Outcome(
            False,
            "unjudged",
            threshold,
            "",
            f"each node needs {rule.own_min_samples} earlier smoke runs before its past can"
            " judge it",
            detail="cannot be judged: " + "; ".join(why),
            extra=extra,
            severity=Severity.WARN,
        )
    note = (
        f"{len(report.own_unjudged)} series not judged yet (short history)"
        if report.own_unjudged
        else ""
    )
    judged = tuple(sorted({n for n, _ in report.own_judged}))
    return Outcome(
        True, 0, threshold, "nodes below their past", "", nodes=judged, detail=note, extra=extra
    )
