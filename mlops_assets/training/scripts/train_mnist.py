"""Validation task MLOPS-1.1: a small CNN on the staged MNIST, for users to start from.

    python3 scripts/training/train_mnist.py --config configs/training/mnist.json [--set key=value
    ...]

Relative paths in the config are taken from the current directory (the BeeGFS root in
train_mnist.sbatch). Reads torchvision's layout (`<dataset_dir>/MNIST/raw/*-ubyte`), so it
needs torch but not torchvision. Writes `model.pt` and `metrics.json` to
`<output_dir>/run-<SLURM_JOB_ID or time>/` through a temporary directory and a rename, and
prints the metrics as one JSON line. Exit 1 when the test accuracy is below `min_accuracy`.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any


def read_idx(path: Path) -> tuple[tuple[int, ...], bytes]:
    data = path.read_bytes()
    magic = struct.unpack(">I", data[:4])[0]
    dims = magic & 0xFF
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    return tuple(shape), data[4 + 4 * dims :]


def load(raw: Path, prefix: str, torch: Any) -> tuple[Any, Any]:
    shape, pixels = read_idx(raw / f"{prefix}-images-idx3-ubyte")
    _, labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte")
    x = (
        torch.frombuffer(bytearray(pixels), dtype=torch.uint8)
        .reshape(shape[0], 1, shape[1], shape[2])
        .float()
        / 255.0
    )
    y = torch.frombuffer(bytearray(labels), dtype=torch.uint8).long()
    return (x - 0.1307) / 0.3081, y


def model(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(9216, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def config(argv: list[str] | None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (JSON or text)",
    )
    args = ap.parse_args(argv)
    cfg: dict[str, Any] = json.loads(args.config.read_text())
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in cfg:
            ap.error(f"--set {key}: not a key of {args.config} ({', '.join(sorted(cfg))})")
        try:
            cfg[key] = json.loads(value)
        except ValueError:
            cfg[key] = value
    return cfg


def main(argv: list[str] | None = None) -> int:
    cfg = config(argv)
    import torch

    torch.manual_seed(int(cfg["seed"]))
    device = torch.device(
        cfg["device"] if cfg["device"] != "cuda" or torch.cuda.is_available() else "cpu"
    )
    if cfg["device"] == "cuda" and device.type != "cuda":
        print("no CUDA device: set device to cpu to train on the CPU", file=sys.stderr)
        return 2
    raw = Path(cfg["dataset_dir"]) / "MNIST" / "raw"
    xtr, ytr = load(raw, "train", torch)
    xte, yte = load(raw, "t10k", torch)
    xtr, ytr, xte, yte = (t.to(device) for t in (xtr, ytr, xte, yte))
    net = model(torch).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=float(cfg["lr"]))
    bs = int(cfg["batch_size"])
    start = time.monotonic()
    loss = torch.tensor(0.0)
    for _ in range(int(cfg["epochs"])):
        net.train()
        order = torch.randperm(len(xtr), device=device)
        for i in range(0, len(order), bs):
            idx = order[i : i + bs]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
    seconds = time.monotonic() - start
    net.eval()
    with torch.no_grad():
        correct = sum(
            int((net(xte[i : i + 1000]).argmax(1) == yte[i : i + 1000]).sum())
            for i in range(0, len(xte), 1000)
        )
    metrics = {
        "task": cfg.get("task"),
        "epochs": int(cfg["epochs"]),
        "device": device.type,
        "train_items": len(xtr),
        "test_items": len(xte),
        "loss": round(float(loss), 4),
        "accuracy": round(correct / len(xte), 4),
        "training_time_seconds": round(seconds, 2),
    }
    out = Path(cfg["output_dir"]) / f"run-{os.environ.get('SLURM_JOB_ID') or int(time.time())}"
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), tmp / "model.pt")
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    os.replace(tmp, out)
    print(json.dumps({**metrics, "output": str(out)}))
    return 0 if metrics["accuracy"] >= float(cfg["min_accuracy"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
