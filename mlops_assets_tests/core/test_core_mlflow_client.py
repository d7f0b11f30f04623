"""The MLflow artifact round trip through MLflow's own client, on MLflow's real SQLite store
and local artifact root (no server): the probe experiment is created or restored, the bytes
come back identical, and the probe run is left deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.core.probes import cloud


def test_round_trip_on_a_real_store_restores_the_experiment_and_deletes_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root (./mlruns) lands here
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    catalog = load_catalog(None, "sandbox").catalog
    name = catalog.cloud.services.mlflow.probe_experiment
    first = cloud.mlflow_artifact_round_trip(uri, catalog)  # type: ignore[arg-type]
    assert first.passed and first.measured == "identical", first
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(name)
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], run_view_type=3)  # ViewType.ALL
    assert runs and all(r.info.lifecycle_stage == "deleted" for r in runs)
    client.delete_experiment(exp.experiment_id)
    again = cloud.mlflow_artifact_round_trip(uri, catalog)  # type: ignore[arg-type]
    assert again.passed and client.get_experiment(exp.experiment_id).lifecycle_stage == "active"
    assert again.extra["probe_bytes"] == first.extra["probe_bytes"] > 0
