"""defs/serving without services: the verdicts its recorded checks give from a
materialization's metadata, the asset and checks in the code location, where the endpoint
is said to be, and the local server's state directory. The served path itself (KServe's
model server started, loaded and measured) is test_serving_sandbox.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.catalog.schema import ServedModel
from mlops_assets.core.checks import ProbeFailed, Severity
from mlops_assets.definitions import defs
from mlops_assets.defs.serving.definitions import (
    ASSET,
    GROUP,
    PREDICTIONS_CHECK,
    endpoint_url,
    local_server,
    prometheus_outcome,
    served_recorded_checks,
    throughput_outcome,
    within,
)
from mlops_assets.platform import active

CHECKS = {
    "served_deploy_within_budget": "WARN",
    "served_ready_within_budget": "ERROR",
    "served_p95_latency_within_threshold": "ERROR",
    "served_throughput_at_least": "WARN",
    "served_requests_in_prometheus": "ERROR",
    PREDICTIONS_CHECK: "ERROR",
}


def served(**update: Any) -> ServedModel:
    return active().catalog.serving.mnist.model_copy(update=update)


def assert_cannot_be_judged(outcome: Any, *missing: str) -> None:
    assert not outcome.passed and outcome.severity == Severity.WARN
    assert outcome.detail == (
        f"{ASSET}'s latest materialization has no {', '.join(missing)}: cannot be judged"
    )
    assert outcome.hint == f"materialize {ASSET}"


# ------------------------------------------------------------------ recorded verdicts


def test_within_passes_at_and_under_the_limit() -> None:
    ok = within({"load_p95_ms": 45.25, "max_p95_ms": 100}, "load_p95_ms", "max_p95_ms", "ms", "p95")
    assert (ok.passed, ok.measured, ok.threshold, ok.unit) == (True, 45.25, 100.0, "ms")
    assert ok.detail == "p95 45.25 ms (within 100 ms)" and ok.hint == "" and ok.severity is None
    edge = within({"d": 180, "b": 180}, "d", "b", "s", "deploy")
    assert edge.passed and edge.detail == "deploy 180 s (within 180 s)"


def test_within_fails_over_the_limit_with_the_figures() -> None:
    over = within(
        {"ready_seconds": 612.5, "ready_budget_s": 600.0},
        "ready_seconds",
        "ready_budget_s",
        "s",
        "ready after",
    )
    assert not over.passed and (over.measured, over.threshold) == (612.5, 600.0)
    assert over.detail == "ready after 612.5 s (over 600 s)"
    assert "server's log" in over.hint
    assert over.severity is None  # the check's own severity: a real failure


def test_within_missing_metadata_cannot_be_judged() -> None:
    assert_cannot_be_judged(
        within({}, "deploy_seconds", "deploy_budget_s", "s", "deploy"),
        "deploy_seconds",
        "deploy_budget_s",
    )
    none = within(
        {"deploy_seconds": None, "deploy_budget_s": 180},
        "deploy_seconds",
        "deploy_budget_s",
        "s",
        "deploy",
    )
    assert_cannot_be_judged(none, "deploy_seconds")


def test_throughput_outcome() -> None:
    meta = {"load_throughput_rps": 42.5, "min_throughput_rps": 10.0, "load_errors": 0}
    ok = throughput_outcome(meta)
    assert (ok.passed, ok.measured, ok.threshold, ok.unit) == (True, 42.5, 10.0, "req/s")
    assert ok.detail == "42.5 req/s completed over the whole load, 0 error(s)"
    assert throughput_outcome({k: v for k, v in meta.items() if k != "load_errors"}).passed
    slow = throughput_outcome({**meta, "load_throughput_rps": 7.5})
    assert not slow.passed and slow.measured == 7.5 and "7.5 req/s" in slow.detail
    assert "slow or failing server" in slow.hint
    errors = throughput_outcome({**meta, "load_errors": 3})
    assert not errors.passed and errors.measured == 42.5  # fast enough, but with errors
    assert errors.detail.endswith("3 error(s)")
    assert_cannot_be_judged(
        throughput_outcome({"load_errors": 0}), "load_throughput_rps", "min_throughput_rps"
    )


def test_prometheus_outcome() -> None:
    meta = {
        "server_predict_count": 201.0,
        "prometheus_predict_count": 201.0,
        "prometheus_wait_s": 15.2,
        "prometheus_job": "kserve",
    }
    ok = prometheus_outcome(meta)
    assert (ok.passed, ok.measured, ok.threshold, ok.unit) == (True, 201.0, 201.0, "requests")
    assert ok.detail == "Prometheus 201 of the server's 201 predict calls (after 15.2 s)"
    assert prometheus_outcome({**meta, "prometheus_predict_count": 250}).passed  # a restart
    behind = prometheus_outcome({**meta, "prometheus_predict_count": 150, "prometheus_job": "j"})
    assert not behind.passed and (behind.measured, behind.threshold) == (150.0, 201.0)
    assert behind.detail.startswith("Prometheus 150 of the server's 201 predict calls")
    assert behind.hint == "Prometheus lags or scrapes another server: check job j"


def test_prometheus_outcome_no_series_names_the_scrape_job() -> None:
    meta = {"server_predict_count": 201.0, "prometheus_predict_count": None}
    none = prometheus_outcome({**meta, "prometheus_job": "sandbox-kserve"})
    assert not none.passed and none.severity is None  # a real failure, not "cannot judge"
    assert (none.measured, none.threshold) == ("no series", 201.0)
    assert "scrape job sandbox-kserve" in none.hint
    assert none.detail == "Prometheus has no request_predict_seconds_count of job sandbox-kserve"
    assert "scrape job kserve " in prometheus_outcome(meta).hint  # the default job
    assert_cannot_be_judged(
        prometheus_outcome({"prometheus_predict_count": 3.0}), "server_predict_count"
    )


def test_recorded_checks_judge_the_latest_materialization() -> None:
    """Each check name runs its own verdict on the recorded figures (none swapped), and a
    figure not recorded is a WARN even on an ERROR check."""
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            ASSET,
            metadata={
                "deploy_seconds": 1.5,
                "deploy_budget_s": 180.0,
                "load_p95_ms": 150.0,
                "max_p95_ms": 100.0,
                "load_throughput_rps": 40.0,
                "min_throughput_rps": 10.0,
                "load_errors": 0,
                "server_predict_count": 201.0,
                "prometheus_predict_count": 150.0,
                "prometheus_job": "kserve",
            },
        )
    )
    result = dg.materialize(
        [dg.AssetSpec(ASSET), served_recorded_checks()],
        instance=instance,
        raise_on_error=False,
        selection=dg.AssetSelection.checks(
            *(dg.AssetCheckKey(dg.AssetKey(ASSET), n) for n in CHECKS if n != PREDICTIONS_CHECK)
        ),
    )
    found = {
        e.check_name: (e.passed, e.severity.value, e.metadata["measured"].value)
        for e in result.get_asset_check_evaluations()
    }
    assert found == {
        "served_deploy_within_budget": (True, "WARN", 1.5),
        "served_ready_within_budget": (False, "WARN", "none"),  # not recorded
        "served_p95_latency_within_threshold": (False, "ERROR", 150.0),
        "served_throughput_at_least": (True, "WARN", 40.0),
        "served_requests_in_prometheus": (False, "ERROR", 150.0),
    }


# ------------------------------------------------------------------ the definitions


def test_served_asset_in_the_code_location_with_its_lineage_and_checks() -> None:
    graph = defs().resolve_asset_graph()
    node = graph.get(dg.AssetKey(ASSET))
    assert GROUP == "serving" and node.group_name == "serving"
    assert {p.to_user_string() for p in node.parent_keys} == {
        "model_mnist_minio",
        "dataset_mnist_minio",
    }
    mine = {ck for ck in graph.asset_check_keys if ck.asset_key == dg.AssetKey(ASSET)}
    assert {ck.name for ck in mine} == set(CHECKS)
    severities = {ck.name: graph.get_check_spec(ck).metadata["mlops/severity"] for ck in mine}
    assert severities == CHECKS
    assert {ck.name for ck in graph.asset_check_keys if ck.name.startswith("served_")} == set(
        CHECKS
    )


# ------------------------------------------------------------------ where the endpoint is


def test_endpoint_url_local_is_loopback_on_the_catalog_port() -> None:
    local = active().catalog.serving.mnist.local.model_copy(update={"port": 18099})
    assert endpoint_url(served(deploy="local", local=local), None) == "http://127.0.0.1:18099"
    # `url` is for kserve: a local deploy is where this machine runs it
    cfg = served(deploy="local", local=local, url="http://elsewhere:1")
    assert endpoint_url(cfg, None) == "http://127.0.0.1:18099"


def test_endpoint_url_kserve_with_url() -> None:
    cfg = served(deploy="kserve", url="http://mnist.mlops.example.com/")
    assert endpoint_url(cfg, None) == "http://mnist.mlops.example.com"


def test_endpoint_url_kserve_without_url_or_cluster_fails() -> None:
    cfg = served(deploy="kserve", url=None, namespace="prod", isvc_name="digits")
    with pytest.raises(ProbeFailed) as err:
        endpoint_url(cfg, None)
    assert str(err.value) == "InferenceService prod/digits has no URL (not found)"
    assert "serving.mnist.url" in err.value.hint and "materialize model_mnist_served" in (
        err.value.hint
    )


def test_local_server_state_dir_default_and_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    local = active().catalog.serving.mnist.local.model_copy(
        update={"state_dir": None, "port": 18099, "prometheus_sd_file": None}
    )
    srv = local_server(served(local=local, model_name="digits"))
    assert srv.dir == tmp_path / "home/.local/state/mlops-assets/serving/port-18099"
    assert (srv.port, srv.name, srv.sd_file) == (18099, "digits", None)
    assert srv.log_path == srv.dir / "server.log"
    assert not (tmp_path / "home").exists()  # naming it creates nothing

    set_dir = local.model_copy(
        update={"state_dir": str(tmp_path / "state"), "prometheus_sd_file": "/t/kserve.json"}
    )
    srv = local_server(served(local=set_dir))
    assert srv.dir == tmp_path / "state/port-18099"
    assert srv.sd_file == Path("/t/kserve-18099.json")
