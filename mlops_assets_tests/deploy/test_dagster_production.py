"""deploy/dagster-production.yaml against the sandbox's real PostgreSQL: the CLI materializes
beegfs_layout with DAGSTER_HOME holding that file, the run and its materialization are rows
in Postgres, the instance has the queued coordinator, pools and run monitoring, and the
exporter sensor pushes the materialization to the real Prometheus."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from mlops_assets.definitions import defs
from mlops_assets.defs.observability.definitions import SENSOR_NAME, metrics_exporter
from mlops_assets.resources.clients import HttpServiceResource

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "dagster-production.yaml"

pytestmark = pytest.mark.sandbox


def test_production_config_is_valid_instance_config() -> None:
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config_schema

    data = yaml.safe_load(CONFIG.read_text())
    result = validate_config(dagster_instance_config_schema(), data)
    assert result.success, [e.message for e in result.errors or []]
    assert data["telemetry"]["enabled"] is False
    assert data["storage"]["postgres"]["postgres_url"] == {"env": "MLOPS_DAGSTER_PG_URL"}
    assert "postgresql://" not in CONFIG.read_text().replace("postgresql://dagster:<pw>@", "")


@pytest.fixture(scope="module")
def materialized(
    sandbox: Path, tmp_path_factory: pytest.TempPathFactory, cli: Any
) -> dict[str, Any]:
    assert os.environ.get("MLOPS_DAGSTER_PG_URL"), "sandbox.env must define MLOPS_DAGSTER_PG_URL"
    home = tmp_path_factory.mktemp("dagster_prod_home")
    shutil.copy(CONFIG, home / "dagster.yaml")
    started = time.time()
    res = cli(
        "materialize",
        "--select",
        "beegfs_layout",
        "--format",
        "json",
        env={"DAGSTER_HOME": str(home)},
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return {"home": home, "started": started}


def test_run_and_materialization_are_rows_in_postgres(materialized: dict[str, Any]) -> None:
    import psycopg2

    with dg.DagsterInstance.from_config(str(materialized["home"])) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        records = instance.get_run_records(
            dg.RunsFilter(tags={"mlops/cli": "mlops_materialize"}),
            limit=5,
        )
        ours = [r for r in records if r.create_timestamp.timestamp() >= materialized["started"] - 1]
        assert ours, "the CLI's run is not in the instance"
        run_id = ours[0].dagster_run.run_id
        assert ours[0].dagster_run.status == dg.DagsterRunStatus.SUCCESS
    with psycopg2.connect(os.environ["MLOPS_DAGSTER_PG_URL"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = "
            "'ASSET_MATERIALIZATION' AND asset_key LIKE %s",
            (run_id, "%beegfs_layout%"),
        )
        row = cur.fetchone()
        assert row is not None and row[0] == 1


def test_instance_has_queue_pools_monitoring_and_no_telemetry(materialized: dict[str, Any]) -> None:
    with dg.DagsterInstance.from_config(str(materialized["home"])) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        conf = instance.get_concurrency_config()
        assert conf.pool_config.default_pool_limit == 4
        assert conf.run_queue_config is not None and conf.run_queue_config.max_concurrent_runs == 8
        keys = {limit["key"] for limit in conf.run_queue_config.tag_concurrency_limits}
        assert {"mlops/domain", "mlops/slurm", "dagster/backfill"} <= keys
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
        assert instance.telemetry_enabled is False


def test_materialization_reaches_prometheus(materialized: dict[str, Any]) -> None:
    with dg.DagsterInstance.from_config(str(materialized["home"])) as instance:
        ctx = dg.build_sensor_context(
            instance=instance,
            definitions=defs(),
            sensor_name=SENSOR_NAME,
            resources={
                "pushgateway": HttpServiceResource(url="http://127.0.0.1:9091", timeout_s=5)
            },
        )
        result = metrics_exporter(ctx)
    assert isinstance(result, dg.SensorResult) and result.skip_reason is None and result.cursor, (
        result
    )
    query = (
        'mlops_asset_last_materialization_timestamp_seconds{asset="beegfs_layout",group="storage"}'
    )
    deadline = time.monotonic() + 60
    while True:
        url = "http://127.0.0.1:9090/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=5) as resp:
            data = json.load(resp)["data"]["result"]
        if data and float(data[0]["value"][1]) >= materialized["started"] - 1:
            break
        assert time.monotonic() < deadline, f"{query} not fresh in Prometheus after 60s: {data}"
        time.sleep(0.25)
