"""core.probes.model_endpoint without KServe: the HTTP measurements against small stand-in
servers on loopback, and LocalServer's process handling (start, running, stop, the
Prometheus file_sd target) with a real detached process.

That process is a STAND-IN for KServe's model server: a few lines of stdlib Python written
into tmp_path as `serve_mnist.py` (LocalServer recognises its server by that script name),
answering the readiness route and /metrics as KServe 0.21 does. It serves no model. The real
payload, payloads/serve_mnist.py under kserve 0.21, is tested in payloads/test_serve_mnist.py
and, started by LocalServer itself, in test_serving_sandbox.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from mlops_assets.core import serving as sv
from mlops_assets.core.checks import ProbeFailed
from mlops_assets.core.probes import model_endpoint as ep
from mlops_assets.resources.clients import HttpServiceResource

#: (method, path with query, body) -> (status, content type, body)
Route = Callable[[str, str, bytes], tuple[int, str, bytes]]


@contextlib.contextmanager
def http_server(route: Route) -> Iterator[str]:
    """A real HTTP server on a free loopback port, answering through `route`; its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(size) if size else b""
            status, ctype, out = route(self.command, self.path, body)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _answer

        def log_message(self, *_args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gone(pid: int) -> bool:
    """No such process, or only a zombie left (whoever reaps it is not this test)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_for(cond: Callable[[], bool], timeout_s: float = 10) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


# ------------------------------------------------------------------ LocalServer: refusals


def test_start_refuses_a_python_that_is_not_executable(tmp_path: Path) -> None:
    srv = ep.LocalServer(tmp_path / "state", free_port(), "mnist")
    not_exec = tmp_path / "python"
    not_exec.write_text("#!/bin/sh\n")
    not_exec.chmod(0o644)
    for python in (str(not_exec), str(tmp_path / "no-such-python")):
        with pytest.raises(ProbeFailed) as err:
            srv.start(python, str(tmp_path / "serve_mnist.py"), str(tmp_path), "1:abc")
        assert python in str(err.value) and "not an executable" in str(err.value)
        assert "serving.mnist.local.python" in err.value.hint
    assert srv.running() is None and not srv.dir.exists()  # nothing started, nothing kept


def test_start_refuses_a_port_another_process_holds(tmp_path: Path) -> None:
    seen: list[str] = []

    def route(method: str, path: str, _body: bytes) -> tuple[int, str, bytes]:
        seen.append(f"{method} {path}")
        return 404, "text/plain", b"someone else"

    with http_server(route) as url:
        port = int(url.rsplit(":", 1)[1])
        sd = tmp_path / "targets" / "kserve.json"
        srv = ep.LocalServer(tmp_path / "state", port, "mnist", str(sd))
        with pytest.raises(ProbeFailed) as err:
            srv.start(sys.executable, str(tmp_path / "serve_mnist.py"), str(tmp_path), "1:abc")
    assert f"port {port} on 127.0.0.1 is taken by another process" in str(err.value)
    assert "serving.mnist.local.port" in err.value.hint
    assert seen == []  # found by binding, not by talking to it; nothing started
    assert srv.running() is None and not srv.dir.exists()
    assert not sd.parent.exists()  # Prometheus is told of no target


def test_running_is_none_without_a_live_model_server(tmp_path: Path) -> None:
    srv = ep.LocalServer(tmp_path, 18085, "mnist")
    assert srv.dir == tmp_path / "port-18085" and srv.url == "http://127.0.0.1:18085"
    assert srv.running() is None  # no state directory at all
    srv.dir.mkdir()
    state = srv.dir / "state.json"
    for garbage in ("not json", "[1, 2]", '{"version": "1"}', '{"pid": "x"}', '{"pid": null}'):
        state.write_text(garbage)
        assert srv.running() is None, garbage
    # a live process, but not a serve_mnist.py (a recycled pid): not ours to report or stop
    state.write_text(json.dumps({"pid": os.getpid(), "port": 18085, "version": "1:abc"}))
    assert srv.running() is None
    assert srv.stop() is False
    assert _alive_pid(os.getpid())  # the other process is not signalled
    assert not state.exists()  # only the stale state goes
    # a pid that has exited
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state.write_text(json.dumps({"pid": dead.pid, "version": "1:abc"}))
    assert srv.running() is None


def test_sd_file_is_one_per_port_beside_the_configured_one(tmp_path: Path) -> None:
    srv = ep.LocalServer(tmp_path, 8085, "mnist", "/etc/prometheus/targets/kserve.json")
    assert srv.sd_file == Path("/etc/prometheus/targets/kserve-8085.json")
    assert ep.LocalServer(tmp_path, 8085, "mnist").sd_file is None


# ------------------------------------------------------------------ LocalServer: a real cycle

STAND_IN = textwrap.dedent(
    '''
    """Stand-in for KServe's model server (tests only): readiness and /metrics, no model."""
    import argparse
    import os
    import subprocess
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("--model_name")
    p.add_argument("--http_port", type=int)
    p.add_argument("--bind")
    a = p.parse_args()
    # a child in the same process group, as KServe's workers are: stop() must end it too
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    with open(a.model_dir + "/child.pid", "w") as f:
        f.write(str(child.pid))
    with open(a.model_dir + "/server.pid", "w") as f:
        f.write(str(os.getpid()))

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == f"/v2/models/{a.model_name}/ready":
                status, body = 200, b"{}"
            elif self.path == "/metrics":
                status = 200
                body = (
                    "# TYPE request_predict_seconds histogram\\n"
                    f'request_predict_seconds_count{{model_name="{a.model_name}"}} 3\\n'
                    'request_predict_seconds_count{model_name="other"} 7\\n'
                ).encode()
            else:
                status, body = 404, b"not found"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    print("stand-in model server on", a.bind, a.http_port, flush=True)
    ThreadingHTTPServer((a.bind, a.http_port), H).serve_forever()
    '''
)


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[tuple[ep.LocalServer, Path, Path, Path]]:
    """LocalServer on a free port with the stand-in script. Whatever the test (or a broken
    stop()) did, the process group the stand-in leads is ended afterwards: it writes its pid,
    which is its group's id (LocalServer starts it in a session of its own)."""
    script = tmp_path / "bin" / "serve_mnist.py"
    script.parent.mkdir()
    script.write_text(STAND_IN)
    model_dir = tmp_path / "models" / "7"
    model_dir.mkdir(parents=True)
    sd = tmp_path / "targets" / "kserve.json"
    srv = ep.LocalServer(tmp_path / "state", free_port(), "mnist", str(sd))
    try:
        yield srv, script, model_dir, sd
    finally:
        with contextlib.suppress(OSError, ValueError):
            pgid = int((model_dir / "server.pid").read_text())
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pgid, 0)


def test_start_running_measure_stop_cycle(
    stand_in: tuple[ep.LocalServer, Path, Path, Path],
) -> None:
    srv, script, model_dir, sd = stand_in
    version = "7:" + "ab" * 32  # version:sha256, longer than a Prometheus label may be
    now = srv.start(sys.executable, str(script), str(model_dir), version)
    assert isinstance(now, ep.Running)
    assert (now.port, now.version) == (srv.port, version) and now.pid > 0
    assert abs(now.started - time.time()) < 60

    again = srv.running()
    assert again is not None and again.pid == now.pid and again.version == version
    assert os.getpgid(now.pid) == now.pid  # detached: its own session and process group

    per_port = sd.with_name(f"kserve-{srv.port}.json")
    assert srv.sd_file == per_port and not sd.exists()
    assert json.loads(per_port.read_text()) == [
        {"targets": [f"127.0.0.1:{srv.port}"], "labels": {"served": version[:63]}}
    ]
    assert per_port.stat().st_mode & 0o777 == 0o644  # Prometheus runs as another user

    ready = ep.wait_ready(
        srv.url, "mnist", time.monotonic() + 20, alive=lambda: srv.running() is not None
    )
    assert isinstance(ready, float) and ready >= 0, srv.log_tail()
    assert "stand-in model server on 127.0.0.1" in srv.log_tail()
    assert ep.predict_count(srv.url, "mnist") == 3.0
    assert ep.predict_count(srv.url, "absent") is None
    # another model's readiness is not this one's
    assert ep.wait_ready(srv.url, "other", time.monotonic() + 0.3, pause_s=0.05) is None

    assert wait_for(lambda: (model_dir / "child.pid").is_file())
    child = int((model_dir / "child.pid").read_text())
    assert not gone(child)

    assert srv.stop() is True
    assert gone(now.pid)
    assert wait_for(lambda: gone(child)), "stop() left the server's child running"
    assert not per_port.exists()  # Prometheus is told of no target, and no file is left
    assert srv.running() is None and not (srv.dir / "state.json").exists()
    assert ep.wait_ready(srv.url, "mnist", time.monotonic() + 0.3, pause_s=0.05) is None
    assert srv.stop() is False


def test_wait_ready_gives_up_when_the_server_is_not_alive(tmp_path: Path) -> None:
    t0 = time.monotonic()
    url = f"http://127.0.0.1:{free_port()}"
    assert ep.wait_ready(url, "mnist", t0 + 30, alive=lambda: False) is None
    assert ep.wait_ready(url, "mnist", t0 + 0.3, pause_s=0.05) is None
    assert time.monotonic() - t0 < 5


# ------------------------------------------------------------------ held-out predictions


def infer_route(requests: list[dict[str, Any]], *, status: int = 200, name: str = "mnist") -> Route:
    """A v2 infer endpoint whose predicted class is the first pixel of each row times 10."""

    def route(method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
        if status != 200:
            return status, "application/json", b'{"error": "model mnist is not ready"}'
        assert (method, path) == ("POST", sv.infer_path(name))
        doc = json.loads(body)
        requests.append(doc)
        inp = doc["inputs"][0]
        n, width = inp["shape"]
        classes = [round(inp["data"][i * width] * 10) for i in range(n)]
        answer = {
            "model_name": name,
            "id": doc["id"],
            "outputs": [
                {"name": "predicted_class", "shape": [n], "datatype": "INT64", "data": classes}
            ],
        }
        return 200, "application/json", json.dumps(answer).encode()

    return route


def row(predict: int) -> list[float]:
    return [predict / 10] + [0.0] * 783


def test_held_out_accuracy_and_confusions_in_batches() -> None:
    requests: list[dict[str, Any]] = []
    labels = [1, 2, 3, 4, 5]
    rows = [row(p) for p in (1, 2, 0, 4, 7)]
    with http_server(infer_route(requests)) as url:
        got = ep.held_out(url, "mnist", rows, labels, batch=2)
    assert got == ep.Predictions(accuracy=0.6, samples=5, confusions=((3, 0), (5, 7)))
    assert [r["inputs"][0]["shape"] for r in requests] == [[2, 784], [2, 784], [1, 784]]
    assert requests[0]["inputs"][0]["datatype"] == "FP32"


def test_held_out_keeps_the_first_ten_misses() -> None:
    labels = list(range(10)) * 2
    rows = [row((t + 1) % 10) for t in labels]  # every answer wrong
    with http_server(infer_route([])) as url:
        got = ep.held_out(url, "mnist", rows, labels)
    assert got.accuracy == 0.0 and got.samples == 20
    assert got.confusions == tuple((t, (t + 1) % 10) for t in range(10))


def test_held_out_non_200_names_the_status() -> None:
    with (
        http_server(infer_route([], status=503)) as url,
        pytest.raises(ProbeFailed) as err,
    ):
        ep.held_out(url, "mnist", [row(1)], [1])
    assert f"{url}/v2/models/mnist/infer answered HTTP 503" in str(err.value)
    assert "model mnist is not ready" in str(err.value)
    assert "model server's log" in err.value.hint


def test_held_out_answer_from_another_model_is_refused() -> None:
    def fashion(_method: str, _path: str, _body: bytes) -> tuple[int, str, bytes]:
        out = {"name": "predicted_class", "shape": [1], "datatype": "INT64", "data": [1]}
        return (
            200,
            "application/json",
            json.dumps({"model_name": "fashion", "outputs": [out]}).encode(),
        )

    with (
        http_server(fashion) as url,
        pytest.raises(sv.ServingError, match="from model 'fashion', asked 'mnist'"),
    ):
        ep.held_out(url, "mnist", [row(1)], [1])


# ------------------------------------------------------------------ Prometheus' view


def prometheus_route(
    queries: list[str], *, result: list[dict[str, Any]], status: int = 200
) -> Route:
    """Prometheus' instant query API (GET /api/v1/query?query=...)."""

    def route(method: str, path: str, _body: bytes) -> tuple[int, str, bytes]:
        parts = urlsplit(path)
        assert (method, parts.path) == ("GET", "/api/v1/query")
        queries.append(parse_qs(parts.query)["query"][0])
        if status != 200:
            return status, "application/json", b'{"status":"error","error":"boom"}'
        doc = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return 200, "application/json", json.dumps(doc).encode()

    return route


def test_prometheus_count_value_query_and_no_series() -> None:
    queries: list[str] = []
    series = [{"metric": {}, "value": [1700000000.123, "42"]}]
    with http_server(prometheus_route(queries, result=series)) as url:
        assert ep.prometheus_count(HttpServiceResource(url=url), "mnist", "kserve") == 42.0
    assert queries == ['sum(request_predict_seconds_count{model_name="mnist",job="kserve"})']
    with http_server(prometheus_route(queries, result=[])) as url:
        assert ep.prometheus_count(HttpServiceResource(url=url + "/"), "mnist", "kserve") is None
    assert queries[-1].endswith('{model_name="mnist",job="kserve"})')


def test_prometheus_count_error_status_fails() -> None:
    with (
        http_server(prometheus_route([], result=[], status=500)) as url,
        pytest.raises(ProbeFailed) as err,
    ):
        ep.prometheus_count(HttpServiceResource(url=url), "mnist", "sandbox-kserve")
    assert "Prometheus answered HTTP 500" in str(err.value)
    assert 'job="sandbox-kserve"' in str(err.value)
    assert "cloud.services.prometheus.url" in err.value.hint


def _alive_pid(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
