"""deploy/prometheus and deploy/grafana: promtool accepts and unit-tests the alert rules; every
PromQL expression of the rules and the dashboard names only metrics the exporter produces
(core.metrics.METRICS); the real sandbox Prometheus parses and evaluates each of them."""

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

from mlops_assets.core.metrics import METRICS

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
    """Metric names an expression reads; fails on an unknown function or stray identifier."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = GROUPING.sub("", text)  # by (...), on (...)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables outside matchers
    names: set[str] = set()
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


@pytest.mark.parametrize("expr", _alert_exprs() + _dashboard_exprs())
def test_every_expression_reads_only_exported_metrics(expr: str) -> None:
    names = metric_names(expr)
    assert names, expr
    assert names <= set(METRICS), f"{expr}: not produced by the exporter: {names - set(METRICS)}"


def test_the_metric_extractor_is_not_fooled() -> None:
    assert metric_names('sum by (group) (mlops_check_passed{group=~"a|b"}) / count(up)') == {
        "mlops_check_passed",
        "up",
    }
    assert metric_names("label_values(mlops_check_passed, group)") == {"mlops_check_passed"}


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
