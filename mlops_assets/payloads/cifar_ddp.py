"""Validation task MLOPS-2.1: CIFAR-10 ResNet-18 under DistributedDataParallel, one rank per
node, launched by ``srun`` inside one SLURM job, as the multi-node MNIST smoke is.

Runs ON THE HPC SIDE, once per rank. Everything but the task itself is mnist_ddp.py's, reused
through its ``Task`` hook rather than copied: SLURM topology, the rendezvous that names a rank
that never joined, rank 0 alone speaking Dagster Pipes, the stderr tee and its NCCL/gloo
warnings, the exact all-reduce, identical parameters after training, sharded evaluation,
samples/s and the speedup over one rank, and the ``os._exit`` teardown that torch 1.13's gloo
destructors need (see mnist_ddp's ``_KEPT_MODELS`` and ``rank_main``).

What is CIFAR's: torchvision's ``resnet18(num_classes=10)``, stock or with the usual CIFAR
stem (3x3 conv, stride 1, no max-pool: ``stem: cifar``; measured 7.6x slower per image on
one CPU core, so the sandbox keeps the stock stem); SGD with momentum (MLOPS-2.1: lr 0.01,
momentum 0.9, batch 128 per GPU, 3 epochs); the staged python pickles
(``<dataset_dir>/cifar-10-batches-py/data_batch_1..5`` and ``test_batch``, normalized with
CIFAR-10's mean/std, no augmentation), optionally the first ``train_samples`` training
images; rank 0 writes ``model.pt`` (state_dict) and ``metrics.json`` to
``<models_dir>/cifar10-resnet18/job-$SLURM_JOB_ID/`` (temp dir + rename, as mnist_train.py).
The sandbox mirror's batches are generated stand-ins (its readme.html says so): the result
says ``data_stand_in`` and the verdict names the bar as the stand-in's.

Standard library + torch + torchvision + numpy (the pickles hold numpy arrays), imported
inside the functions.
"""

from __future__ import annotations

import functools
import os
import pickle
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mnist_ddp import Task, ddp_rules, judged_by, measure, rank_main
from mnist_train import _write

DEFAULTS: dict[str, Any] = {
    "dataset_dir": "/mnt/beegfs/datasets/cifar10",
    "models_dir": "/mnt/beegfs/models",
    "output_name": "cifar10-resnet18",
    "stem": "cifar",  # cifar: 3x3 conv, no max-pool; stock: torchvision's 7x7/2 + max-pool
    "train_samples": 0,  # 0: every staged training image
    "epochs": 3,  # MLOPS-2.1
    "batch_size": 128,  # per rank (MLOPS-2.1: per GPU)
    "lr": 0.01,
    "momentum": 0.9,
    "seed": 0,
    "min_accuracy": 0.6,
    "max_seconds": 900,  # MLOPS-2.1: under 15 minutes
    "min_speedup": None,
    "nodes_requested": None,
    "nodes_available": None,
    "backend": "auto",
    "allow_cpu": False,
    "join_timeout_s": 120,
    "timeout_s": 300,
    "baseline_batches": 20,
    "warmup_batches": 3,
    "pattern_bytes": 16 << 20,
}
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
BATCHES_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"


def resnet18(torch: Any, cfg: dict[str, Any]) -> Any:
    """torchvision's ResNet-18 for 10 classes; ``stem: cifar`` swaps in the 3x3 stride-1
    stem without max-pool that 32x32 inputs usually get (more accurate, ~8x the compute)."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=10)
    stem = str(cfg.get("stem") or "cifar")
    if stem == "cifar":
        model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = torch.nn.Identity()
    elif stem != "stock":
        raise ValueError(f"stem {stem!r}: cifar or stock")
    return model


#: the only globals a CIFAR batch may name: numpy's array and how it pickles one
NUMPY_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}


class _NumpyOnly(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers, refuses any other global: a staged file
    that was swapped cannot run code in the training job."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a CIFAR batch")


def read_batch(path: str) -> tuple[bytes, list[int]]:
    """One CIFAR python pickle: (uint8 pixels row-major, N x 3072, as bytes; labels). Keys
    may be bytes (the real files, pickled by Python 2) or str (the mirror's stand-ins)."""
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: stage the dataset first (materialize dataset_cifar10)"
        )
    import numpy as np

    with open(path, "rb") as fh:
        raw = _NumpyOnly(fh, encoding="latin1").load()
    obj = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    data = np.ascontiguousarray(obj["data"], dtype=np.uint8)
    labels = [int(x) for x in obj["labels"]]
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != len(labels):
        raise ValueError(f"{path}: data {data.shape} and {len(labels)} labels are not CIFAR's")
    return data.tobytes(), labels


def stand_in(dataset_dir: str) -> bool:
    """Whether the staged batches are the sandbox mirror's generated stand-ins, as their
    readme.html says (the real archive's readme links to the CIFAR page)."""
    try:
        with open(os.path.join(dataset_dir, BATCHES_DIR, "readme.html"), "rb") as fh:
            return ddp_rules.CIFAR_STAND_IN_MARK.encode() in fh.read()
    except OSError:
        return False


def _tensors(torch: Any, cfg: dict[str, Any], dev: Any) -> dict[str, Any]:
    """The staged batches as normalized float tensors on ``dev`` (the first
    ``train_samples`` training images when set), in mnist_ddp's keys."""
    root = os.path.join(str(cfg["dataset_dir"]), BATCHES_DIR)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)

    def load(names: tuple[str, ...], limit: int) -> tuple[Any, Any]:
        pixels = bytearray()
        labels: list[int] = []
        for name in names:
            if limit and len(labels) >= limit:
                break
            body, lab = read_batch(os.path.join(root, name))
            pixels += body
            labels += lab
        n = min(limit, len(labels)) if limit else len(labels)
        img = torch.frombuffer(pixels, dtype=torch.uint8)[: n * 3072].reshape(n, 3, 32, 32)
        img = (img.to(torch.float32) / 255.0 - mean) / std
        return img.to(dev), torch.tensor(labels[:n], dtype=torch.int64).to(dev)

    train_x, train_y = load(TRAIN_FILES, int(cfg.get("train_samples") or 0))
    test_x, test_y = load((TEST_FILE,), 0)
    return {
        "train_images": train_x,
        "train_labels": train_y,
        "test_images": test_x,
        "test_labels": test_y,
    }


def _sgd(torch: Any, params: Any, cfg: dict[str, Any]) -> Any:
    return torch.optim.SGD(params, lr=float(cfg["lr"]), momentum=float(cfg["momentum"]))


GPU_KEYS = ("cuda_max_memory", "rank_cuda_max", "gpu_utilization", "rank_gpu_utilization")


def _finish(torch: Any, module: Any, cfg: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Rank 0: model.pt and metrics.json to the models directory, as mnist_train.py writes
    them; a write that fails is reported (the judge fails it), not raised."""
    import torchvision

    job = os.environ.get("SLURM_JOB_ID") or f"local-{int(time.time())}"
    out_dir = os.path.join(str(cfg["models_dir"]), str(cfg["output_name"]), f"job-{job}")
    params = sum(int(p.numel()) for p in module.parameters())
    extra: dict[str, Any] = {
        "model": f"resnet18 ({cfg.get('stem')} stem)",
        "parameters": params,
        "torchvision": torchvision.__version__,
        "data_stand_in": stand_in(str(cfg["dataset_dir"])),
        "lr": float(cfg["lr"]),
        "momentum": float(cfg["momentum"]),
    }
    metrics = {
        k: result.get(k)
        for k in (
            "epochs",
            "epoch_losses",
            "epoch_seconds",
            "accuracy",
            "train_samples",
            "test_samples",
            "batch_size_per_rank",
            "world_size",
            "backend",
            "device",
            "samples_per_s",
            "single_node_samples_per_s",
            "speedup",
            "training_seconds",
            "total_seconds",
            "rank_max_rss_bytes",
            "torch",
        )
    }
    # peak GPU memory and utilization exist only on GPU ranks (mnist_ddp._gpu_figures)
    metrics.update({k: v for k, v in result.items() if k.startswith(GPU_KEYS)})
    metrics.update(extra, loss=(result.get("epoch_losses") or [None])[-1])
    metrics["nodes"] = [r["node"] for r in result.get("ranks") or []]
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    try:
        _write(out_dir, state, metrics, torch)
    except OSError as exc:
        return {**extra, "checkpoint": None, "checkpoint_error": f"{out_dir}: {exc}"}
    return {**extra, "output_dir": out_dir, "checkpoint": os.path.join(out_dir, "model.pt")}


CIFAR = Task(
    model=resnet18,
    tensors=_tensors,
    optimizer=_sgd,
    judge=judged_by(ddp_rules.judge_cifar_ddp),
    finish=_finish,
)


def main() -> int:
    return rank_main("cifar_ddp", functools.partial(measure, task=CIFAR), DEFAULTS)


if __name__ == "__main__":
    sys.exit(main())
