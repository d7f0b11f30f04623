"""deploy/prometheus and deploy/grafana: promtool accepts the exporter's metrics and accepts and
unit-tests the alert rules; every PromQL expression of the rules and the dashboard names only
metrics the exporter produces; every panel has a unit; the real sandbox Prometheus parses and
evaluates each expression."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_assets.core.checks import Evaluation, Severity
from mlops_assets.core.metrics import (
    METRICS,
    check_samples,
    exposition,
    known_metric,
    materialization_samples,
)

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboard.json"

FUNCTIONS = {
    "count",
    "sum",
    "max",
    "min",
    "avg",
    "topk",
    "bottomk",
    "time",
    "vector",
    "label_values",
    "absent",
    "rate",
    "increase",
    "max_over_time",
    "min_over_time",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads; fails on an unknown function or stray identifier.
    A `{__name__=~"re"}` selector is returned as `re:<re>`."""
    names: set[str] = {
        "re:" + m.group(1) for m in re.finditer(r'__name__\s*=~\s*"((?:[^"\\]|\\.)*)"', expr)
    }
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = GROUPING.sub("", text)  # by (...), on (...)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables outside matchers
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = m.group(0)
        following = text[m.end() :].lstrip()
        if word in KEYWORDS or re.fullmatch(r"\d+[smhdwy]?", word):
            continue
        if following.startswith("("):
            assert word in FUNCTIONS, f"unexpected function {word} in {expr}"
        else:
            names.add(word)
    if expr.startswith("label_values("):
        inner = expr[len("label_values(") :].split(",")[0]
        names.add(inner.split("{")[0].strip())
        names.discard(expr.rsplit(",", 1)[-1].strip(" )"))
    return names


def _alert_exprs() -> list[str]:
    doc = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    return [r["expr"].strip() for g in doc["groups"] for r in g["rules"]]


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def _dashboard_exprs() -> list[str]:
    dash = _dashboard()
    exprs = [t["expr"] for p in _panels(dash) for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["query"]["query"])
    return exprs


def test_promtool_check_rules() -> None:
    out = subprocess.run(
        ["promtool", "check", "rules", str(PROM_DIR / "alerts.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 8 rules found" in out.stdout


def test_promtool_unit_tests_fire_and_stay_quiet_as_designed() -> None:
    out = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"],
        capture_output=True,
        text=True,
        check=False,
        cwd=PROM_DIR,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_alert_rules_cover_error_checks_and_stale_smoke() -> None:
    doc = yaml.safe_load((PROM_DIR / "alerts.yml").read_text())
    names = {r["alert"] for g in doc["groups"] for r in g["rules"]}
    assert {"MlopsErrorCheckFailing", "MlopsSmokeResultStale", "MlopsStagingStale"} <= names


def _realistic_samples() -> list[Any]:
    """What the exporter makes of real results: check units as the sandbox's checks write
    them, and the metadata keys the GPU smoke and staging payloads report."""
    checks = [
        ("beegfs", "beegfs_free_space", "GB free", 812.4, 500.0, {}),
        ("dataset_mnist", "dataset_mnist_size_within_bounds", "MB staged", 11.6, "3.9..35", {}),
        ("hpc_to_cloud", "hpc_to_cloud_bandwidth", "Mbps", 942.0, 800.0, {"seconds": 0.2}),
        ("hpc_login", "hpc_login_accepts_key", "s to connect and run `true`", 0.2, 5.0, {}),
        ("prometheus", "prometheus_targets_up", "share of scraped targets up", 1.0, 0.9, {}),
        ("gpu_nodes", "gpu_count_at_least_minimum", "nodes with gpu GRES >= 2", 1, 1, {}),
        ("mlflow", "mlflow_health_endpoint", "HTTP status", 200, 200, {"latency_s": 0.01}),
        ("minio", "minio_write_quorum", "write quorum", "1", "1", {"write_MBps": 120.5}),
        ("prometheus", "prometheus_targets_scraped", "targets", 3, 3, {"targets_total": 3}),
    ]
    out: list[Any] = []
    for asset, check, unit, measured, threshold, extra in checks:
        ev = Evaluation(
            asset, check, True, Severity.ERROR, measured, threshold, unit, "", 0.1, extra=extra
        )
        out += check_samples(ev, timestamp=1.0, group="hpc")
    gpu = {
        "gpu0_matmul_bf16_tflops": 712.3,
        "gpu0_copy_gbps": 1450.0,
        "min_matmul_bf16_tflops": 712.3,
        "min_copy_gbps": 1450.0,
        "cpu_matmul_fp32_gflops": 2.2,
        "cpu_copy_gbps": 10.5,
        "memory_total_bytes": 85_000_000_000,
        "max_rss_bytes": 120_000_000,
        "payload_seconds": 14.2,
        "node": "gpu-01",
    }
    out += materialization_samples("smoke_gpu", group="smoke", timestamp=2.0, metadata=gpu)
    out += materialization_samples(
        "smoke_multi_gpu_nccl",
        group="smoke",
        timestamp=2.0,
        metadata={"busbw_gbps@gpu-01": 180.0, "algbw_gbps@gpu-01": 97.0},
    )
    staged = {"bytes": 11_594_722, "bytes_transferred": 0, "files": 8}
    out += materialization_samples(
        "dataset_mnist", group="datasets", timestamp=2.0, metadata=staged
    )
    return out


PRODUCED = {s.name for s in _realistic_samples()}


def test_promtool_check_metrics_accepts_what_the_exporter_writes() -> None:
    """promtool's linter: base units, no _total/_count on gauges, HELP on every metric."""
    out = subprocess.run(
        ["promtool", "check", "metrics"],
        input=exposition(_realistic_samples()),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr
    assert {"mlops_check_measured_bytes", "mlops_asset_figure_matmul_bf16_flops"} <= PRODUCED


@pytest.mark.parametrize("expr", _alert_exprs() + _dashboard_exprs())
def test_every_expression_reads_only_exported_metrics(expr: str) -> None:
    names = metric_names(expr)
    assert names, expr
    for name in names:
        if name.startswith("re:"):
            pattern = name[3:]
            assert any(re.fullmatch(pattern, n) for n in PRODUCED), f"{expr}: matches nothing"
        else:
            assert name in METRICS or known_metric(name), f"{expr}: {name} is not exported"


def test_every_dashboard_panel_has_a_unit() -> None:
    for p in _panels(_dashboard()):
        if p["type"] != "row":
            assert p.get("fieldConfig", {}).get("defaults", {}).get("unit"), p["title"]


def test_no_generic_series_and_no_severity_join() -> None:
    """No metric's meaning hangs on a `key` or `unit` label; severity is a label matcher."""
    exprs = " ".join(_alert_exprs() + _dashboard_exprs())
    assert "severity_error" not in exprs and not re.search(r"mlops_\w*_value\b", exprs)
    for sample in _realistic_samples():
        assert not {"key", "unit"} & {k for k, _ in sample.labels}, sample


def test_the_metric_extractor_is_not_fooled() -> None:
    assert metric_names('sum by (group) (mlops_check_passed{group=~"a|b"}) / count(up)') == {
        "mlops_check_passed",
        "up",
    }
    assert metric_names("label_values(mlops_check_passed, group)") == {"mlops_check_passed"}
    assert metric_names('{__name__=~"mlops_asset_figure_.*_flops", node=~"$node"}') == {
        "re:mlops_asset_figure_.*_flops"
    }


def test_dashboard_is_a_valid_grafana_dashboard() -> None:
    dash = _dashboard()
    for key in ("uid", "title", "schemaVersion", "panels", "templating", "time"):
        assert key in dash
    ids = [p["id"] for p in _panels(dash)]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"] for p in _panels(dash))
    for section in ("Platform readiness", "GPU smoke per node", "Staging freshness"):
        assert section in titles
    for p in _panels(dash):
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        if p["type"] != "row":
            assert p["targets"] and p["datasource"]["uid"] == "${datasource}"
            assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])
    node_panels = [p for p in _panels(dash) if "node" in json.dumps(p.get("targets", []))]
    assert node_panels, "per-node GPU smoke history needs a panel by node"


def _substitute(expr: str) -> str:
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


@pytest.mark.sandbox
def test_sandbox_prometheus_evaluates_every_expression(sandbox: Path) -> None:
    for expr in _alert_exprs() + [
        e for e in _dashboard_exprs() if not e.startswith("label_values(")
    ]:
        url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode(
            {"query": _substitute(expr)}
        )
        with urllib.request.urlopen(url, timeout=5) as resp:
            body = json.load(resp)
        assert body["status"] == "success", (expr, body)
