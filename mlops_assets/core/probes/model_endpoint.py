"""A served model, measured over HTTP (v2 protocol), and a local KServe model server.

The measurements (readiness, held-out predictions, a fixed load, the server's own request
counter) are the same whether the endpoint is an InferenceService on Kubernetes or KServe's
Python model server started on this machine: `defs/serving` and `bench/gpu_serve_mnist.py`
share them.

`LocalServer` is the sandbox's stand-in for KServe's controller: there is no Kubernetes here
(the API is a stand-in, deploy/sandbox/standins/kube_api.py), so the model server that a
predictor pod would run, payloads/serve_mnist.py under kserve 0.21, runs as a detached
process on loopback. Its pid, port and the version it serves are kept in a state directory,
so a re-materialization with the same version reuses it and a new version replaces it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_assets.core import serving
from mlops_assets.core.checks import ProbeFailed
from mlops_assets.core.transport.http import HttpUnreachable, request

JSON = {"Content-Type": "application/json"}


def wait_ready(
    url: str,
    name: str,
    deadline: float,
    alive: Callable[[], bool] = lambda: True,
    pause_s: float = 0.1,
) -> float | None:
    """Seconds until GET /v2/models/<name>/ready answers 200, or None by `deadline` (or once
    `alive` says the server has exited)."""
    t0 = time.monotonic()
    while time.monotonic() < deadline and alive():
        try:
            if request(url + serving.ready_path(name), timeout_s=2).status == 200:
                return time.monotonic() - t0
        except HttpUnreachable:
            pass
        time.sleep(pause_s)
    return None


@dataclass(frozen=True)
class Predictions:
    accuracy: float
    samples: int
    confusions: tuple[tuple[int, int], ...]  # (label, predicted) of the first few misses


def held_out(
    url: str, name: str, rows: Sequence[Sequence[float]], labels: Sequence[int], batch: int = 100
) -> Predictions:
    """The endpoint's predictions on held-out samples, `batch` rows per request."""
    predicted: list[int] = []
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        answer = request(
            url + serving.infer_path(name),
            method="POST",
            body=serving.encode(serving.mnist_request(chunk)),
            timeout_s=30,
            headers=JSON,
        )
        if answer.status != 200:
            raise ProbeFailed(
                f"{url}{serving.infer_path(name)} answered HTTP {answer.status}: "
                f"{answer.text[:200]}",
                "see the model server's log: the model did not load or the input was refused",
            )
        parsed = serving.parse_answer(answer.body, model_name=name)
        predicted += serving.predicted_classes(parsed, len(chunk))
    misses = tuple((t, p) for t, p in zip(labels, predicted, strict=True) if t != p)[:10]
    return Predictions(serving.accuracy(predicted, labels), len(labels), misses)


def load(
    url: str,
    name: str,
    rows: Sequence[Sequence[float]],
    *,
    requests: int,
    concurrency: int,
    rows_per_request: int = 1,
) -> serving.LoadRun:
    """A fixed concurrent load of identical infer requests (`rows_per_request` rows each)."""
    body = serving.encode(serving.mnist_request(list(rows[:rows_per_request])))
    send = serving.http_sender(request, url + serving.infer_path(name), body, model_name=name)
    return serving.run_load(send, requests=requests, concurrency=concurrency)


def predict_count(url: str, name: str) -> float | None:
    """The server's own count of predict calls for `name` (its /metrics), None if absent."""
    text = request(url + "/metrics", timeout_s=10).text
    return serving.metric_value(text, serving.KSERVE_PREDICT_COUNT, {"model_name": name})


def prometheus_count(prometheus: Any, name: str, job: str) -> float | None:
    """What Prometheus holds of the same counter (instant query), None when no series."""
    from urllib.parse import quote

    query = f'sum({serving.KSERVE_PREDICT_COUNT}{{model_name="{name}",job="{job}"}})'
    answer = prometheus.get(f"/api/v1/query?query={quote(query)}")
    if answer.status != 200:
        raise ProbeFailed(
            f"Prometheus answered HTTP {answer.status} to {query}",
            "check cloud.services.prometheus.url",
        )
    result = json.loads(answer.body).get("data", {}).get("result") or []
    return float(result[0]["value"][1]) if result else None


# ------------------------------------------------------------------ local model server


@dataclass(frozen=True)
class Running:
    pid: int
    port: int
    version: str
    started: float


class LocalServer:
    """KServe's Python model server on this machine, one per port, detached from the run
    that starts it (the endpoint outlives the materialization, as a pod would)."""

    def __init__(
        self, state_dir: str | Path, port: int, name: str, sd_file: str | None = None
    ) -> None:
        self.dir = Path(state_dir) / f"port-{port}"
        self.port = port
        self.name = name
        # one target file per port, beside the configured one (Prometheus' glob reads all)
        self.sd_file = (
            Path(sd_file).with_name(f"{Path(sd_file).stem}-{port}.json") if sd_file else None
        )
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = self.dir / "server.log"
        self._state = self.dir / "state.json"

    def running(self) -> Running | None:
        """The server this state directory started, if its process still lives."""
        try:
            doc = json.loads(self._state.read_text())
            pid = int(doc["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not _is_model_server(pid):
            return None
        return Running(pid, self.port, str(doc.get("version", "")), float(doc.get("started", 0)))

    def stop(self, grace_s: float = 10) -> bool:
        """Stop the server this directory started (only that one); True if one was running.
        Its state and its Prometheus target go either way: a server that died on its own
        leaves no dead target behind."""
        now = self.running()
        try:
            if now is None:
                return False
            try:
                os.killpg(now.pid, signal.SIGTERM)
            except ProcessLookupError:
                return True
            end = time.monotonic() + grace_s
            while time.monotonic() < end and _alive(now.pid):
                time.sleep(0.1)
            if _alive(now.pid):
                os.killpg(now.pid, signal.SIGKILL)
            return True
        finally:
            self._state.unlink(missing_ok=True)
            self._announce([])

    def _announce(self, targets: list[dict[str, Any]]) -> None:
        """The Prometheus file_sd list, replaced whole (Prometheus re-reads it on change);
        no targets removes the file, so stopped servers leave nothing behind."""
        if self.sd_file is None:
            return
        try:
            if not targets:
                self.sd_file.unlink(missing_ok=True)
                return
            self.sd_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.sd_file.with_name(f".{self.sd_file.name}.tmp")
            tmp.write_text(json.dumps(targets))
            tmp.chmod(0o644)
            tmp.replace(self.sd_file)
        except OSError as exc:
            raise ProbeFailed(
                f"cannot write the Prometheus target file {self.sd_file}: {exc}",
                "make serving.mnist.local.prometheus_sd_file writable, or set it to null",
            ) from None

    def start(self, python: str, payload: str, model_dir: str, version: str) -> Running:
        """Start the server on `model_dir`, detached (own session), its output in `log_path`;
        `version` is what `running()` reports back (the caller's identity of the model).
        A port held by anything else fails here, naming it, before the server is started."""
        if not os.access(python, os.X_OK):
            raise ProbeFailed(
                f"the model server's python {python} is not an executable",
                "set serving.mnist.local.python to a python with kserve==0.21.0 (the sandbox "
                "builds /opt/mlops-assets/kserve: deploy/sandbox/services/57-kserve.sh)",
            )
        if not _bindable(self.port):
            raise ProbeFailed(
                f"port {self.port} on 127.0.0.1 is taken by another process (not a server "
                "this project started here)",
                "stop what holds it, or set serving.mnist.local.port to a free port",
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                [
                    python,
                    payload,
                    model_dir,
                    "--model_name",
                    self.name,
                    "--http_port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        now = Running(proc.pid, self.port, version, time.time())
        tmp = self._state.with_suffix(".tmp")
        tmp.write_text(json.dumps(now.__dict__))
        tmp.replace(self._state)
        self._announce(
            [{"targets": [f"127.0.0.1:{self.port}"], "labels": {"served": version[:63]}}]
        )
        return now

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _bindable(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now (as KServe's does, with
    SO_REUSEADDR): a port held by a silent process is caught, not only one that answers."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process is gone for every purpose here
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _is_model_server(pid: int) -> bool:
    """A live process whose command line runs serve_mnist.py (a recycled pid is not ours).
    Right after Popen returns the child may still be inside exec, where its cmdline reads
    empty (seen here 2 times in 8): read again for up to a second."""
    end = time.monotonic() + 1.0
    while _alive(pid):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        if cmd or time.monotonic() > end:
            return any(part.endswith(b"serve_mnist.py") for part in cmd.split(b"\0"))
        time.sleep(0.02)
    return False
