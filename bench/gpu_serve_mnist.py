"""MNIST served by KServe's own Python model server on a real GPU (issue 19 item 5), against
the same server on the CPU of the same machine, side by side in one run.

Trains the MLOPS-1.1 SimpleCNN with the training payload (mnist_train.py), starts the serving
payload (serve_mnist.py) once with ``--device cuda`` and once with ``--device cpu``, and for
each: time to ready, predictions on the held-out test images (v2 infer, batches of 100),
then fixed loads through core/serving's runner (p50/p95 over the successful requests,
throughput = completed / the load's whole wall time), the server's own request counter from
``/metrics``, and the GPU's utilization sampled by nvidia-smi during the load.

Runs on the device machine (bench/gpu_serve_mnist.sh); writes one JSON document to stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops_assets.core import serving  # noqa: E402
from mlops_assets.core.transport.http import request  # noqa: E402

LOADS = [  # (rows per request, requests, concurrency)
    (1, 400, 1),
    (1, 800, 8),
    (64, 200, 4),
]


def ready(url: str, name: str, deadline: float, proc: subprocess.Popen[Any]) -> float | None:
    t0 = time.monotonic()
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + serving.ready_path(name), timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.1)
    return None


def gpu_sampler(stop: threading.Event, out: list[int]) -> None:
    while shutil.which("nvidia-smi") and not stop.is_set():
        res = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=False,
        )
        if res.returncode == 0 and res.stdout.strip():
            out.append(int(res.stdout.split()[0]))
        stop.wait(0.2)


def held_out(payloads: Path, dataset: Path) -> tuple[list[list[float]], list[int]]:
    sys.path.insert(0, str(payloads))
    from mnist_train import read_idx

    raw = dataset / "MNIST" / "raw"
    shape, pixels = read_idx(str(raw / "t10k-images-idx3-ubyte"))  # or its .gz
    _, labels = read_idx(str(raw / "t10k-labels-idx1-ubyte"))
    n, size = shape[0], shape[1] * shape[2]
    rows = [[b / 255.0 for b in pixels[i * size : (i + 1) * size]] for i in range(n)]
    return rows, list(labels)


def one_device(
    device: str, payloads: Path, model_dir: Path, rows: list[list[float]], labels: list[int]
) -> dict[str, Any]:
    port = 18080 if device == "cuda" else 18081
    name = "mnist"
    url = f"http://127.0.0.1:{port}"
    log = open(f"/tmp/serve_{device}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            str(payloads / "serve_mnist.py"),
            str(model_dir),
            "--model_name",
            name,
            "--http_port",
            str(port),
            "--device",
            device,
            "--threads",
            "4",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    out: dict[str, Any] = {"device": device}
    try:
        out["ready_s"] = ready(url, name, time.monotonic() + 120, proc)
        if out["ready_s"] is None:
            out["error"] = Path(f"/tmp/serve_{device}.log").read_text()[-2000:]
            return out
        predicted: list[int] = []
        for i in range(0, len(rows), 100):
            body = serving.encode(serving.mnist_request(rows[i : i + 100]))
            ans = request(
                url + serving.infer_path(name),
                method="POST",
                body=body,
                timeout_s=30,
                headers={"Content-Type": "application/json"},
            )
            answer = serving.parse_answer(ans.body, model_name=name)
            predicted += serving.predicted_classes(answer, len(rows[i : i + 100]))
        out["held_out_accuracy"] = round(serving.accuracy(predicted, labels), 4)
        out["held_out_samples"] = len(labels)
        loads = []
        for batch, n, conc in LOADS:
            body = serving.encode(serving.mnist_request(rows[:batch]))
            send = serving.http_sender(
                request, url + serving.infer_path(name), body, model_name=name
            )
            stop, util = threading.Event(), list[int]()
            sampler = threading.Thread(target=gpu_sampler, args=(stop, util), daemon=True)
            sampler.start()
            run = serving.run_load(send, requests=n, concurrency=conc)
            stop.set()
            sampler.join()
            stats: dict[str, Any] = dict(run.stats().as_metadata())
            stats["rows_per_request"] = batch
            stats["gpu_util_pct_max"] = max(util) if util else None
            stats["gpu_util_pct_mean"] = round(sum(util) / len(util), 1) if util else None
            stats["error_samples"] = list(run.error_samples)
            loads.append(stats)
        out["loads"] = loads
        metrics = request(url + "/metrics", timeout_s=10).text
        out["request_predict_seconds_count"] = serving.metric_value(
            metrics, "request_predict_seconds_count", {"model_name": name}
        )
        out["requests_sent"] = len(range(0, len(rows), 100)) + sum(n for _, n, _ in LOADS)
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main() -> int:
    payloads, dataset, model_dir = (Path(a) for a in sys.argv[1:4])
    rows, labels = held_out(payloads, dataset)
    doc: dict[str, Any] = {
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "gpu": subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if shutil.which("nvidia-smi")
        else None,
        "python": sys.version.split()[0],
        "training": json.loads((model_dir / "metrics.json").read_text()),
        "servers": [
            one_device(d, payloads, model_dir, rows, labels)
            for d in os.environ.get("SERVE_DEVICES", "cuda,cpu").split(",")
        ],
    }
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
