"""Unit tests of core.probes.network: routes judged from where the traffic starts (the HPC
side through a fake or a real local runner, the orchestrator with the HTTP client), each
verdict naming its direction."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.probes import network as nr
from mlops_assets.core.transport.hostexec import CommandResult


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(profile="sandbox").catalog


class FakeRunner:
    where = "mlops@login:22"

    def __init__(self, stdout: str, returncode: int = 0) -> None:
        self.stdout = stdout
        self.returncode = returncode
        self.argv: list[str] = []

    def run(self, argv: Any, *, timeout_s: float | None = None, env: Any = None) -> CommandResult:
        self.argv = list(argv)
        return CommandResult(tuple(argv), self.returncode, self.stdout, "", 0.01)

    def close(self) -> None:
        pass


def test_hpc_reaches_service_says_direction(catalog: Catalog) -> None:
    ok = nr.hpc_reaches_service(FakeRunner("200 0.010 1000"), catalog, "mlflow")
    assert ok.passed and ok.measured == 200
    cut = nr.hpc_reaches_service(FakeRunner("000 3.001 0", returncode=28), catalog, "minio")
    assert not cut.passed and cut.measured == "no answer"
    assert cut.detail.startswith("HPC→cloud minio") and "HPC→cloud" in cut.hint


def test_hub_head_from_hpc(catalog: Catalog) -> None:
    runner = FakeRunner("200 0.002 0")
    out = nr.hpc_reaches_hub(runner, catalog)
    assert out.passed and "-I" in runner.argv and catalog.network.hub_url in runner.argv
    down = nr.hpc_reaches_hub(FakeRunner("503 0.002 0"), catalog)
    assert not down.passed and down.measured == 503


def test_bandwidth_outcome_thresholds() -> None:
    measured = (42.0, 16 * 1024 * 1024, 3.2)
    assert nr.bandwidth_outcome(measured, 10, "h").passed
    warn = nr.bandwidth_outcome(measured, 100, "h")
    assert not warn.passed and warn.unit == "Mbps" and warn.extra["probe_bytes"] == 16 * 1024 * 1024


def test_cloud_reaches_hpc_names_direction(catalog: Catalog) -> None:
    login = catalog.hpc.access.login.model_copy(update={"host": "127.0.0.1", "port": _free_port()})
    hpc = catalog.hpc.model_copy(
        update={"access": catalog.hpc.access.model_copy(update={"login": login})}
    )
    out = nr.cloud_reaches_hpc(catalog.model_copy(update={"hpc": hpc}))
    assert not out.passed and out.detail.startswith("cloud→HPC") and "cloud→HPC" in out.hint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Ok(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_internet_targets_judged_alike_from_both_sides(catalog: Catalog) -> None:
    """A loopback server that answers and a closed port: each side counts 1 of 2 and names
    the silent target; real curl on the HPC side (LocalRunner), the HTTP client on the other."""
    from mlops_assets.core.transport.hostexec import LocalRunner

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        targets = {
            "up": f"http://127.0.0.1:{server.server_address[1]}/",
            "down": f"http://127.0.0.1:{_free_port()}/",
        }
        net = catalog.network.model_copy(update={"internet_targets": targets, "probe_timeout_s": 3})
        cat = catalog.model_copy(update={"network": net})
        for out, side in (
            (nr.hpc_reaches_internet(LocalRunner(), cat), "the HPC side"),
            (nr.cloud_reaches_internet(cat), "the orchestrator"),
        ):
            assert not out.passed and (out.measured, out.threshold) == (1, 2)
            assert out.unit == f"internet targets answering from {side}"
            assert out.detail == f"no answer: down ({targets['down']})"
    finally:
        server.shutdown()
        server.server_close()


def test_profile_drops_internet_target_with_null(catalog: Catalog) -> None:
    assert "container_registry" not in catalog.network.internet_targets
    assert (
        "container_registry" in load_catalog(profile="production").catalog.network.internet_targets
    )
