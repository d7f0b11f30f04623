"""Check results reach the sandbox's real Prometheus: a validate run (the CLI, recording in
a temporary DAGSTER_HOME), one tick of the exporter sensor pushing to the real Pushgateway,
then Prometheus queried until the series appear (polled, never slept on a guess)."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.definitions import defs
from mlops_assets.defs.observability.definitions import SENSOR_NAME, metrics_exporter
from mlops_assets.resources.clients import HttpServiceResource

pytestmark = pytest.mark.sandbox

PROM = "http://127.0.0.1:9090"
PGW = "http://127.0.0.1:9091"
SELECT = "workstation,prometheus"


def _query(expr: str) -> list[dict[str, Any]]:
    url = f"{PROM}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _wait_for(
    expr: str, predicate: Any, timeout_s: float = 60
) -> tuple[list[dict[str, Any]], float]:
    start = time.monotonic()
    while True:
        result = _query(expr)
        if predicate(result):
            return result, time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise AssertionError(
                f"{expr} did not satisfy the condition within {timeout_s}s: {result}"
            )
        time.sleep(0.25)  # polling interval, not a guess at readiness


@pytest.fixture(scope="module")
def exported(sandbox: Path, tmp_path_factory: pytest.TempPathFactory, cli: Any) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    started = time.time()
    res = cli("validate", "--select", SELECT, "--format", "json", env={"DAGSTER_HOME": str(home)})
    assert res.returncode in (0, 1), res.stderr[-2000:]
    rows = json.loads(res.stdout)
    rows = rows if isinstance(rows, list) else rows.get("rows", rows.get("results", []))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        resources = {"pushgateway": HttpServiceResource(url=PGW, timeout_s=5)}
        ctx = dg.build_sensor_context(
            instance=instance, definitions=defs(), sensor_name=SENSOR_NAME, resources=resources
        )
        first = metrics_exporter(ctx)
        pushed_at = time.monotonic()
        cursor = first.cursor
        again = metrics_exporter(
            dg.build_sensor_context(
                instance=instance,
                definitions=defs(),
                sensor_name=SENSOR_NAME,
                resources=resources,
                cursor=cursor,
            )
        )
    return {
        "rows": rows,
        "started": started,
        "first": first,
        "again": again,
        "cursor": cursor,
        "pushed_at": pushed_at,
    }


def test_every_check_of_the_run_is_queryable_in_prometheus(exported: dict[str, Any]) -> None:
    rows = exported["rows"]
    checks = {(r["asset"], r["check"]): r for r in rows}
    assert checks, rows
    first = exported["first"]
    assert isinstance(first, dg.SensorResult) and first.skip_reason is None, first
    assert first.cursor == exported["cursor"]
    expr = (
        'mlops_check_last_run_timestamp_seconds{job="mlops_assets",asset=~"workstation|prometheus"}'
    )

    def fresh(result: list[dict[str, Any]]) -> bool:
        seen = {
            (r["metric"]["asset"], r["metric"]["check"])
            for r in result
            if float(r["value"][1]) >= exported["started"] - 1
        }
        return set(checks) <= seen

    _wait_for(expr, fresh)
    print(
        "pushed metrics queryable in Prometheus "
        f"{time.monotonic() - exported['pushed_at']:.2f}s after the push"
    )
    passed = {
        (r["metric"]["asset"], r["metric"]["check"]): r
        for r in _query('mlops_check_passed{asset=~"workstation|prometheus"}')
    }
    for key, row in checks.items():
        metric = passed[key]["metric"]
        assert float(passed[key]["value"][1]) == (1.0 if row["passed"] else 0.0), key
        assert metric["severity"] == row["severity"]
        assert metric["group"] in ("network", "cloud")
        assert metric["job"] == "mlops_assets"


def test_numeric_measured_values_and_durations_are_exported(exported: dict[str, Any]) -> None:
    numeric = [
        r
        for r in exported["rows"]
        if isinstance(r["measured"], int | float) and not isinstance(r["measured"], bool)
    ]
    assert numeric, "expected at least one numeric measurement (prometheus_targets_up)"
    # the unit is in the name ("share of scraped targets up" is a ratio), not a label
    result, _ = _wait_for('mlops_check_measured_ratio{check="prometheus_targets_up"}', bool)
    assert "unit" not in result[0]["metric"] and 0 <= float(result[0]["value"][1]) <= 1
    durations = _query('mlops_check_duration_seconds{asset="workstation"}')
    assert durations and all(float(r["value"][1]) >= 0 for r in durations)


def test_second_tick_pushes_nothing_new(exported: dict[str, Any]) -> None:
    cursor = json.loads(exported["cursor"])
    assert set(cursor["checks"]) >= {f"{r['asset']}:{r['check']}" for r in exported["rows"]}
    assert exported["again"].skip_message == "no new check results or materializations"


def test_no_secret_reaches_the_pushgateway(exported: dict[str, Any]) -> None:
    secrets = [
        os.environ[n]
        for n in ("MLOPS_S3_SECRET_ACCESS_KEY", "MLOPS_S3_ACCESS_KEY_ID", "MLOPS_PG_PASSWORD")
        if os.environ.get(n)
    ]
    assert secrets, "the sandbox env should define its generated credentials"
    with urllib.request.urlopen(f"{PGW}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert "mlops_check_passed" in text
    for secret in secrets:
        assert secret not in text
