"""GPU smoke for one node: inventory, bf16 matmul TFLOP/s and device-copy GB/s for every
visible GPU, judged against the GPU model's profile in the catalog (smoke.gpu_profiles);
a GPU far below its siblings is named.

Runs ON THE HPC SIDE (inside a SLURM job with --gres=gpu:N, or by hand):
    python gpu_smoke.py [--config cfg.json] [--set iters=20]
Prints one JSON result line; reports through Dagster Pipes when a Pipes context is present.
Standard library + torch (imported inside `measure`).

Figures: matmul is an n x n x n bf16 product (2 n^3 FLOP), the mean of `iters` timed with
CUDA events after `warmup` products; copy is a `copy_mib` MiB device-to-device copy, GB/s
(1e9) counting bytes read plus written, the mean of `iters` after `warmup`.

Fake GPUs (`allow_cpu`, which the orchestrator sets only where the catalog declares the GPUs
fake): with no CUDA device the payload still takes the inventory (driver probe, nvidia-smi,
the job's GRES), then measures the job's CPUs, named as such: `cpu_matmul_fp32_gflops` (an
n x n float32 product of small integers, exact, so it is checked against float64) and
`cpu_copy_gbps` (a `cpu_copy_mib` MiB memory copy, checked). It reports `device: cpu`,
`cuda_devices: 0`, no GPU figure at all, and a WARN saying the GPUs are fake. Without
`allow_cpu`, no CUDA device is a FAIL with no figures.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from smoke_common import (
    Log,
    cpu_threads,
    gres_facts,
    max_rss_bytes,
    need_cuda,
    nvidia_smi_inventory,
    rules,
    run,
)

DEFAULTS: dict[str, Any] = {
    "matmul_n": 8192,
    "copy_mib": 1024,
    "warmup": 3,
    "iters": 20,
    "gpu_profiles": {},
    "sibling_min_fraction": 0.85,
    "allow_cpu": False,
    "cpu_matmul_n": 512,
    "cpu_copy_mib": 64,
    "cpu_warmup": 2,
    "cpu_iters": 10,
}


def _mean_ms(torch: Any, fn: Any, warmup: int, iters: int) -> tuple[float, float, float]:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sum(times) / len(times), min(times), max(times)


def measure_gpu(torch: Any, index: int, cfg: dict[str, Any]) -> dict[str, Any]:
    dev = torch.device("cuda", index)
    torch.cuda.set_device(dev)
    props = torch.cuda.get_device_properties(dev)
    n = int(cfg["matmul_n"])
    gen = torch.Generator(device=dev).manual_seed(index)
    a = torch.randn(n, n, dtype=torch.bfloat16, device=dev, generator=gen)
    b = torch.randn(n, n, dtype=torch.bfloat16, device=dev, generator=gen)
    c = torch.empty(n, n, dtype=torch.bfloat16, device=dev)
    mm_ms, mm_min, mm_max = _mean_ms(
        torch, lambda: torch.matmul(a, b, out=c), int(cfg["warmup"]), int(cfg["iters"])
    )
    nbytes = int(cfg["copy_mib"]) * (1 << 20)
    src = torch.ones(nbytes // 2, dtype=torch.float16, device=dev)
    dst = torch.empty_like(src)
    cp_ms, _, _ = _mean_ms(torch, lambda: dst.copy_(src), int(cfg["warmup"]), int(cfg["iters"]))
    copy_ok = bool(torch.equal(dst, src))
    torch.cuda.empty_cache()
    return {
        "index": index,
        "name": props.name,
        "uuid": str(getattr(props, "uuid", "")),
        "memory_total_bytes": int(props.total_memory),
        "compute_capability": f"{props.major}.{props.minor}",
        "multiprocessors": int(props.multi_processor_count),
        "matmul_bf16_tflops": round(2 * n**3 / (mm_ms / 1e3) / 1e12, 1),
        "matmul_ms_mean": round(mm_ms, 4),
        "matmul_ms_min": round(mm_min, 4),
        "matmul_ms_max": round(mm_max, 4),
        "copy_gbps": round(2 * nbytes / (cp_ms / 1e3) / 1e9, 1),
        "copy_ms_mean": round(cp_ms, 4),
        "copy_verified": copy_ok,
    }


def _cpu_mean_s(fn: Any, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - start) / iters


def measure_cpu(torch: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    """The job's CPUs, where the GPUs are fake: float32 matmul GFLOP/s and memory-copy GB/s,
    each checked. Entries are integers in [-4, 4], so every product and partial sum is an
    integer below 2^24 (n <= 2^20): float32 computes it exactly and float64 must agree."""
    threads = cpu_threads()
    if threads:
        torch.set_num_threads(threads)  # the job's CPUs, not the node's
    n, warmup, iters = int(cfg["cpu_matmul_n"]), int(cfg["cpu_warmup"]), int(cfg["cpu_iters"])
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(-4, 5, (n, n), generator=gen).to(torch.float32)
    b = torch.randint(-4, 5, (n, n), generator=gen).to(torch.float32)
    c = torch.empty(n, n, dtype=torch.float32)
    mm_s = _cpu_mean_s(lambda: torch.matmul(a, b, out=c), warmup, iters)
    matmul_ok = bool(torch.equal(c.to(torch.float64), a.to(torch.float64) @ b.to(torch.float64)))
    nbytes = int(cfg["cpu_copy_mib"]) * (1 << 20)
    src = (torch.arange(nbytes // 4, dtype=torch.int32) % 251).to(torch.float32)
    dst = torch.empty_like(src)
    cp_s = _cpu_mean_s(lambda: dst.copy_(src), warmup, iters)
    copy_ok = bool(torch.equal(dst, src))
    return {
        "torch_threads": int(torch.get_num_threads()),
        "cpu_matmul_fp32_gflops": round(2 * n**3 / mm_s / 1e9, 2),
        "cpu_matmul_n": n,
        "cpu_matmul_ms_mean": round(mm_s * 1e3, 3),
        "cpu_matmul_verified": matmul_ok,
        "cpu_copy_gbps": round(2 * nbytes / cp_s / 1e9, 2),
        "cpu_copy_mib": int(cfg["cpu_copy_mib"]),
        "cpu_copy_ms_mean": round(cp_s * 1e3, 3),
        "cpu_copy_verified": copy_ok,
    }


def measure(cfg: dict[str, Any], log: Log) -> dict[str, Any]:
    smi = nvidia_smi_inventory()
    cuda = need_cuda(1, allow_cpu=bool(cfg.get("allow_cpu")))
    base: dict[str, Any] = {
        "driver_probe": cuda["probe"],
        "nvidia_smi": smi,
        "nvidia_smi_gpus": len(smi.get("gpus") or []),
        **gres_facts(),
    }
    if not cuda["ok"]:
        # The measured fact: the job got its GRES but no CUDA device answers. No figures.
        return {
            **base,
            "verdict": rules.FAIL,
            "cuda_devices": 0,
            "error": cuda["error"],
            "messages": [cuda["error"]],
        }
    import torch

    if cuda.get("cpu_fallback"):
        # Fake GPUs: the inventory above, then the CPUs, named as CPU figures; no GPU figure.
        no_cuda = (
            cuda["probe"].get("error")
            or f"{rules.NO_CUDA}: the driver reports {cuda['probe']['devices']}"
        )
        log(
            f"{no_cuda}; the catalog declares the GPUs fake: measuring the CPU instead (float32 "
            f"matmul {cfg['cpu_matmul_n']}^3, copy {cfg['cpu_copy_mib']} MiB)"
        )
        cpu = measure_cpu(torch, cfg)
        on_cpu = {
            **base,
            "device": "cpu",
            "cpu_fallback": True,
            "cuda_devices": 0,
            "no_cuda_reason": no_cuda,
            "torch": torch.__version__,
            **cpu,
        }
        judged = rules.judge_cpu_fallback(
            {"float32 matmul": cpu["cpu_matmul_verified"], "memory copy": cpu["cpu_copy_verified"]},
            "the GPU smoke",
            on_cpu,
        )
        log(
            f"CPU: {cpu['cpu_matmul_fp32_gflops']} GFLOP/s float32 matmul, "
            f"{cpu['cpu_copy_gbps']} GB/s copy on {cpu['torch_threads']} thread(s): "
            f"{judged['verdict']}"
        )
        return {
            **on_cpu,
            "verdict": judged["verdict"],
            "messages": [no_cuda, *judged["messages"]],
            "max_rss_bytes": max_rss_bytes(),
        }

    count = torch.cuda.device_count()
    log(
        f"torch {torch.__version__} CUDA {torch.version.cuda}: {count} device(s); matmul "
        f"{cfg['matmul_n']}^3 bf16, copy {cfg['copy_mib']} MiB"
    )
    gpus = []
    for i in range(count):
        g = measure_gpu(torch, i, cfg)
        log(
            f"GPU {i} {g['name']}: {g['matmul_bf16_tflops']} "
            f"TFLOP/s bf16, {g['copy_gbps']} GB/s copy"
        )
        gpus.append(g)
    judged = rules.judge_gpus(
        gpus, cfg.get("gpu_profiles") or {}, sibling_min_fraction=float(cfg["sibling_min_fraction"])
    )
    for g, j in zip(gpus, judged["gpus"], strict=True):
        g["verdict"], g["profile"] = j["verdict"], j["profile"]
        if not g["copy_verified"]:
            g["verdict"] = rules.FAIL
            judged["messages"].append(f"GPU {g['index']}: copied bytes differ from the source")
    verdict = rules.worst([judged["verdict"], *(g["verdict"] for g in gpus)])
    out: dict[str, Any] = {
        **base,
        "verdict": verdict,
        "device": "cuda",
        "cuda_devices": count,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpus": gpus,
        "outliers": judged["outliers"],
        "messages": judged["messages"],
        "min_matmul_bf16_tflops": min(g["matmul_bf16_tflops"] for g in gpus),
        "min_copy_gbps": min(g["copy_gbps"] for g in gpus),
    }
    for g in gpus:
        out[f"gpu{g['index']}_matmul_bf16_tflops"] = g["matmul_bf16_tflops"]
        out[f"gpu{g['index']}_copy_gbps"] = g["copy_gbps"]
    return out


if __name__ == "__main__":
    sys.exit(run("gpu_smoke", measure, DEFAULTS))
