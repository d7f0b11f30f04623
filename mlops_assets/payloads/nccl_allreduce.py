"""Multi-GPU smoke: an all-reduce through torch.distributed/NCCL over `world_size` GPUs of one
node (one process per GPU), every element verified EXACTLY, bus bandwidth reported per size.

Runs ON THE HPC SIDE (a SLURM job with --gres=gpu:2, or by hand):
    python nccl_allreduce.py [--config cfg.json] [--set world_size=2]
Prints one JSON result line; reports through Dagster Pipes when a Pipes context is present.
Standard library + torch (imported inside the functions).

Rank r fills float32 x[i] = (i mod 251 + 1) * (r + 1); after a SUM all-reduce every element
must equal (i mod 251 + 1) * n(n+1)/2, exactly (small integers are exact in float32). Each
size is verified before and after its timed all-reduces, on every rank; any wrong value is a
failure. Timing: `iters` all-reduces after `warmup`, the slowest rank's mean; algbw = bytes /
time (GB/s, 1e9), busbw = algbw * 2(n-1)/n (nccl-tests). NVLink SHARP stays off
(NCCL_NVLS_ENABLE=0) unless the environment says otherwise.

`backend: gloo` runs the same all-reduces over `world_size` CPU processes (no CUDA needed),
with the same exact verification: any wrong value is still a FAIL. The orchestrator chooses it,
with small sizes, only where the catalog declares the GPUs fake (`allow_cpu`); the result then
says `backend: gloo (fake GPUs: CPU processes)`, carries its bandwidth only as
`cpu_allreduce_busbw_gbps` (loopback memory traffic, never a GPU figure: no `busbw_gbps`,
no NCCL version) and is at best a WARN that says so.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from smoke_common import Log, gres_facts, max_rss_bytes, need_cuda, rules, run

DEFAULTS: dict[str, Any] = {
    "world_size": 2,
    "sizes_bytes": [1 << 20, 16 << 20, 128 << 20, 1 << 30, 4 << 30],
    "warmup": 5,
    "iters": 20,
    "expected_busbw_gbps": None,
    "warn_fraction": 0.9,
    "fail_fraction": 0.75,
    "timeout_s": 300,
    "backend": "nccl",  # "gloo" runs the same exact-verification on CPU processes (no GPU)
    "allow_cpu": False,  # set by the orchestrator where the catalog declares the GPUs fake
}
PATTERN_MOD = 251


def _fill(torch: Any, numel: int, rank: int, dev: Any) -> Any:
    return ((torch.arange(numel, device=dev, dtype=torch.int32) % PATTERN_MOD) + 1).to(
        torch.float32
    ) * float(rank + 1)


def _verify(torch: Any, x: Any, n: int) -> int:
    expected = _fill(torch, x.numel(), 0, x.device) * float(n * (n + 1) // 2)
    wrong = int((x != expected).sum().item())
    del expected
    return wrong


def _worker(rank: int, n: int, cfg: dict[str, Any], init: str, outdir: str) -> None:
    import datetime

    import torch
    import torch.distributed as dist

    gpu = cfg["backend"] == "nccl"
    dev = torch.device("cuda", rank) if gpu else torch.device("cpu")
    if gpu:
        torch.cuda.set_device(dev)
    else:
        torch.set_num_threads(1)  # one CPU per rank, as one GPU per rank
    # device_id binds NCCL's communicator eagerly (torch >= 2.3); gloo and older torch lack it
    bind = {"device_id": dev} if gpu else {}
    dist.init_process_group(
        cfg["backend"],
        init_method=init,
        rank=rank,
        world_size=n,
        timeout=datetime.timedelta(seconds=float(cfg["timeout_s"])),
        **bind,
    )
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    records = []
    try:
        for nbytes in cfg["sizes_bytes"]:
            numel = int(nbytes) // 4
            x = _fill(torch, numel, rank, dev)
            dist.all_reduce(x)
            sync()
            wrong_before = _verify(torch, x, n)
            for _ in range(int(cfg["warmup"])):
                dist.all_reduce(x)
            sync()
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(int(cfg["iters"])):
                dist.all_reduce(x)
            sync()
            secs = (time.perf_counter() - t0) / int(cfg["iters"])
            x.copy_(_fill(torch, numel, rank, dev))
            dist.all_reduce(x)
            sync()
            wrong_after = _verify(torch, x, n)
            del x
            if gpu:
                torch.cuda.empty_cache()
            records.append(
                {
                    "bytes": numel * 4,
                    "seconds": secs,
                    "wrong": wrong_before + wrong_after,
                    "checked": 2 * numel,
                }
            )
    finally:
        with open(os.path.join(outdir, f"rank{rank}.json"), "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "rank": rank,
                    "records": records,
                    "nccl": ".".join(map(str, torch.cuda.nccl.version())) if gpu else None,
                    "max_rss_bytes": max_rss_bytes(),
                },
                fh,
            )
        dist.destroy_process_group()


def combine(ranks: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """Per size across ranks: wrong values summed, the slowest rank's time, algbw and busbw.
    A size some rank did not report counts as unverified (checked 0)."""
    sizes: list[dict[str, Any]] = []
    by_size: dict[int, list[dict[str, Any]]] = {}
    for r in ranks:
        for rec in r["records"]:
            by_size.setdefault(int(rec["bytes"]), []).append(rec)
    for nbytes in sorted(by_size):
        recs = by_size[nbytes]
        secs = max(float(r["seconds"]) for r in recs)
        algbw = nbytes / secs / 1e9
        sizes.append(
            {
                "bytes": nbytes,
                "ranks_reporting": len(recs),
                "wrong": sum(int(r["wrong"]) for r in recs),
                "checked": sum(int(r["checked"]) for r in recs) if len(recs) == n else 0,
                "time_us": round(secs * 1e6, 1),
                "algbw_gbps": round(algbw, 2),
                "busbw_gbps": round(rules.bus_bandwidth(algbw, n), 2),
            }
        )
    return sizes


def measure(cfg: dict[str, Any], log: Log) -> dict[str, Any]:
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    n = int(cfg["world_size"])
    on_cpu = cfg["backend"] == "gloo"
    cuda = need_cuda(n, allow_cpu=on_cpu)
    base: dict[str, Any] = {
        "world_size": n,
        "driver_probe": cuda["probe"],
        "cuda_devices": int(cuda["probe"]["devices"]),
        **gres_facts(),
    }
    if not cuda["ok"]:
        return {**base, "verdict": rules.FAIL, "error": cuda["error"], "messages": [cuda["error"]]}
    import torch
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="nccl-smoke-") as outdir:
        what = f"{n} CPU processes (gloo)" if on_cpu else f"{n} GPUs"
        log(f"all-reduce over {what}, sizes {cfg['sizes_bytes']}, torch {torch.__version__}")
        mp.spawn(_worker, args=(n, cfg, f"tcp://127.0.0.1:{port}", outdir), nprocs=n, join=True)
        ranks = []
        for r in range(n):
            with open(os.path.join(outdir, f"rank{r}.json"), encoding="utf-8") as fh:
                ranks.append(json.load(fh))
    sizes = combine(ranks, n)
    for rec in sizes:
        log(
            f"{rec['bytes']:>12} B  {rec['time_us']:>10} us  algbw {rec['algbw_gbps']:>8} GB/s  "
            f"busbw {rec['busbw_gbps']:>8} GB/s  wrong {rec['wrong']}"
        )
    # peak RSS of this process plus each rank's: an upper bound of the job's, since they overlap
    rss = max_rss_bytes() + sum(int(r.get("max_rss_bytes") or 0) for r in ranks)
    result: dict[str, Any] = {
        **base,
        "sizes": sizes,
        "torch": torch.__version__,
        "max_rss_bytes": rss,
        "wrong_values": sum(s["wrong"] for s in sizes),
    }
    if on_cpu:
        fake = bool(cfg.get("allow_cpu"))
        result.update(
            backend=f"gloo ({'fake GPUs: ' if fake else ''}CPU processes)",
            device="cpu",
            cpu_fallback=fake,
            no_cuda_reason=cuda["probe"].get("error"),
        )
        largest = max(sizes, key=lambda s: s["bytes"]) if sizes else None
        if largest is not None:
            result.update(
                cpu_allreduce_busbw_gbps=largest["busbw_gbps"],
                cpu_allreduce_size_bytes=largest["bytes"],
            )
        judged = rules.judge_allreduce_on_cpu(result, min_world_size=n)
        result.update(verdict=judged["verdict"], messages=judged["messages"])
        return result
    result.update(
        nccl=ranks[0].get("nccl"),
        backend=cfg["backend"],
        device="cuda",
        gpu_name=torch.cuda.get_device_name(0),
    )
    key, expect = rules.nccl_expectation(
        result["gpu_name"],
        cfg.get("gpu_profiles") or {},
        expected_busbw_gbps=cfg.get("expected_busbw_gbps"),
        warn_fraction=float(cfg["warn_fraction"]),
        fail_fraction=float(cfg["fail_fraction"]),
    )
    result.update(profile=key, expected_busbw_gbps=expect["expected_busbw_gbps"])
    judged = rules.judge_nccl(result, min_world_size=n, **expect)
    result.update(
        verdict=judged["verdict"],
        messages=judged["messages"],
        busbw_gbps=judged["busbw_gbps"],
        busbw_size_bytes=judged["size_bytes"],
    )
    return result


if __name__ == "__main__":
    sys.exit(run("nccl_allreduce", measure, DEFAULTS))
