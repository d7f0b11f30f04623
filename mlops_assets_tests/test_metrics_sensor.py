"""The metrics sensor against a real HTTP server standing in for the Pushgateway: a tick that
pushed returns its cursor (not a SkipReason), an idle tick skips and says why, a refused
push fails the tick and keeps the cursor."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from mlops_assets.checking import to_check_result
from mlops_assets.core.checks import Evaluation, Severity
from mlops_assets.core.metrics import PushFailed
from mlops_assets.defs.observability.definitions import SENSOR_NAME, metrics_exporter
from mlops_assets.resources.clients import HttpServiceResource


class _Gateway(BaseHTTPRequestHandler):
    status = 200
    bodies: list[tuple[str, str]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).bodies.append((self.path, body))
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"refused" if type(self).status >= 300 else b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[type[_Gateway]]:
    handler = type("Gateway", (_Gateway,), {"bodies": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


EV = Evaluation(
    "gpu_nodes",
    "gpus_usable",
    False,
    Severity.WARN,
    3,
    4,
    "GPUs",
    "resume gpu04",
    0.5,
    nodes=("gpu04",),
)


@dg.multi_asset_check(specs=[dg.AssetCheckSpec(EV.check, asset=EV.asset)])
def _checks():
    yield to_check_result(EV)


DEFS = dg.Definitions(
    assets=[dg.AssetSpec(EV.asset, group_name="hpc")],
    asset_checks=[_checks],
    sensors=[metrics_exporter],
)


def _tick(instance: dg.DagsterInstance, url: str, cursor: str | None = None):
    ctx = dg.build_sensor_context(
        instance=instance,
        definitions=DEFS,
        sensor_name=SENSOR_NAME,
        cursor=cursor,
        resources={"pushgateway": HttpServiceResource(url=url, timeout_s=5)},
    )
    return metrics_exporter(ctx)


def _run_checks(instance: dg.DagsterInstance) -> None:
    job = dg.Definitions.merge(
        DEFS,
        dg.Definitions(
            jobs=[dg.define_asset_job("j", selection=dg.AssetSelection.all_asset_checks())]
        ),
    ).resolve_job_def("j")
    assert job.execute_in_process(instance=instance).success


def test_a_tick_that_pushed_is_not_a_skip(gateway) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        _run_checks(instance)
        first = _tick(instance, gateway.url)
        assert (
            isinstance(first, dg.SensorResult)
            and first.skip_reason is None
            and not first.run_requests
        )
        assert "gpu_nodes:gpus_usable" in json.loads(first.cursor)["checks"]
        pushed = "\n".join(body for _, body in gateway.bodies)
        assert 'mlops_check_passed{asset="gpu_nodes",check="gpus_usable"' in pushed
        assert 'node="gpu04"' in pushed and "mlops_check_measured{" in pushed
        again = _tick(instance, gateway.url, cursor=first.cursor)
        assert (
            isinstance(again, dg.SkipReason)
            and again.skip_message == "no new check results or materializations"
        )


def test_a_refused_push_fails_the_tick(gateway) -> None:
    gateway.status = 500
    with dg.DagsterInstance.ephemeral() as instance:
        _run_checks(instance)
        with pytest.raises(PushFailed, match="answered 500"):
            _tick(instance, gateway.url)
