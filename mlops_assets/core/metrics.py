"""Check results and smoke/staging figures as Prometheus metrics, with stable names and labels.

Pure: no Dagster imports. The observability sensor (defs/observability) feeds it evaluations
and materializations read from the Dagster event log and pushes the text it returns to the
Pushgateway; the alert rules (deploy/prometheus) and the Grafana dashboard (deploy/grafana)
use only the names in METRICS, and tests hold them to it.

Pushgateway grouping: one group per (asset, check) for check results and one per asset for
materialization figures, each pushed with PUT, so a run that evaluated a subset of checks
replaces exactly those series and leaves the others as they were.

Never exported: details, hints, measured texts, metadata texts (they may quote hosts, paths
or errors); a label value that contains a known secret is replaced by "****".
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mlops_assets.core.checks import Evaluation, Scalar, Severity, redact
from mlops_assets.core.transport.http import HttpAnswer, request

JOB = "mlops_assets"

# name -> (type, help). Stable: dashboards and alerts depend on these names and labels.
METRICS: dict[str, tuple[str, str]] = {
    "mlops_check_passed": (
        "gauge",
        "1 if the asset check passed on its last evaluation, else 0. Labels: asset, check, severity, group.",
    ),
    "mlops_check_severity_error": (
        "gauge",
        "1 if a failure of this check is ERROR severity, 0 for WARN (same labels as mlops_check_passed).",
    ),
    "mlops_check_measured_value": (
        "gauge",
        "The check's measured value, when numeric (booleans as 0/1). Labels add unit.",
    ),
    "mlops_check_threshold_value": (
        "gauge",
        "The check's threshold, when numeric. Labels add unit.",
    ),
    "mlops_check_duration_seconds": ("gauge", "Seconds the check's probe took."),
    "mlops_check_last_run_timestamp_seconds": (
        "gauge",
        "Unix time of the check's last evaluation.",
    ),
    "mlops_check_node_passed": (
        "gauge",
        "The check's result (1/0), one series per node the check named (failing nodes, or the nodes it measured).",
    ),
    "mlops_check_extra_value": (
        "gauge",
        "Numeric extras a check reports beside its measured value (e.g. latency_s, targets_up). Label key.",
    ),
    "mlops_asset_last_materialization_timestamp_seconds": (
        "gauge",
        "Unix time of the asset's last materialization (staging freshness, smoke results). Labels: asset, group.",
    ),
    "mlops_asset_metadata_value": (
        "gauge",
        "Numeric metadata of the asset's last materialization (smoke figures such as TFLOP/s, staged bytes). Labels: asset, group, key, node.",
    ),
    "mlops_quarantine_action_timestamp_seconds": (
        "gauge",
        "Unix time of the quarantine loop's latest decision about a node. Labels: asset, node,"
        " action (drain, resume, hold, capped, left_alone), mode (dry_run, live), executed,"
        " source (the smoke asset or check that decided).",
    ),
    "mlops_quarantine_drained_nodes": (
        "gauge",
        "Nodes of a partition drained by the quarantine loop (its reason prefix). Labels:"
        " asset, partition.",
    ),
}

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MAX_LABEL_VALUE = 200


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str:
        return dict(self.labels).get(key, "")


def escape_label_value(value: str) -> str:
    """The exposition format's escaping: backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metric_key(text: str) -> str:
    """A metadata key as a label value that is safe and stable: [a-z0-9_] only."""
    return re.sub(r"[^a-z0-9_]+", "_", text.strip().lower()).strip("_") or "value"


def numeric(value: Scalar | object) -> float | None:
    """bool -> 0/1, finite int/float -> float; anything else (texts, None, NaN) -> None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def _clean(value: str, secrets: Sequence[str]) -> str:
    text = redact(str(value), secrets)
    if any(s and len(s) >= 4 and s in str(value) for s in secrets):
        text = "****"
    return text.replace("\n", " ")[:_MAX_LABEL_VALUE]


def _sample(name: str, value: float, labels: Mapping[str, str], secrets: Sequence[str]) -> Sample:
    assert name in METRICS, name
    return Sample(name, tuple((k, _clean(v, secrets)) for k, v in labels.items()), value)


def check_samples(
    ev: Evaluation, *, timestamp: float, group: str = "", secrets: Iterable[str] = ()
) -> list[Sample]:
    """Every series one check evaluation produces."""
    sec = [s for s in secrets if s]
    base = {"asset": ev.asset, "check": ev.check, "severity": str(ev.severity), "group": group}
    passed = 1.0 if ev.passed else 0.0
    out = [
        _sample("mlops_check_passed", passed, base, sec),
        _sample(
            "mlops_check_severity_error", 1.0 if ev.severity == Severity.ERROR else 0.0, base, sec
        ),
        _sample("mlops_check_duration_seconds", round(max(ev.duration_s, 0.0), 6), base, sec),
        _sample("mlops_check_last_run_timestamp_seconds", round(timestamp, 3), base, sec),
    ]
    with_unit = {**base, "unit": ev.unit}
    measured, threshold = numeric(ev.measured), numeric(ev.threshold)
    if measured is not None:
        out.append(_sample("mlops_check_measured_value", measured, with_unit, sec))
    if threshold is not None:
        out.append(_sample("mlops_check_threshold_value", threshold, with_unit, sec))
    for node in dict.fromkeys(ev.nodes):
        if node:
            out.append(_sample("mlops_check_node_passed", passed, {**base, "node": node}, sec))
    for key, extra in sorted(ev.extra.items()):
        value = numeric(extra)
        if value is not None:
            out.append(
                _sample("mlops_check_extra_value", value, {**base, "key": metric_key(key)}, sec)
            )
    return out


def materialization_samples(
    asset: str,
    *,
    group: str,
    timestamp: float,
    metadata: Mapping[str, object],
    secrets: Iterable[str] = (),
) -> list[Sample]:
    """A materialization's time and its numeric metadata (smoke figures, sizes). The node
    label comes from a text metadata entry `node` (one node per materialization); a key
    written `figure@node` names its node itself, for per-node smoke figures in one event."""
    sec = [s for s in secrets if s]
    base = {"asset": asset, "group": group}
    out = [
        _sample(
            "mlops_asset_last_materialization_timestamp_seconds", round(timestamp, 3), base, sec
        )
    ]
    default_node = metadata.get("node")
    default_node = default_node if isinstance(default_node, str) else ""
    for key, raw in sorted(metadata.items()):
        value = numeric(raw)
        if value is None:
            continue
        figure, _, node = key.partition("@")
        out.append(
            _sample(
                "mlops_asset_metadata_value",
                value,
                {**base, "key": metric_key(figure), "node": node or default_node},
                sec,
            )
        )
    return out


def _format_value(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def exposition(samples: Iterable[Sample]) -> str:
    """Prometheus text format 0.0.4: HELP/TYPE once per metric, samples grouped under it.
    A repeated (name, labels) keeps the last value (Prometheus rejects duplicates)."""
    unique: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
    for s in samples:
        unique[(s.name, tuple(sorted(s.labels)))] = s
    by_name: dict[str, list[Sample]] = {}
    for (name, _), s in unique.items():
        by_name.setdefault(name, []).append(s)
    lines: list[str] = []
    for name in sorted(by_name):
        if not _NAME_RE.match(name):
            raise ValueError(f"bad metric name {name!r}")
        kind, help_text = METRICS[name]
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for s in sorted(by_name[name], key=lambda x: sorted(x.labels)):
            for key, _ in s.labels:
                if not _LABEL_RE.match(key) or key.startswith("__"):
                    raise ValueError(f"bad label name {key!r}")
            labels = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(s.labels))
            lines.append(f"{name}{{{labels}}} {_format_value(s.value)}")
    return "\n".join(lines) + "\n" if lines else ""


def grouping_path(grouping: Mapping[str, str], job: str = JOB) -> str:
    """`/metrics/job/<job>/<label>/<value>...`; every value is base64url-encoded
    (`label@base64/...`), the Pushgateway's escaping for values with `/` or empty ones."""

    def enc(value: str) -> str:
        return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=") or "="

    parts = [f"/metrics/job@base64/{enc(job)}"]
    for key, value in grouping.items():
        if not _LABEL_RE.match(key):
            raise ValueError(f"bad grouping label {key!r}")
        parts.append(f"{key}@base64/{enc(value)}")
    return "/".join(parts)


def push_groups(samples: Iterable[Sample]) -> dict[str, str]:
    """Pushgateway group path -> exposition body. Check series are grouped by (asset,
    check), materialization series by asset alone (a group of its own: a group is its
    whole label set)."""
    groups: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
    for s in samples:
        if s.name.startswith("mlops_check_"):
            key: tuple[tuple[str, str], ...] = (
                ("asset", s.label("asset")),
                ("check", s.label("check")),
            )
        else:
            key = (("asset", s.label("asset")),)
        groups.setdefault(key, []).append(s)
    return {grouping_path(dict(k)): exposition(v) for k, v in groups.items()}


class PushFailed(Exception):
    pass


def push(base_url: str, groups: Mapping[str, str], *, timeout_s: float = 10) -> int:
    """PUT every group to the Pushgateway at base_url; returns the number pushed. Any
    non-2xx answer raises PushFailed naming the group and the gateway's message."""
    pushed = 0
    for path, body in groups.items():
        ans: HttpAnswer = request(
            base_url.rstrip("/") + path,
            method="PUT",
            timeout_s=timeout_s,
            headers={"Content-Type": "text/plain; version=0.0.4"},
            body=body.encode("utf-8"),
        )
        if not 200 <= ans.status < 300:
            raise PushFailed(f"Pushgateway PUT {path} answered {ans.status}: {ans.text[:300]}")
        pushed += 1
    return pushed


def quarantine_samples(
    asset: str,
    actions: Iterable[object],
    drained_per_partition: Mapping[str, int],
    *,
    timestamp: float,
    secrets: Iterable[str] = (),
) -> list[Sample]:
    """One series per node decided on (its latest action) and one per partition (how many
    nodes the loop holds drained). `actions` are core.quarantine.Action; their messages and
    SLURM's answers are not exported (they may quote hosts or errors)."""
    sec = [s for s in secrets if s]
    out: list[Sample] = []
    for a in actions:
        labels = {
            "asset": asset,
            "node": str(getattr(a, "node", "")),
            "action": str(getattr(a, "action", "")),
            "mode": "dry_run" if getattr(a, "dry_run", True) else "live",
            "executed": "true" if getattr(a, "executed", False) else "false",
            "source": str(getattr(a, "source", "")),
        }
        out.append(
            _sample("mlops_quarantine_action_timestamp_seconds", round(timestamp, 3), labels, sec)
        )
    for partition, n in sorted(drained_per_partition.items()):
        out.append(
            _sample(
                "mlops_quarantine_drained_nodes",
                float(n),
                {"asset": asset, "partition": partition},
                sec,
            )
        )
    return out


def quarantine_groups(samples: Iterable[Sample]) -> dict[str, str]:
    """Pushgateway groups for the quarantine series: one per node and one per partition, so a
    tick that decides about one node replaces that node's series and keeps the others'."""
    groups: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
    for s in samples:
        extra = (
            ("node", s.label("node")) if s.label("node") else ("partition", s.label("partition"))
        )
        groups.setdefault((("asset", s.label("asset")), extra), []).append(s)
    return {grouping_path(dict(k)): exposition(v) for k, v in groups.items()}
