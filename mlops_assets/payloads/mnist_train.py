"""MNIST training smoke: the platform's validation task MLOPS-1.1 on one GPU.

SimpleCNN (conv 1->32->64, 3x3, max-pool, fc 9216->128->10), Adam lr 1e-3, batch 128,
5 epochs, inputs normalized with (0.1307, 0.3081). Reads the staged idx files from
`<dataset_dir>/MNIST/raw/` (plain or .gz, as torchvision lays them out), keeps the whole set
on the GPU, and writes `model.pt` (state_dict) and `metrics.json` {epochs, loss, accuracy,
training_time_seconds, ...} to `<models_dir>/mnist/job-$SLURM_JOB_ID/` (temp dir + rename).

Runs ON THE HPC SIDE:
    python mnist_train.py --set dataset_dir=/mnt/beegfs/datasets/mnist --set
    models_dir=/mnt/beegfs/models
Prints one JSON result line; reports through Dagster Pipes when a Pipes context is present.
Standard library + torch. With `allow_cpu` (the orchestrator sets it where the catalog
declares the GPUs fake) it trains on the CPU where no CUDA device exists, with the job's
SLURM_CPUS_PER_TASK threads, and says so (`device: cpu`, `cpu_fallback: true`); otherwise
no CUDA device is a failure.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from smoke_common import GpuSampler, Log, one_training_device, publish_model, rules, run

DEFAULTS: dict[str, Any] = {
    "dataset_dir": "/mnt/beegfs/datasets/mnist",
    "models_dir": "/mnt/beegfs/models",
    "epochs": 5,
    "batch_size": 128,
    "lr": 1e-3,
    "seed": 0,
    "min_accuracy": 0.95,
    "max_seconds": 180,
    "allow_cpu": False,
}
MEAN, STD = 0.1307, 0.3081
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str) -> tuple[tuple[int, ...], bytes]:
    """An idx file (plain or .gz): (shape, raw unsigned bytes). Only ubyte data is MNIST's."""
    for candidate in (path, path + ".gz"):
        if os.path.exists(candidate):
            opener: Any = gzip.open if candidate.endswith(".gz") else open
            with opener(candidate, "rb") as fh:
                data = fh.read()
            break
    else:
        raise FileNotFoundError(
            f"{path}(.gz) not found: stage the dataset first (materialize dataset_mnist)"
        )
    zero, dtype, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = data[4 + 4 * ndim :]
    count = 1
    for s in shape:
        count *= s
    if len(body) != count:
        raise ValueError(f"{path}: header says {shape} ({count} bytes), file holds {len(body)}")
    return shape, body


def simple_cnn(torch: Any) -> Any:
    """The SimpleCNN of MLOPS-1.1: its one definition (DDP training and serving build it here)."""
    nn = torch.nn

    class SimpleCNN(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x: Any) -> Any:
            f = torch.nn.functional
            x = f.relu(self.conv1(x))
            x = f.max_pool2d(f.relu(self.conv2(x)), 2)
            x = torch.flatten(x, 1)
            return self.fc2(f.relu(self.fc1(x)))

    return SimpleCNN()


def _tensors(torch: Any, cfg: dict[str, Any], dev: Any) -> dict[str, Any]:
    raw = os.path.join(str(cfg["dataset_dir"]), "MNIST", "raw")
    out = {}
    for key, name in FILES.items():
        shape, body = read_idx(os.path.join(raw, name))
        t = torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)
        if key.endswith("images"):
            t = ((t.to(torch.float32) / 255.0 - MEAN) / STD).unsqueeze(1)
        else:
            t = t.to(torch.int64)
        out[key] = t.to(dev)
    return out


def _step(torch: Any, model: Any, opt: Any, data: dict[str, Any], idx: Any) -> Any:
    """One optimizer step on the training samples `idx`; its loss, detached and left on the
    device (summed there, read once an epoch: no host sync per batch). Shared with
    mnist_ddp.py, so both smokes train the same way."""
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(
        model(data["train_images"][idx]), data["train_labels"][idx]
    )
    loss.backward()
    opt.step()
    return loss.detach()


def _write(out_dir: str, model_state: Any, metrics: dict[str, Any], torch: Any) -> None:
    publish_model(
        out_dir, metrics, lambda tmp: torch.save(model_state, os.path.join(tmp, "model.pt"))
    )


def measure(cfg: dict[str, Any], log: Log) -> dict[str, Any]:
    start = one_training_device(cfg)
    if start.failed is not None:
        return start.failed
    torch, dev, use_cuda = start.torch, start.dev, start.use_cuda
    data = _tensors(torch, cfg, dev)
    n_train, n_test = int(data["train_labels"].numel()), int(data["test_labels"].numel())
    model = simple_cnn(torch).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]))
    bs, epochs = int(cfg["batch_size"]), int(cfg["epochs"])
    gen = torch.Generator(device="cpu").manual_seed(int(cfg["seed"]))
    log(
        f"MNIST on {dev} ({torch.cuda.get_device_name(0) if use_cuda else 'CPU'}): {n_train} "
        f"train / {n_test} test images, {epochs} epochs, batch {bs}"
    )
    epoch_losses = []
    if use_cuda:
        torch.cuda.reset_peak_memory_stats()
    t_train = time.monotonic()
    with GpuSampler() if use_cuda else contextlib.nullcontext() as sampler:
        for epoch in range(epochs):
            model.train()
            perm = torch.randperm(n_train, generator=gen).to(dev)
            total, batches = torch.zeros((), device=dev), 0
            for i in range(0, n_train, bs):
                total += _step(torch, model, opt, data, perm[i : i + bs])
                batches += 1
            epoch_losses.append(round(float(total.item()) / batches, 5))
            log(f"epoch {epoch + 1}/{epochs}: mean loss {epoch_losses[-1]}")
        if use_cuda:
            torch.cuda.synchronize()
    train_s = time.monotonic() - t_train
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, n_test, 1000):
            pred = model(data["test_images"][i : i + 1000]).argmax(1)
            correct += int((pred == data["test_labels"][i : i + 1000]).sum().item())
    accuracy = correct / n_test
    job = os.environ.get("SLURM_JOB_ID") or f"local-{int(time.time())}"
    out_dir = os.path.join(str(cfg["models_dir"]), "mnist", f"job-{job}")
    metrics = {
        "epochs": epochs,
        "loss": epoch_losses[-1],
        "accuracy": round(accuracy, 5),
        "training_time_seconds": round(train_s, 3),
        "epoch_losses": epoch_losses,
        "train_samples": n_train,
        "test_samples": n_test,
        "device": str(dev) if not use_cuda else f"cuda ({torch.cuda.get_device_name(0)})",
        "torch": torch.__version__,
        "batch_size": bs,
        "lr": float(cfg["lr"]),
        "samples_per_s": round(n_train * epochs / train_s, 1) if train_s > 0 else None,
        "cuda_max_memory_allocated_bytes": (
            int(torch.cuda.max_memory_allocated()) if use_cuda else None
        ),
        **(sampler.figures() if use_cuda and sampler is not None else {}),
    }
    _write(out_dir, {k: v.detach().cpu() for k, v in model.state_dict().items()}, metrics, torch)
    total_s = round(time.monotonic() - start.started, 3)
    judged = rules.judge_mnist(
        {**metrics, "total_seconds": total_s},
        min_accuracy=float(cfg["min_accuracy"]),
        max_seconds=float(cfg["max_seconds"]),
    )
    log(
        f"test accuracy {accuracy:.4f}, training {train_s:.1f}s, total {total_s:.1f}s: "
        f"{judged['verdict']} -> {out_dir}"
    )
    return {
        **start.result(metrics, judged, total_s, out_dir),
        "min_accuracy": float(cfg["min_accuracy"]),
        "max_seconds": float(cfg["max_seconds"]),
    }


if __name__ == "__main__":
    sys.exit(run("mnist_train", measure, DEFAULTS))
