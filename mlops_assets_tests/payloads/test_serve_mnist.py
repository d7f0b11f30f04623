"""payloads/serve_mnist.py under KServe's own model server, for real: a SimpleCNN saved by the
training code path (mnist_train._write), served on a free loopback port, asked over the v2
protocol at a fixed concurrency, and counted in the server's Prometheus metrics.

The server runs in the KServe env (kserve 0.21 + Debian's torch 1.13), not in the
orchestrator's .venv; where that env is missing the server tests skip and say how to make it.
The missing-artifact test needs no torch and always runs."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlops_assets.core import serving as sv
from mlops_assets.core.transport import http

REPO = Path(__file__).resolve().parents[2]
PAYLOADS = REPO / "mlops_assets" / "payloads"
SERVE = PAYLOADS / "serve_mnist.py"
DEFAULT_PYTHON = "/opt/mlops-assets/kserve/bin/python"
REQUIREMENTS = "deploy/kserve/requirements.txt"
HOW_TO_MAKE = f"""no KServe env: set MLOPS_KSERVE_PYTHON to its python, or make {DEFAULT_PYTHON}:
  apt-get install -y python3-venv python3-torch
  /usr/bin/python3 -m venv --system-site-packages /opt/mlops-assets/kserve
  /opt/mlops-assets/kserve/bin/python -m pip install --require-hashes --no-deps \\
      -r {REQUIREMENTS}
(kserve==0.21.0 with numpy==1.26.4 and their closure, hashed; torch is Debian's 1.13)"""
MODEL = "mnist"
READY_WITHIN_S = 120  # generous: 2 shared cores; a quiet machine is ready in about 3 s


def kserve_python() -> str | None:
    """The KServe env's interpreter when it imports kserve and torch, else None."""
    py = os.environ.get("MLOPS_KSERVE_PYTHON", DEFAULT_PYTHON)
    if not os.access(py, os.X_OK):
        return None
    probe = subprocess.run(
        [py, "-c", "import kserve, torch"], capture_output=True, timeout=120, check=False
    )
    return py if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def py() -> str:
    found = kserve_python()
    if found is None:
        from mlops_assets_tests.sandbox_nodes import skip_or_fail

        skip_or_fail(HOW_TO_MAKE)  # CI: `sandbox up` (57-kserve.sh) makes it; missing = defect
    assert found is not None
    return found


# Saves a randomly initialised SimpleCNN the way the training payload saves its result, and
# prints what that network answers for the given rows (with the training normalization).
SAVE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, mnist_train
torch.manual_seed(0)
net = mnist_train.simple_cnn(torch).eval()
state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
mnist_train._write(sys.argv[2], state, {"epochs": 0}, torch)
rows = json.load(open(sys.argv[3]))
x = (torch.tensor(rows).reshape(-1, 1, 28, 28) - mnist_train.MEAN) / mnist_train.STD
with torch.no_grad():
    print(json.dumps(net(x).argmax(1).tolist()))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    base: str
    log: Path
    expected: list[int]
    rows: list[list[float]]
    ready_s: float


@pytest.fixture(scope="module")
def served(py: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serve")
    rnd = random.Random(0)
    rows = [[rnd.random() for _ in range(sv.MNIST_ROW)] for _ in range(4)]
    (tmp / "rows.json").write_text(json.dumps(rows))
    out_dir = tmp / "models" / "mnist" / "job-test"
    saved = subprocess.run(
        [py, "-c", SAVE, str(PAYLOADS), str(out_dir), str(tmp / "rows.json")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert saved.returncode == 0, saved.stderr[-2000:]
    expected = json.loads(saved.stdout.strip().splitlines()[-1])
    port, log = free_port(), tmp / "server.log"
    argv = [py, str(SERVE), str(out_dir), "--model_name", MODEL, "--http_port", str(port)]
    start = time.monotonic()
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if http.request(base + sv.ready_path(MODEL), timeout_s=2).status == 200:
                    break
            except http.HttpUnreachable:
                pass
            if time.monotonic() - start > READY_WITHIN_S:
                pytest.fail(f"not ready in {READY_WITHIN_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Served(base, log, expected, rows, time.monotonic() - start)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_serves_v2_and_counts_requests(served: Served) -> None:
    url = served.base + sv.infer_path(MODEL)
    send = sv.http_sender(
        http.request, url, sv.encode(sv.mnist_request(served.rows)), model_name=MODEL, timeout_s=30
    )
    answer = send(0)
    assert sv.predicted_classes(answer, 4) == served.expected  # the saved weights, normalized
    probs = answer.outputs["probabilities"]
    assert probs.shape == (4, 10) and all(abs(sum(r) - 1) < 1e-4 for r in probs.rows())

    # the [N,1,28,28] layout answers the same
    doc = sv.mnist_request(served.rows[:1])
    doc["inputs"][0]["shape"] = [1, 1, 28, 28]
    one = sv.http_sender(http.request, url, sv.encode(doc), model_name=MODEL)(0)
    assert sv.predicted_classes(one, 1) == served.expected[:1]

    run = sv.run_load(send, requests=24, concurrency=4)
    stats = run.stats()
    assert run.errors == 0, run.error_samples
    assert stats.completed == 24 and stats.p95_ms is not None
    assert stats.throughput_rps == pytest.approx(24 / run.wall_s)

    metrics = http.request(served.base + "/metrics", timeout_s=10)
    assert metrics.status == 200
    counted = sv.metric_value(metrics.text, sv.KSERVE_PREDICT_COUNT, {"model_name": MODEL})
    assert counted == 1 + 1 + 24, metrics.text[-2000:]
    print(f"ready in {served.ready_s:.1f} s; {stats.as_metadata()}")


def test_bad_input_is_a_400_that_says_why(served: Served) -> None:
    url = served.base + sv.infer_path(MODEL)
    body = {"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP32", "data": [0] * 5}]}
    got = http.request(
        url,
        method="POST",
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert got.status == 400 and "not [N,1,28,28] or [N,784]" in got.json()["error"]
    with pytest.raises(sv.ServingError, match="model server said"):
        sv.parse_answer(got.body, model_name=MODEL)


def test_binds_loopback_only(served: Served) -> None:
    """kserve 0.21 hard-codes 0.0.0.0; the payload narrows it to --bind (127.0.0.1)."""
    port = int(served.base.rsplit(":", 1)[1])
    listening = [
        ln.split()[1]
        for ln in Path("/proc/net/tcp").read_text().splitlines()[1:]
        if ln.split()[3] == "0A"  # LISTEN
    ]
    assert f"0100007F:{port:04X}" in listening
    assert f"00000000:{port:04X}" not in listening


def test_missing_artifact_fails_fast_naming_it(tmp_path: Path) -> None:
    """No torch or kserve needed: the artifact is checked before either is imported."""
    start = time.monotonic()
    res = subprocess.run(
        [sys.executable, str(SERVE), str(tmp_path / "job-1")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2 and time.monotonic() - start < 30
    assert f"{tmp_path / 'job-1'} not found" in res.stderr
    res = subprocess.run(
        [sys.executable, str(SERVE), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2 and f"{tmp_path} holds no model.pt" in res.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("garbage", "not a readable torch state_dict"),
        ("wrong_keys", "not a SimpleCNN state_dict"),
        ("tensor", "not a state_dict"),
    ],
)
def test_malformed_artifact_is_named(py: str, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "model.pt"
    if content == "garbage":
        path.write_bytes(b"not a torch file")
    else:
        obj = "{'w': torch.zeros(2)}" if content == "wrong_keys" else "torch.zeros(2)"
        subprocess.run(
            [py, "-c", f"import torch; torch.save({obj}, {str(path)!r})"], check=True, timeout=120
        )
    res = subprocess.run(
        [py, str(SERVE), str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert str(path) in res.stderr and message in res.stderr


def test_cuda_asked_where_there_is_none_is_a_clear_error(py: str, tmp_path: Path) -> None:
    """`--device cuda` on a machine without a CUDA device (the sandbox, CI) fails at once and
    says to serve on the CPU; on a GPU machine bench/gpu_serve_mnist.py serves with it."""
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([[0.0] * sv.MNIST_ROW]))
    out_dir = tmp_path / "job-cuda"
    subprocess.run(
        [py, "-c", SAVE, str(PAYLOADS), str(out_dir), str(rows)], check=True, timeout=300
    )
    res = subprocess.run(
        [py, str(SERVE), str(out_dir), "--device", "cuda"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 3, res.stderr[-2000:]  # EXIT_NO_DEVICE, not a bad artifact
    assert "--device cuda: no CUDA device here (use --device cpu)" in res.stderr
