"""Secrets resolve where the run executes, not where the code location loads: a deployment
that gives the S3 keys and the Grafana token only to run pods (the K8sRunLauncher's
env_secrets) still uses them."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.platform import build_resources
from mlops_assets.resources.clients import HttpServiceResource, S3Resource

SECRETS = {
    "MLOPS_S3_ACCESS_KEY_ID": "run-worker-access-key",
    "MLOPS_S3_SECRET_ACCESS_KEY": "run-worker-secret-key",
    "MLOPS_GRAFANA_TOKEN": "glsa_run_worker_token",
}


@pytest.fixture
def grafana() -> Iterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"database": "ok"}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


@dg.asset
def _uses_secrets(s3: S3Resource, grafana: HttpServiceResource) -> dg.MaterializeResult:
    """Typed resource parameters, as the package's assets take them."""
    answer = grafana.get("/api/health")
    return dg.MaterializeResult(metadata={"access_key": s3.access_key_id, "status": answer.status})


def _materialize(resources: dict) -> dict:
    result = dg.materialize([_uses_secrets], resources=resources)
    return {
        k: v.value
        for k, v in result.asset_materializations_for_node("_uses_secrets")[0].metadata.items()
    }


def test_secrets_absent_at_load_resolve_in_the_run(
    grafana, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = grafana
    monkeypatch.setenv("MLOPS_GRAFANA_URL", url)
    for name in SECRETS:  # the code-location process has none of them
        monkeypatch.delenv(name, raising=False)
    catalog = load_catalog(None, "production").catalog
    resources = build_resources(catalog)
    for name, value in SECRETS.items():  # the run worker has them
        monkeypatch.setenv(name, value)
    meta = _materialize({"s3": resources["s3"], "grafana": resources["grafana"]})
    assert meta == {"access_key": "run-worker-access-key", "status": 200}
    assert seen == ["Bearer glsa_run_worker_token"]


def test_optional_token_absent_in_the_run_sends_none(
    grafana, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = grafana
    monkeypatch.setenv("MLOPS_GRAFANA_URL", url)
    monkeypatch.delenv("MLOPS_GRAFANA_TOKEN", raising=False)
    for name in ("MLOPS_S3_ACCESS_KEY_ID", "MLOPS_S3_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, SECRETS[name])
    resources = build_resources(load_catalog(None, "production").catalog)
    assert _materialize({"s3": resources["s3"], "grafana": resources["grafana"]})["status"] == 200
    assert seen == [None]
    assert (
        "glsa" not in repr(resources["grafana"]) and os.environ.get("MLOPS_GRAFANA_TOKEN") is None
    )
