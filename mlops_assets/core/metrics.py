"""Check results and smoke/staging figures as Prometheus metrics, named as Prometheus asks:
the base unit in the name (bytes, seconds, bytes_per_second, ratio, flops), one metric per
quantity, severity as a label. deploy/prometheus/README.md lists them.

Pure: no Dagster imports. The observability sensor (defs/observability) feeds it evaluations
and materializations read from the Dagster event log and pushes the text it returns to the
Pushgateway; the alert rules (deploy/prometheus) and the Grafana dashboard (deploy/grafana)
use only these names, and tests hold them to it (and run `promtool check metrics`).

Names. Fixed ones are in METRICS. A check's measured value and threshold go to
`mlops_check_measured_<unit>` / `mlops_check_threshold_<unit>`, the unit read from the
check's unit text (`GB free` is bytes x 1e9, `Mbps` bytes per second x 125000, `s ...`
seconds, `share of ...` a ratio); a whole-number value with a unit that names what it counts
(`nodes with gpu GRES >= 2`) is dimensionless, `mlops_check_measured`. A value whose unit
cannot be read (a float in an unknown unit) or that is an HTTP status is not exported: a
wrong unit in a name is worse than none. Numeric extras of a check and numeric metadata of a
materialization become `mlops_check_figure_<name>_<unit>` and
`mlops_asset_figure_<name>_<unit>`, the unit read from the key's suffix (`_s`, `_bytes`,
`_gbps` = GB/s, `_MBps`, `_tflops`, ...); `gpuN_` at the front of a key becomes a `gpu`
label and `figure@node` a `node` label.

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

from mlops_assets.core.checks import Evaluation, Scalar, redact
from mlops_assets.core.transport.http import HttpAnswer, request

JOB = "mlops_assets"

_CHECK_LABELS = "Labels: asset, check, severity (ERROR or WARN), group."
# name -> (type, help). Stable: dashboards and alerts depend on these names and labels.
METRICS: dict[str, tuple[str, str]] = {
    "mlops_check_passed": (
        "gauge",
        f"1 if the asset check passed on its last evaluation, else 0. {_CHECK_LABELS}",
    ),
    "mlops_check_duration_seconds": ("gauge", f"Seconds the check's probe took. {_CHECK_LABELS}"),
    "mlops_check_last_run_timestamp_seconds": (
        "gauge",
        f"Unix time of the check's last evaluation. {_CHECK_LABELS}",
    ),
    "mlops_check_node_passed": (
        "gauge",
        "The check's result (1/0), one series per node the check named (failing nodes, or the "
        "nodes it measured). Labels: those of mlops_check_passed and node.",
    ),
    "mlops_asset_last_materialization_timestamp_seconds": (
        "gauge",
        "Unix time of the asset's last materialization (staging freshness, smoke results). "
        "Labels: asset, group.",
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

# Base units as Prometheus names them; "" is dimensionless (a count of what the check counts).
UNIT_HELP = {
    "bytes": "bytes",
    "seconds": "seconds",
    "bytes_per_second": "bytes per second",
    "ratio": "a ratio (0..1)",
    "flops": "floating-point operations per second",
    "celsius": "degrees Celsius",
    "watts": "watts",
    "hertz": "hertz",
    "": "dimensionless: a count of what the check's unit names",
}
for _unit, _words in UNIT_HELP.items():
    _suffix = f"_{_unit}" if _unit else ""
    METRICS[f"mlops_check_measured{_suffix}"] = (
        "gauge",
        f"The check's measured value, in {_words}. {_CHECK_LABELS}",
    )
    METRICS[f"mlops_check_threshold{_suffix}"] = (
        "gauge",
        f"The check's threshold, in {_words}. {_CHECK_LABELS}",
    )

# The first word of a check's unit text -> (base unit, factor to it).
_CHECK_UNITS: dict[str, tuple[str, float]] = {
    "B": ("bytes", 1.0),
    "bytes": ("bytes", 1.0),
    "KB": ("bytes", 1e3),
    "MB": ("bytes", 1e6),
    "GB": ("bytes", 1e9),
    "TB": ("bytes", 1e12),
    "KiB": ("bytes", 2.0**10),
    "MiB": ("bytes", 2.0**20),
    "GiB": ("bytes", 2.0**30),
    "TiB": ("bytes", 2.0**40),
    "s": ("seconds", 1.0),
    "seconds": ("seconds", 1.0),
    "ms": ("seconds", 1e-3),
    "MB/s": ("bytes_per_second", 1e6),
    "GB/s": ("bytes_per_second", 1e9),
    "Mbps": ("bytes_per_second", 1e6 / 8),
    "Gbps": ("bytes_per_second", 1e9 / 8),
    "share": ("ratio", 1.0),
    "fraction": ("ratio", 1.0),
    "ratio": ("ratio", 1.0),
    "%": ("ratio", 0.01),
    "GFLOP/s": ("flops", 1e9),
    "TFLOP/s": ("flops", 1e12),
    "C": ("celsius", 1.0),
    "°C": ("celsius", 1.0),
    "W": ("watts", 1.0),
    "MHz": ("hertz", 1e6),
}

# A figure key's suffix -> (base unit, factor), longest first; case matters (MBps vs Mbps).
_KEY_SUFFIXES: tuple[tuple[str, str, float], ...] = (
    ("_bytes_per_second", "bytes_per_second", 1.0),
    ("_seconds", "seconds", 1.0),
    ("_tflops", "flops", 1e12),
    ("_gflops", "flops", 1e9),
    ("_bytes", "bytes", 1.0),
    ("_ratio", "ratio", 1.0),
    ("_MBps", "bytes_per_second", 1e6),
    ("_Mbps", "bytes_per_second", 1e6 / 8),
    ("_gbps", "bytes_per_second", 1e9),
    ("_mib", "bytes", 2.0**20),
    ("_ms", "seconds", 1e-3),
    ("_ns", "seconds", 1e-9),
    ("_s", "seconds", 1.0),
)
_FIGURE_PREFIXES = ("mlops_check_figure_", "mlops_asset_figure_")
_GPU_PREFIX = re.compile(r"^gpu(\d+)_(.+)$")
_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MAX_LABEL_VALUE = 200


def check_unit(unit: str, value: float) -> tuple[str, float] | None:
    """(base unit, factor) for a check's unit text, "" for a dimensionless count; None when
    the value cannot be named honestly (an HTTP status, a fraction in an unknown unit)."""
    words = unit.strip().split()
    first = words[0] if words else ""
    if first in _CHECK_UNITS:
        return _CHECK_UNITS[first]
    if first == "HTTP" or not first:
        return None
    return ("", 1.0) if float(value).is_integer() else None


def figure_metric(prefix: str, key: str) -> tuple[str, float, dict[str, str]] | None:
    """A numeric extra or metadata key as (metric name, factor to the base unit, labels):
    `gpu0_matmul_bf16_tflops` -> (`<prefix>_figure_matmul_bf16_flops`, 1e12, {gpu: "0"}),
    `bytes_transferred` -> `<prefix>_figure_transferred_bytes`, `node_count` -> `..._nodes`
    and `targets_total` -> `..._targets` (promtool reserves `_count` for histograms and
    `_total` for counters). None for a key that is only punctuation."""
    labels: dict[str, str] = {}
    m = _GPU_PREFIX.match(key)
    if m:
        labels["gpu"], key = m.group(1), m.group(2)
    unit, factor, stem = "", 1.0, key
    for suffix, base, scale in _KEY_SUFFIXES:
        if key.endswith(suffix):
            unit, factor, stem = base, scale, key[: -len(suffix)]
            break
    else:
        if key == "bytes" or key.startswith("bytes_"):
            unit, stem = "bytes", key[len("bytes_") :] if key != "bytes" else ""
        elif key.endswith("_count"):
            stem = key[: -len("_count")] + "s"
        elif key.endswith("_total"):  # a counter's suffix; these are gauges of a whole
            stem = key[: -len("_total")]
    parts = [p for p in (metric_key(stem) if stem else "", unit) if p]
    if not parts:
        return None
    return f"{prefix}_figure_{'_'.join(parts)}", factor, labels


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
    """A key as a name part that is safe and stable: [a-z0-9_] only."""
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


def known_metric(name: str) -> bool:
    return name in METRICS or (
        name.startswith(_FIGURE_PREFIXES) and _NAME_RE.match(name) is not None
    )


def help_text(name: str) -> tuple[str, str]:
    if name in METRICS:
        return METRICS[name]
    what = "check's extra figure" if name.startswith("mlops_check_") else "asset's figure"
    labels = (
        _CHECK_LABELS.removesuffix(".") + ", gpu where per GPU."
        if name.startswith("mlops_check_")
        else "Labels: asset, group, node, gpu where per GPU."
    )
    return "gauge", f"A {what} from its last result, in the unit its name ends with. {labels}"


def _sample(name: str, value: float, labels: Mapping[str, str], secrets: Sequence[str]) -> Sample:
    assert known_metric(name), name
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
        _sample("mlops_check_duration_seconds", round(max(ev.duration_s, 0.0), 6), base, sec),
        _sample("mlops_check_last_run_timestamp_seconds", round(timestamp, 3), base, sec),
    ]
    for kind, raw in (("measured", ev.measured), ("threshold", ev.threshold)):
        value = numeric(raw)
        if value is None or isinstance(raw, bool):
            continue  # a yes/no is what mlops_check_passed already says
        unit = check_unit(ev.unit, value)
        if unit is not None:
            name = f"mlops_check_{kind}" + (f"_{unit[0]}" if unit[0] else "")
            out.append(_sample(name, value * unit[1], base, sec))
    for node in dict.fromkeys(ev.nodes):
        if node:
            out.append(_sample("mlops_check_node_passed", passed, {**base, "node": node}, sec))
    for key, extra in sorted(ev.extra.items()):
        value = numeric(extra)
        named = figure_metric("mlops_check", key) if value is not None else None
        if value is not None and named is not None:
            name, factor, labels = named
            out.append(_sample(name, value * factor, {**base, **labels}, sec))
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
        figure, _, node = key.partition("@")
        named = figure_metric("mlops_asset", figure) if value is not None else None
        if value is None or named is None:
            continue
        name, factor, labels = named
        out.append(
            _sample(name, value * factor, {**base, "node": node or default_node, **labels}, sec)
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
        kind, text = help_text(name)
        lines.append(f"# HELP {name} {text}")
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
