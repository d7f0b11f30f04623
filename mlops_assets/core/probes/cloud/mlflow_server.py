"""Probes of the MLflow server: /health, the backend store, the model registry, and an
artifact round trip through the artifact store. No Dagster imports."""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.parse
from typing import Any

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import Outcome, ProbeFailed
from mlops_assets.core.probes.cloud.clients import Http, HttpCall, _answer, _status_200

# MLflow's /health, experiments/search and registered-models/search are read as plain HTTP on
# purpose: their measurement is the endpoint's status and answer (a 503 from the registry, a
# non-JSON page from a proxy), which MlflowClient would turn into an exception text. What uses
# MLflow (the artifact round trip, core.probes.model_registry) goes through MlflowClient.


def mlflow_health(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(http, "/health", "start the MLflow server and check its ingress")
    return _status_200(
        ans,
        "HTTP status",
        "MLflow /health fails: check the server's pod/log",
        extra={"latency_s": round(ans.elapsed_s, 3)},
    )


def mlflow_experiments(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(
        http, "/api/2.0/mlflow/experiments/search?max_results=1", "MLflow server unreachable"
    )
    ok = ans.status == 200
    detail = ""
    if ok:
        try:
            ans.json()
        except (ValueError, json.JSONDecodeError):
            ok, detail = False, "answer is not JSON"
    else:
        detail = ans.text[:200]
    return Outcome(
        ok,
        ans.status,
        200,
        "HTTP status of experiments/search",
        "the backend store does not answer: check MLflow's database connection",
        detail=detail,
    )


def mlflow_registry(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(
        http, "/api/2.0/mlflow/registered-models/search?max_results=1", "MLflow server unreachable"
    )
    return _status_200(
        ans,
        "HTTP status of registered-models/search",
        "the model registry does not answer: it needs a database-backed store",
        detail="" if ans.status == 200 else ans.text[:200],
    )


_MLFLOW_HINT = (
    "MLflow's artifact store failed: check --artifacts-destination, the server's S3 "
    "credentials and the bucket"
)


def _probe_experiment_id(client: Any, name: str) -> str:
    """The dedicated probe experiment: found, restored if deleted, or created."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return str(client.create_experiment(name))
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return str(exp.experiment_id)


PROXY_SCHEME = "mlflow-artifacts:"
ARTIFACT_API = "/api/2.0/mlflow-artifacts/artifacts/"


def _proxy_path(artifact_uri: str) -> str:
    """mlflow-artifacts:/1/<run>/artifacts or mlflow-artifacts://host/1/<run>/artifacts ->
    1/<run>/artifacts, the path the artifact proxy serves."""
    rest = artifact_uri[len(PROXY_SCHEME) :]
    if rest.startswith("//"):
        rest = rest[2:].partition("/")[2]
    return rest.lstrip("/")


def mlflow_artifact_round_trip(http: HttpCall, catalog: Catalog) -> Outcome:
    """Log a small probe artifact to the probe experiment, read it back byte-identical, then
    delete artifact and run: proves the artifact store behind MLflow, which /health and
    experiments/search never touch. Through MLflow's own client (core.probes.model_registry's
    bounded `mlflow_client`), as a training job logs: via the server's artifact proxy
    (`mlflow-artifacts:`) or straight to the store the server names (`s3://...`)."""
    import tempfile

    from mlflow.exceptions import MlflowException

    from mlops_assets.core.probes.model_registry import mlflow_client

    name = catalog.cloud.services.mlflow.probe_experiment
    payload = b"mlops-assets artifact probe " + os.urandom(16).hex().encode()
    start = time.monotonic()
    with mlflow_client(http) as client:
        exp_id = _probe_experiment_id(client, name)
        run = client.create_run(exp_id, run_name="mlops-assets-probe")
        run_id, artifact_uri = run.info.run_id, str(run.info.artifact_uri or "")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                src = os.path.join(tmp, "probe.bin")
                with open(src, "wb") as fh:
                    fh.write(payload)
                try:
                    client.log_artifact(run_id, src)
                    back = client.download_artifacts(run_id, "probe.bin", os.path.join(tmp, "b"))
                except MlflowException as exc:
                    where = artifact_uri or "the server"
                    raise ProbeFailed(
                        f"artifact round trip via {where}: {exc.message[:300]}", _MLFLOW_HINT
                    ) from None
                with open(back, "rb") as fh:
                    got = fh.read()
        finally:
            _cleanup(http, client, run_id, artifact_uri)
    elapsed = round(time.monotonic() - start, 3)
    same = got == payload
    return Outcome(
        same,
        "identical" if same else f"different ({len(got)} of {len(payload)} bytes)",
        "identical",
        "bytes read back",
        "the artifact store returned other bytes than logged: check the bucket behind "
        "--artifacts-destination",
        detail=f"experiment {name} ({exp_id}), run {run_id} deleted, {elapsed}s",
        extra={"round_trip_s": elapsed, "probe_bytes": len(payload)},
    )


def _cleanup(http: HttpCall, client: Any, run_id: str, artifact_uri: str) -> None:
    """Best effort: the probe leaves no artifact and only a deleted run behind. The artifact
    is deleted through the proxy's REST call, written by hand: MlflowClient has no public call
    that deletes one artifact (a store URI such as s3:// keeps it, under a deleted run)."""
    with contextlib.suppress(Exception):
        if artifact_uri.startswith(PROXY_SCHEME):
            http.call(
                "DELETE",
                ARTIFACT_API + urllib.parse.quote(f"{_proxy_path(artifact_uri)}/probe.bin"),
            )
    with contextlib.suppress(Exception):
        client.delete_run(run_id)
