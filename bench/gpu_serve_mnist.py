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

import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops_assets.core import serving  # noqa: E402
from mlops_assets.core.probes import model_endpoint as ep  # noqa: E402

LOADS = [  # (rows per request, requests, concurrency)
    (1, 400, 1),
    (1, 800, 8),
    (64, 200, 4),
]


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


def held_out(dataset: Path) -> tuple[list[list[float]], list[int]]:
    """The staged MNIST test set as rows and labels, parsed as the serving check parses it."""
    raw = dataset / "MNIST" / "raw"

    def read(name: str) -> bytes:
        plain = raw / name
        return (
            plain.read_bytes()
            if plain.exists()
            else gzip.decompress((raw / f"{name}.gz").read_bytes())
        )

    return serving.mnist_rows(
        read("t10k-images-idx3-ubyte"), read("t10k-labels-idx1-ubyte"), limit=10**9
    )


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
        out["ready_s"] = ep.wait_ready(
            url, name, time.monotonic() + 120, alive=lambda: proc.poll() is None
        )
        if out["ready_s"] is None:
            out["error"] = Path(f"/tmp/serve_{device}.log").read_text()[-2000:]
            return out
        got = ep.held_out(url, name, rows, labels)
        out["held_out_accuracy"] = round(got.accuracy, 4)
        out["held_out_samples"] = got.samples
        loads = []
        for batch, n, conc in LOADS:
            stop, util = threading.Event(), list[int]()
            sampler = threading.Thread(target=gpu_sampler, args=(stop, util), daemon=True)
            sampler.start()
            run = ep.load(url, name, rows, requests=n, concurrency=conc, rows_per_request=batch)
            stop.set()
            sampler.join()
            stats: dict[str, Any] = dict(run.stats().as_metadata())
            stats["rows_per_request"] = batch
            stats["gpu_util_pct_max"] = max(util) if util else None
            stats["gpu_util_pct_mean"] = round(sum(util) / len(util), 1) if util else None
            stats["error_samples"] = list(run.error_samples)
            loads.append(stats)
        out["loads"] = loads
        out["request_predict_seconds_count"] = ep.predict_count(url, name)
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
    rows, labels = held_out(dataset)
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
