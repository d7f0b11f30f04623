"""Multi-node training smoke: MNIST SimpleCNN under DistributedDataParallel, one rank per
node, launched by ``srun`` inside one SLURM job (``sbatch -N 2 --ntasks-per-node=1``).

Runs ON THE HPC SIDE, once per rank. Rank, world size and nodes come from SLURM
(SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_JOB_NODELIST, SLURMD_NODENAME); the master
is the first node of the job's nodelist (the project's hostlist parser, shipped as
``mlops_nodelist.py``) unless MASTER_ADDR is set; the port is MASTER_PORT, else derived from
the job id. Backend: NCCL on CUDA devices, gloo on CPUs where the catalog declares the GPUs
fake (``allow_cpu``); ``backend`` in the config forces one.

Rank 0 alone speaks Dagster Pipes (the other ranks drop the Pipes variables) and sends its
configuration to the others through the rendezvous store, so every rank trains with the
same settings. What it checks, every figure in one result line:

- every rank joined: each checks in at the store before the process group exists, so a
  rank that never starts is named with its node instead of a bare timeout;
- every node took part: an all_gather of (SLURM node, hostname) against the job's nodelist;
- the collective is exact: an all-reduce of known integers equals its closed form, and a
  16 MiB float pattern is verified element by element (nccl_allreduce.py's check);
- training synchronised: parameters are bit-identical on every rank after training;
- the model learned: test accuracy (sharded evaluation, counts summed) above the catalog's
  minimum, and "Training Complete" within ``max_seconds``;
- no NCCL WARN or gloo/c10d warning: each rank tees its own stderr (NCCL_DEBUG=WARN is set
  unless the environment says otherwise) and rank 0 gathers and classifies the lines;
- samples/s across the nodes, and the speedup over one node: rank 0 first trains the same
  model alone for ``baseline_batches`` batches while the others wait at the store.

Standard library + torch (imported inside the functions).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mnist_train import _step, _tensors, simple_cnn
from nccl_allreduce import _fill, _verify
from smoke_common import (
    GpuSampler,
    Log,
    _shipped,
    cpu_threads,
    cuda_driver_probe,
    max_rss_bytes,
    need_cuda,
    rules,
    run,
)

hostlist = _shipped("mlops_nodelist", os.path.join("parse", "nodelist.py"))
ddp_rules = _shipped("mlops_ddp_rules", "ddp_rules.py")

DEFAULTS: dict[str, Any] = {
    "dataset_dir": "/mnt/beegfs/datasets/mnist",
    "epochs": 1,
    "batch_size": 64,  # per rank
    "lr": 1e-3,
    "seed": 0,
    "min_accuracy": 0.9,
    "max_seconds": 600,  # the platform's plan: "Training Complete" within 600 s
    "min_speedup": None,
    "nodes_requested": None,
    "nodes_available": None,
    "backend": "auto",  # nccl on CUDA devices, gloo on CPUs (allow_cpu)
    "allow_cpu": False,
    "join_timeout_s": 120,
    "timeout_s": 300,
    "baseline_batches": 40,
    "warmup_batches": 3,
    "pattern_bytes": 16 << 20,
}
KEY = "mlops_ddp/"
PIPES_ENV = ("DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES")
MAX_WARNING_LINES = 20
# Every rank's DDP model, kept from being freed before the rank's os._exit (see main): freeing
# it destroys the Reducer and, with it, the gloo process group, whose destructor joined a
# worker thread forever under torch 1.13 (a rank-1 backtrace: ~Reducer -> ~ProcessGroupGloo
# -> std::thread::join, CI of 2026-12-06). Rank 0 hung the same way once its measure returned
# ("Training Complete" logged, Pipes never closed, the job held to its time limit: CI of
# 2026-12-07), so no rank frees it, and none reaches the interpreter's own teardown.
_KEPT_MODELS: list[Any] = []


@dataclass(frozen=True)
class Task:
    """What a DDP smoke trains, so one rendezvous/checks/teardown serves several tasks
    (MNIST here, CIFAR-10 ResNet-18 in cifar_ddp.py): the model, the data as tensors on the
    device, the optimizer, an optional ``finish`` for rank 0 once training is done (its
    checkpoint; returns fields for the result) and the judge of the result."""

    model: Callable[[Any, dict[str, Any]], Any]
    tensors: Callable[[Any, dict[str, Any], Any], dict[str, Any]]
    optimizer: Callable[[Any, Any, dict[str, Any]], Any]
    judge: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
    finish: Callable[[Any, Any, dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None


def judged_by(
    rule: Callable[..., Any],
) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """A Task's judge: `rule` (ddp_rules.judge_ddp or a task's wrapper of it) with the run's
    thresholds from its config."""

    def judge(result: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
        return dict(
            rule(
                result,
                min_accuracy=float(cfg["min_accuracy"]),
                max_seconds=float(cfg["max_seconds"]),
                min_speedup=cfg.get("min_speedup"),
            )
        )

    return judge


MNIST = Task(
    model=lambda torch, _cfg: simple_cnn(torch),
    tensors=_tensors,
    optimizer=lambda torch, params, cfg: torch.optim.Adam(params, lr=float(cfg["lr"])),
    judge=judged_by(ddp_rules.judge_ddp),
)


# ----------------------------------------------------------------------- topology


def resolves(name: str) -> bool:
    try:
        socket.getaddrinfo(name, None)
    except OSError:
        return False
    return True


def topology(
    env: dict[str, str] | os._Environ[str] | None = None,
    resolvable: Callable[[str], bool] = resolves,
) -> dict[str, Any]:
    """This rank's place in the job, from SLURM's variables (a lone process outside SLURM is
    rank 0 of 1): rank, world, local rank, the job's nodes, this node, master address/port.
    The master is MASTER_ADDR, else the first node of the job's nodelist; where that name
    does not resolve here, SLURM_LAUNCH_NODE_IPADDR (the address of the node whose batch
    script ran srun: the allocation's first node, where rank 0 runs), else the name."""
    env = os.environ if env is None else env
    rank = int(env.get("SLURM_PROCID", "0"))
    world = int(env.get("SLURM_NTASKS", "1"))
    nodes = hostlist.expand_hostlist(
        env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
    )
    node = env.get("SLURMD_NODENAME") or socket.gethostname()
    nodes = nodes or [node]
    job = env.get("SLURM_JOB_ID", "")
    port = env.get("MASTER_PORT") or str(20000 + int(job) % 20000 if job.isdigit() else 29500)
    per_node = max(1, world // max(1, len(nodes)))
    return {
        "rank": rank,
        "world": world,
        "local_rank": int(env.get("SLURM_LOCALID", "0")),
        "nodes": nodes,
        "node": node,
        "master": env.get("MASTER_ADDR") or _master(nodes[0], env, resolvable),
        "port": int(port),
        # SLURM's block distribution: rank r runs on node r // tasks-per-node
        "expected_node": {r: nodes[min(r // per_node, len(nodes) - 1)] for r in range(world)},
    }


def _master(first: str, env: Any, resolvable: Callable[[str], bool]) -> str:
    launch = env.get("SLURM_LAUNCH_NODE_IPADDR")
    return launch if launch and not resolvable(first) else first


# ------------------------------------------------------------------ own stderr tee


class StderrTee:
    """fd 2 through a pipe: every byte still reaches the job's stderr, and a copy stays in
    memory so the rank can scan what NCCL, gloo and c10d printed (they write to fd 2 from C++,
    where Python's sys.stderr sees nothing)."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self.saved = os.dup(2)
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self.read = read
        self.marker = b""
        self.chunks: list[bytes] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()
        atexit.register(self.close)

    def close(self) -> None:
        """fd 2 back to the job's stderr, and what is still in the pipe through to it: at exit,
        so a traceback printed last reaches the job's log too."""
        if self.saved < 0:
            return
        sys.stderr.flush()
        os.dup2(self.saved, 2)  # the pipe's last writer goes: the pump reads to its end
        self.thread.join(timeout=5)
        self.saved = -1

    def _pump(self) -> None:
        while True:
            data = os.read(self.read, 65536)
            if not data:
                return
            shown = data.replace(self.marker, b"") if self.marker else data
            if shown:
                os.write(self.saved, shown)
            with self.lock:
                self.chunks.append(data)

    def text(self, timeout: float = 5.0) -> str:
        """Everything written so far: a marker written through fd 2 is waited for, so no
        line printed before this call is missed."""
        marker = f"--- mlops stderr mark {time.monotonic_ns()} ---"
        self.marker = (marker + "\n").encode()  # kept out of the job's stderr
        sys.stderr.flush()
        os.write(2, self.marker)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                joined = b"".join(self.chunks).decode("utf-8", "replace")
            if marker in joined:
                return joined.replace(marker + "\n", "")
            time.sleep(0.01)
        return joined


# ------------------------------------------------------------------------- training


def _train(
    torch: Any,
    model: Any,
    data: dict[str, Any],
    idx_of_epoch: Any,
    cfg: dict[str, Any],
    steps: int,
    task: Task = MNIST,
) -> dict[str, Any]:
    """``steps`` batches per epoch of this rank's shard; samples/s from the step after the
    warm-up on (the first batches pay for allocation and autotuning)."""
    opt = task.optimizer(torch, model.parameters(), cfg)
    bs, warm = int(cfg["batch_size"]), int(cfg["warmup_batches"])
    losses, done, t0 = [], 0, None
    epoch_s: list[float] = []
    sync = torch.cuda.synchronize if data["train_images"].is_cuda else (lambda: None)
    for epoch in range(int(cfg["epochs"])):
        model.train()
        t_epoch = time.monotonic()
        idx = idx_of_epoch(epoch)
        total = torch.zeros((), device=data["train_images"].device)
        for step in range(steps):
            if done == warm:
                sync()
                t0 = time.monotonic()
            total += _step(torch, model, opt, data, idx[step * bs : (step + 1) * bs])
            done += 1
        losses.append(round(float(total.item()) / max(1, steps), 5))  # .item() syncs
        epoch_s.append(round(time.monotonic() - t_epoch, 3))
    sync()
    timed = done - warm
    secs = time.monotonic() - t0 if t0 is not None else None
    return {"losses": losses, "timed_batches": timed, "seconds": secs, "epoch_seconds": epoch_s}


def _baseline(
    torch: Any, data: dict[str, Any], dev: Any, cfg: dict[str, Any], task: Task = MNIST
) -> float | None:
    """One node's samples/s: the same model, batch and optimizer, alone, no DDP."""
    torch.manual_seed(int(cfg["seed"]))
    model = task.model(torch, cfg).to(dev)
    n = int(data["train_labels"].numel())
    gen = torch.Generator(device="cpu").manual_seed(int(cfg["seed"]))
    steps = int(cfg["baseline_batches"]) + int(cfg["warmup_batches"])
    bs = int(cfg["batch_size"])
    idx = torch.randint(0, n, (steps * bs,), generator=gen).to(dev)
    out = _train(torch, model, data, lambda _e: idx, {**cfg, "epochs": 1}, steps, task)
    if not out["seconds"] or out["timed_batches"] <= 0:
        return None
    return out["timed_batches"] * bs / out["seconds"]


def _pick_backend(cfg: dict[str, Any]) -> dict[str, Any]:
    """nccl on a CUDA device, gloo on CPUs (allowed only where the GPUs are declared fake,
    or when the config forces gloo)."""
    forced = str(cfg.get("backend") or "auto")
    if forced == "gloo":
        return {"ok": True, "backend": "gloo", "cuda": False, "probe": None}
    cuda = need_cuda(1, allow_cpu=bool(cfg.get("allow_cpu")) and forced != "nccl")
    if not cuda["ok"]:
        return {"ok": False, "error": cuda["error"], "probe": cuda["probe"]}
    use_cuda = not cuda.get("cpu_fallback")
    return {
        "ok": True,
        "backend": "nccl" if use_cuda else "gloo",
        "cuda": use_cuda,
        "probe": cuda["probe"],
        "cpu_fallback": bool(cuda.get("cpu_fallback")),
    }


@dataclass
class RankRun:
    """What every step of one rank's run needs after the rendezvous, carried as one value:
    its log, stderr tee, place in the job, the rendezvous store (and this payload's prefix
    of it), the fields every result starts with, when the run started, and what it trains."""

    log: Log
    tee: StderrTee
    topo: dict[str, Any]
    store: Any
    ours: Any
    base: dict[str, Any]
    t_start: float
    task: Task = MNIST


def _failed(
    base: dict[str, Any], err: str, messages: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """A FAIL result: `base`, `extra`, the error and the messages (the error alone unless
    given)."""
    return {**base, "verdict": rules.FAIL, **extra, "error": err, "messages": messages or [err]}


def measure(cfg: dict[str, Any], log: Log, task: Task = MNIST) -> dict[str, Any]:
    """One rank's run of ``task`` (MNIST unless a payload that reuses this one says)."""
    t_start = time.monotonic()
    tee = StderrTee()
    os.environ.setdefault("NCCL_DEBUG", "WARN")
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    topo = topology()
    rank, world = topo["rank"], topo["world"]
    import torch
    import torch.distributed as dist

    base: dict[str, Any] = {
        "rank": rank,
        "world_size": world,
        "node": topo["node"],
        "master": f"{topo['master']}:{topo['port']}",
        "expected_nodes": sorted(set(topo["nodes"]), key=topo["nodes"].index),
        "torch": torch.__version__,
    }
    join = datetime.timedelta(seconds=float(cfg["join_timeout_s"]))
    try:
        store = dist.TCPStore(
            topo["master"],
            topo["port"],
            world,
            rank == 0,
            timeout=join,
            wait_for_workers=False,
        )
    except RuntimeError as exc:
        err = (
            f"cannot reach the rendezvous at {topo['master']}:{topo['port']} (rank 0's node): "
            f"{exc}; check that {topo['master']} resolves on {topo['node']} (getent hosts), "
            "that rank 0 started there, and that no firewall closes the port"
        )
        return _failed(base, err)
    ours = dist.PrefixStore(KEY, store)
    ours.set(f"info/{rank}", json.dumps(_whoami(topo)))
    ours.add(f"seen/{rank}", 1)  # ``add`` reads without blocking: rank 0 names who is missing
    ours.add("joined", 1)
    ctx = RankRun(log, tee, topo, store, ours, base, t_start, task)
    if rank != 0:
        return _follow(ctx, float(cfg["join_timeout_s"]) + float(cfg["timeout_s"]))
    try:
        return _lead(cfg, ctx)
    except Exception as exc:  # the others wait for a go: tell them why there is none
        _abort(ours, topo["world"], f"{type(exc).__name__}: {exc}")
        raise


def _follow(ctx: RankRun, wait_s: float) -> dict[str, Any]:
    """A rank other than 0: wait for rank 0's go (its configuration), then train."""
    try:
        ctx.ours.set_timeout(datetime.timedelta(seconds=wait_s))
        go = json.loads(ctx.ours.get("go"))
        ctx.ours.add("read_go", 1)
    except RuntimeError as exc:
        err = f"no go from rank 0 ({ctx.topo['expected_node'][0]}) within {wait_s:.0f} s: {exc}"
        return _failed(ctx.base, err)
    if go.get("abort"):
        return _failed(ctx.base, f"rank 0 aborted the run: {go['abort']}")
    return _ddp(go["config"], ctx)


def _lead(cfg: dict[str, Any], ctx: RankRun) -> dict[str, Any]:
    """Rank 0: wait for every rank to check in (naming the ones that do not), measure one
    node alone, hand the configuration to the others, then train with them."""
    topo, ours, base = ctx.topo, ctx.ours, ctx.base
    world = topo["world"]
    deadline = time.monotonic() + float(cfg["join_timeout_s"])
    while ours.add("joined", 0) < world and time.monotonic() < deadline:
        time.sleep(0.2)
    if ours.add("joined", 0) < world:
        missing = [
            {"rank": r, "node": topo["expected_node"][r]}
            for r in range(world)
            if ours.add(f"seen/{r}", 0) == 0
        ]
        _abort(ours, world, f"rank(s) {[m['rank'] for m in missing]} missing")
        result = {
            **base,
            "nodes": len(base["expected_nodes"]),
            "nodes_requested": cfg.get("nodes_requested"),
            "missing_ranks": missing,
            "ranks": [],
        }
        return {**result, **ctx.task.judge(result, cfg)}
    picked = _pick_backend(cfg)
    if not picked["ok"]:
        _abort(ours, world, picked["error"])
        return _failed(base, picked["error"], driver_probe=picked["probe"])
    joined = [json.loads(ours.get(f"info/{r}")) for r in range(world)]
    problems = ddp_rules.loopback_binds(
        joined, picked["backend"], os.environ.get("GLOO_SOCKET_IFNAME")
    )
    if picked["backend"] == "nccl":
        problems += ddp_rules.ranks_without_gpu(joined)
    if problems:
        _abort(ours, world, "; ".join(problems))
        return _failed(base, "; ".join(problems), problems, joined=joined)
    cfg = {**cfg, "_backend": picked["backend"], "_cpu_fallback": picked.get("cpu_fallback")}
    import torch

    dev = _device(torch, picked["cuda"], topo)
    data = ctx.task.tensors(torch, cfg, dev)
    ctx.log(f"{world} ranks on {len(base['expected_nodes'])} node(s) joined; one node alone first")
    single = _baseline(torch, data, dev, cfg, ctx.task) if world > 1 else None
    ours.set("go", json.dumps({"config": cfg}))
    return _ddp(cfg, ctx, data=data, single_sps=single)


def _whoami(topo: dict[str, Any]) -> dict[str, Any]:
    """This rank as the others need to know it: its SLURM node, hostname, the address the
    hostname resolves to (what gloo binds to) and the CUDA devices its driver reports."""
    host = socket.gethostname()
    try:
        address: str | None = socket.gethostbyname(host)
    except OSError:
        address = None
    probe = cuda_driver_probe()  # the driver itself (libcuda), no torch: cheap on CPU nodes
    return {
        "rank": topo["rank"],
        "node": topo["node"],
        "hostname": host,
        "address": address,
        "cuda_devices": probe["devices"],
        "cuda_error": probe.get("error"),
    }


def _abort(ours: Any, world: int, why: str, wait_s: float = 10.0) -> None:
    """Tell the waiting ranks there is no run, and keep the store (it lives in this process)
    up until they have read it, so they report the reason instead of a reset connection."""
    ours.set("go", json.dumps({"abort": why}))
    deadline = time.monotonic() + wait_s
    joined = ours.add("joined", 0)
    while ours.add("read_go", 0) < joined - 1 and time.monotonic() < deadline:
        time.sleep(0.1)


def _device(torch: Any, cuda: bool, topo: dict[str, Any]) -> Any:
    if cuda:
        dev = torch.device("cuda", topo["local_rank"] % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(dev)
        return dev
    threads = cpu_threads()
    if threads:
        torch.set_num_threads(threads)  # the task's CPUs, not the node's
    return torch.device("cpu")


def _ddp(cfg: dict[str, Any], ctx: RankRun, **kw: Any) -> dict[str, Any]:
    """Train with the others; a process group or collective that breaks is reported with the
    warnings this rank's own stderr holds: the NCCL WARN printed before an error is usually
    its cause, and the traceback alone does not name it."""
    try:
        return _ddp_run(cfg, ctx, **kw)
    except Exception as exc:
        err = f"{type(exc).__name__}: {exc}"[:800]
        found = ddp_rules.comm_warnings(ctx.tee.text())[:MAX_WARNING_LINES]
        messages = [err, *(ddp_rules.describe_warning(w) for w in found)]
        return _failed(ctx.base, err, messages, comm_warnings=found)


def _ddp_run(
    cfg: dict[str, Any],
    ctx: RankRun,
    *,
    data: dict[str, Any] | None = None,
    single_sps: float | None = None,
) -> dict[str, Any]:
    import torch
    import torch.distributed as dist

    log, tee, topo, store, base, t_start, task = (
        ctx.log,
        ctx.tee,
        ctx.topo,
        ctx.store,
        ctx.base,
        ctx.t_start,
        ctx.task,
    )
    rank, world = topo["rank"], topo["world"]
    cuda = cfg["_backend"] == "nccl"
    dev = _device(torch, cuda, topo)
    init = {
        "store": dist.PrefixStore("mlops_ddp_pg/", store),
        "rank": rank,
        "world_size": world,
        "timeout": datetime.timedelta(seconds=float(cfg["timeout_s"])),
    }
    try:  # device_id binds NCCL to this rank's GPU at once (torch >= 2.3; gloo has no GPU)
        dist.init_process_group(cfg["_backend"], **init, **({"device_id": dev} if cuda else {}))
    except TypeError:
        dist.init_process_group(cfg["_backend"], **init)

    def barrier() -> None:
        if cuda:
            dist.barrier(device_ids=[dev.index])
        else:
            dist.barrier()

    try:
        # who took part: every rank's SLURM node and hostname
        me = {"rank": rank, "node": topo["node"], "hostname": socket.gethostname()}
        me["device"] = torch.cuda.get_device_name(dev) if cuda else "cpu"
        ranks: list[Any] = [None] * world
        dist.all_gather_object(ranks, me)
        # exactness: the sum of 1..n, and a float pattern element by element
        one = torch.tensor([rank + 1], dtype=torch.int64, device=dev)
        dist.all_reduce(one)
        sum_ok = int(one.item()) == world * (world + 1) // 2
        x = _fill(torch, int(cfg["pattern_bytes"]) // 4, rank, dev)
        dist.all_reduce(x)
        wrong = torch.tensor([_verify(torch, x, world)], dtype=torch.int64, device=dev)
        del x
        dist.all_reduce(wrong)
        # training
        data = data if data is not None else task.tensors(torch, cfg, dev)
        torch.manual_seed(int(cfg["seed"]))
        model = torch.nn.parallel.DistributedDataParallel(
            task.model(torch, cfg).to(dev), device_ids=[dev] if cuda else None
        )
        _KEPT_MODELS.append(model)
        n_train = int(data["train_labels"].numel())
        bs = int(cfg["batch_size"])
        steps = (n_train // world) // bs

        def shard(epoch: int) -> Any:
            gen = torch.Generator(device="cpu").manual_seed(int(cfg["seed"]) + epoch)
            return torch.randperm(n_train, generator=gen)[rank::world].to(dev)

        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        barrier()
        with GpuSampler() if cuda else contextlib.nullcontext() as sampler:
            trained = _train(torch, model, data, shard, cfg, steps, task)
        barrier()
        t_done = time.monotonic()
        # every rank holds rank 0's parameters, bit for bit
        flat = torch.cat([p.detach().reshape(-1) for p in model.module.parameters()])
        ref = flat.clone()
        dist.broadcast(ref, 0)
        diff = torch.tensor(
            [int((flat != ref).sum().item()), float((flat - ref).abs().max().item())],
            dtype=torch.float64,
            device=dev,
        )
        dist.all_reduce(diff, op=dist.ReduceOp.MAX)
        # accuracy: sharded evaluation, counts summed
        model.eval()
        n_test = int(data["test_labels"].numel())
        mine = torch.arange(rank, n_test, world, device=dev)
        counts = torch.zeros(2, dtype=torch.int64, device=dev)
        with torch.no_grad():
            for i in range(0, mine.numel(), 1000):
                sel = mine[i : i + 1000]
                pred = model.module(data["test_images"][sel]).argmax(1)
                counts[0] += (pred == data["test_labels"][sel]).sum()
                counts[1] += sel.numel()
        dist.all_reduce(counts)
        timed = float(trained["seconds"] or 0.0)
        sps = trained["timed_batches"] * bs * world / timed if timed > 0 else None
        # warnings each rank's own stderr holds, and its peak memory, gathered on rank 0
        seen = ddp_rules.comm_warnings(tee.text())[:MAX_WARNING_LINES]
        gathered: list[Any] = [None] * world
        mine_out = {
            "warnings": [{**w, "rank": rank} for w in seen],
            "rss": max_rss_bytes(),
            "cuda_peak": int(torch.cuda.max_memory_allocated(dev)) if cuda else None,
            "gpu_util": sampler.figures() if cuda and sampler is not None else {},
        }
        dist.all_gather_object(gathered, mine_out)
    finally:
        dist.destroy_process_group()
    total_s = round(t_done - t_start, 3)
    if rank != 0:
        return {**base, "verdict": rules.PASS, "messages": [], "role": "worker"}
    accuracy = int(counts[0].item()) / max(1, int(counts[1].item()))
    log(
        f"Training Complete: {world} ranks on {len({r['node'] for r in ranks})} node(s), "
        f"accuracy {accuracy:.4f}, {total_s:.1f} s"
    )
    result: dict[str, Any] = {
        **base,
        "role": "rank 0",
        "backend": cfg["_backend"],
        "device": ranks[0]["device"] if cuda else "cpu",
        "cpu_fallback": bool(cfg.get("_cpu_fallback")),
        "nccl": ".".join(map(str, torch.cuda.nccl.version())) if cuda else None,
        "ranks": ranks,
        "nodes": len(base["expected_nodes"]),
        "nodes_requested": cfg.get("nodes_requested"),
        "nodes_available": cfg.get("nodes_available"),
        "distinct_nodes": len({r["node"] for r in ranks}),
        "distinct_hostnames": len({r["hostname"] for r in ranks}),
        "allreduce_exact": sum_ok and int(wrong.item()) == 0,
        "allreduce_wrong_values": int(wrong.item()) + (0 if sum_ok else 1),
        "params_identical": int(diff[0].item()) == 0,
        "param_mismatches": int(diff[0].item()),
        "param_max_abs_diff": float(diff[1].item()),
        "accuracy": round(accuracy, 5),
        "test_samples": int(counts[1].item()),
        "train_samples": n_train,
        "epochs": int(cfg["epochs"]),
        "epoch_losses": trained["losses"],
        "epoch_seconds": trained["epoch_seconds"],
        "batch_size_per_rank": bs,
        "training_seconds": round(timed, 3),
        "samples_per_s": round(sps, 1) if sps else None,
        "single_node_samples_per_s": round(single_sps, 1) if single_sps else None,
        "speedup": round(sps / single_sps, 3) if sps and single_sps else None,
        "total_seconds": total_s,
        "comm_warnings": [w for per_rank in gathered for w in per_rank["warnings"]],
        "min_accuracy": float(cfg["min_accuracy"]),
        "max_seconds": float(cfg["max_seconds"]),
        "min_speedup": cfg.get("min_speedup"),
        "max_rss_bytes": max_rss_bytes(),
        "rank_max_rss_bytes": [per_rank["rss"] for per_rank in gathered],
        **_gpu_figures(gathered),
    }
    if result["speedup"] is not None:
        result["scaling_efficiency"] = round(result["speedup"] / world, 3)
    if task.finish is not None:  # rank 0's checkpoint and metrics.json, before the verdict
        result.update(task.finish(torch, model.module, cfg, result))
    return {**result, **task.judge(result, cfg)}


def _gpu_figures(gathered: list[dict[str, Any]]) -> dict[str, Any]:
    """Every rank's CUDA peak memory and GPU utilization (nvidia-smi samples while training);
    nothing on CPU ranks, None where a GPU rank had no NVML sample."""
    if all(r["cuda_peak"] is None for r in gathered):
        return {}
    means = [r["gpu_util"].get("gpu_utilization_mean_pct") for r in gathered]
    known = [m for m in means if m is not None]
    return {
        "cuda_max_memory_allocated_bytes": max(int(r["cuda_peak"] or 0) for r in gathered),
        "rank_cuda_max_memory_allocated_bytes": [r["cuda_peak"] for r in gathered],
        "rank_gpu_utilization_mean_pct": means,
        "gpu_utilization_mean_pct": round(sum(known) / len(known), 1) if known else None,
    }


def main() -> int:
    return rank_main("mnist_ddp", measure, DEFAULTS)


def rank_main(
    kind: str, measure_fn: Callable[[dict[str, Any], Log], dict[str, Any]], defaults: dict[str, Any]
) -> int:
    """One rank of a DDP payload (this one's, cifar_ddp.py's). Only rank 0 reports through
    Pipes: the others drop its variables before starting.

    Every rank leaves with ``os._exit`` once its work is done and (rank 0) Pipes has closed:
    torch 1.13's TCPStore client thread spins at full CPU once rank 0's store server has closed
    (its socket left in CLOSE-WAIT), and a normal interpreter exit joins that thread, or the
    gloo group's worker threads in the DDP model's destructor, forever. Seen on the multi-node
    sandbox (2 ranks on gpu-01/gpu-02): first rank 1, then rank 0, held the job until its
    time limit."""
    if os.environ.get("SLURM_PROCID", "0") != "0":
        for name in PIPES_ENV:
            os.environ.pop(name, None)
    code = run(kind, measure_fn, defaults)
    atexit._run_exitfuncs()  # the stderr tee's close: its tail still reaches the job log
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


if __name__ == "__main__":
    sys.exit(main())
