"""What the smoke payloads share: configuration, a CUDA probe that needs no torch, the JSON
result line, and Dagster Pipes reporting when a Pipes context is present.

Runs ON THE HPC SIDE (a SLURM job, the login node, or a GPU machine by hand) with the
standard library; torch is imported by the payloads inside their functions, dagster_pipes
only when DAGSTER_PIPES_CONTEXT is set. No mlops_assets import: the orchestrator ships
core/smoke_rules.py and core/parse/nvidia_smi.py next to this file as ``mlops_smoke_rules.py``
and ``mlops_nvidia_smi.py``.

Configuration, later wins: the payload's defaults, ``--config FILE.json``, ``--set key=json``
and, under Pipes, the extras the orchestrator sends.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _shipped(name: str, source: str) -> Any:
    """A standard-library-only core module: shipped next to the payloads on the HPC side as
    `name`, or loaded by path from the source tree (no package import)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core", source)
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module


rules = _shipped("mlops_smoke_rules", "smoke_rules.py")
# the one nvidia-smi CSV parser (core/parse/nvidia_smi.py): [N/A] and friends become None here too
smi = _shipped("mlops_nvidia_smi", os.path.join("parse", "nvidia_smi.py"))

Log = Callable[[str], None]
RESULT_KEY = "mlops_result"
NO_CUDA = rules.NO_CUDA


def stderr_log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """``--config FILE`` (a JSON object) and ``--set key=<json or text>``, in order."""
    config = dict(defaults)
    it = iter(argv)
    for arg in it:
        if arg == "--config":
            with open(next(it), encoding="utf-8") as fh:
                loaded = json.load(fh)
            if not isinstance(loaded, dict):
                raise SystemExit("--config must hold a JSON object")
            config.update(loaded)
        elif arg == "--set":
            key, _, raw = next(it).partition("=")
            try:
                config[key] = json.loads(raw)
            except json.JSONDecodeError:
                config[key] = raw
        else:
            raise SystemExit(f"unknown argument {arg!r} (use --config FILE or --set key=value)")
    return config


def slurm_facts() -> dict[str, Any]:
    env = os.environ
    return {
        "host": socket.gethostname(),
        "slurm_job_id": env.get("SLURM_JOB_ID"),
        "slurm_node": env.get("SLURMD_NODENAME"),
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
        "python": sys.executable,
        # set by Apptainer inside `apptainer exec`: the image file the payload really ran in
        # (APPTAINER_CONTAINER is the unpacked root when the SIF is extracted, not mounted)
        "container": env.get("APPTAINER_NAME") or env.get("SINGULARITY_NAME") or "",
    }


def gres_facts() -> dict[str, Any]:
    """The GPUs SLURM allocated to this job, as the job sees them (whether or not a driver
    answers): CUDA_VISIBLE_DEVICES' entries and SLURM_GPUS_ON_NODE."""
    env = os.environ
    visible = env.get("CUDA_VISIBLE_DEVICES") or ""
    on_node = env.get("SLURM_GPUS_ON_NODE", "")
    return {
        "gres_gpus_visible": len([g for g in visible.split(",") if g.strip()]),
        "slurm_gpus_on_node": int(on_node) if on_node.isdigit() else None,
    }


def cpu_threads() -> int | None:
    """The CPUs SLURM gave this job (SLURM_CPUS_PER_TASK); None outside SLURM."""
    raw = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else None


class TrainingStart(NamedTuple):
    """A one-GPU training payload's start (one_training_device) and the fields its result
    closes with (`result`): one place, so the MNIST and SFT smokes start and report alike."""

    failed: dict[str, Any] | None  # a FAIL result when no GPU may be used (then no torch)
    torch: Any
    dev: Any
    use_cuda: bool
    cpu_fallback: bool  # the catalog's CPU fallback was taken
    started: float  # time.monotonic() before torch is imported: total_seconds count from here

    def result(
        self, metrics: dict[str, Any], judged: dict[str, Any], total_s: float, out_dir: str
    ) -> dict[str, Any]:
        """The metrics, then where the model went, how torch ran and the verdict; the payload
        adds its own thresholds after these."""
        return {
            **metrics,
            "total_seconds": total_s,
            "output_dir": out_dir,
            "cpu_fallback": self.cpu_fallback,
            "torch_threads": int(self.torch.get_num_threads()),
            "max_rss_bytes": max_rss_bytes(),
            "verdict": judged["verdict"],
            "messages": judged["messages"],
        }


def one_training_device(cfg: dict[str, Any]) -> TrainingStart:
    """A one-GPU training payload's start: a FAIL result when no GPU may be used, else torch,
    the device and whether the catalog's CPU fallback was taken. On that fallback torch takes
    the job's CPUs, not the node's (neighbours keep theirs); seeded from `seed`."""
    started = time.monotonic()
    cuda = need_cuda(1, allow_cpu=bool(cfg.get("allow_cpu")))
    if not cuda["ok"]:
        failed = {
            "verdict": rules.FAIL,
            "device": None,
            "driver_probe": cuda["probe"],
            "error": cuda["error"],
            "messages": [cuda["error"]],
        }
        return TrainingStart(failed, None, None, False, False, started)
    import torch

    use_cuda = not cuda.get("cpu_fallback") and torch.cuda.is_available()
    dev = torch.device("cuda", 0) if use_cuda else torch.device("cpu")
    threads = cpu_threads()
    if not use_cuda and threads:
        torch.set_num_threads(threads)
    torch.manual_seed(int(cfg["seed"]))
    return TrainingStart(None, torch, dev, use_cuda, bool(cuda.get("cpu_fallback")), started)


def publish_dir(out_dir: str, fill: Callable[[str], None]) -> None:
    """A job's output folder whole or not at all: `fill` writes into a temporary sibling,
    which then takes the name, so a killed job leaves nothing that looks complete; a requeued
    job's earlier copy is kept as `<out_dir>.old-<pid>`."""
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(out_dir)}.tmp-{os.getpid()}")
    os.makedirs(tmp, exist_ok=True)
    fill(tmp)
    if os.path.exists(out_dir):
        os.rename(out_dir, f"{out_dir}.old-{os.getpid()}")
    os.rename(tmp, out_dir)


def publish_model(
    out_dir: str, metrics: dict[str, Any], write_model: Callable[[str], None]
) -> None:
    """A trained model's folder: its files (`write_model` writes them into the folder it is
    given), then metrics.json, published whole (publish_dir)."""

    def fill(tmp: str) -> None:
        write_model(tmp)
        write_json(os.path.join(tmp, "metrics.json"), metrics)

    publish_dir(out_dir, fill)


def write_json(path: str, data: dict[str, Any]) -> None:
    """Sorted, indented JSON, written beside and renamed into place (never half a file)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


class GpuSampler:
    """nvidia-smi's utilization.gpu, sampled every `interval` s while training on CUDA (NVML
    answers through nvidia-smi; none is present on CPU, and then nothing is reported)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.exe = shutil.which("nvidia-smi")
        self.samples: list[float] = []
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        index = (os.environ.get("CUDA_VISIBLE_DEVICES") or "0").split(",")[0]
        while not self._stop.wait(self.interval):
            try:
                out = subprocess.run(
                    [
                        str(self.exe),
                        "-i",
                        index,
                        "--query-gpu=utilization.gpu",
                        "--format=csv,noheader,nounits",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=False,
                ).stdout.strip()
                self.samples.append(float(out.splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                continue

    def __enter__(self) -> GpuSampler:
        if self.exe:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def figures(self) -> dict[str, Any]:
        """Mean and max of the samples; None where nvidia-smi gave none (no NVML here)."""
        if not self.samples:
            return {"gpu_utilization_mean_pct": None, "gpu_utilization_max_pct": None}
        return {
            "gpu_utilization_mean_pct": round(sum(self.samples) / len(self.samples), 1),
            "gpu_utilization_max_pct": max(self.samples),
            "gpu_utilization_samples": len(self.samples),
        }


def max_rss_bytes() -> int:
    """This process's peak RSS: sacct has none where jobacct_gather measures nothing
    (the sandbox)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def cuda_driver_probe() -> dict[str, Any]:
    """Ask the NVIDIA driver itself (libcuda through ctypes) how many devices there are.

    Needs no torch, so a job without the driver says 'no CUDA device' as the measured fact,
    whatever nvidia-smi stand-ins or fake GRES device files claim."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return {
            "devices": 0,
            "error": (
                f"{NO_CUDA}: libcuda.so.1 cannot be loaded (no NVIDIA driver on "
                f"{socket.gethostname()}: {exc})"
            ),
        }
    rc = lib.cuInit(0)
    if rc != 0:
        return {"devices": 0, "error": f"{NO_CUDA}: cuInit returned CUDA error {rc}"}
    count, version = ctypes.c_int(0), ctypes.c_int(0)
    lib.cuDeviceGetCount(ctypes.byref(count))
    lib.cuDriverGetVersion(ctypes.byref(version))
    out: dict[str, Any] = {
        "devices": count.value,
        "driver_cuda_version": f"{version.value // 1000}.{version.value % 1000 // 10}",
    }
    if count.value == 0:
        out["error"] = (
            f"{NO_CUDA}: the driver reports 0 devices "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
        )
    return out


NVIDIA_SMI_FIELDS = (
    "index,name,uuid,pci.bus_id,driver_version,memory.total,temperature.gpu,power.draw,"
    "clocks.sm,clocks.max.sm"
)


def nvidia_smi_inventory(fields: str = NVIDIA_SMI_FIELDS) -> dict[str, Any]:
    """nvidia-smi's view, if it is installed: recorded as what it printed, never trusted
    over the driver probe (a stand-in can print anything). Values it prints instead of a
    figure ([N/A], [Not Supported]) are None, by the platform's one CSV parser."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"present": False}
    try:
        proc = subprocess.run(
            [exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"present": True, "error": str(exc)}
    out: dict[str, Any] = {
        "present": True,
        "exit_code": proc.returncode,
        "gpus": [],
        "stderr": proc.stderr.strip()[-300:],
    }
    if proc.returncode == 0:
        try:
            out["gpus"] = smi.parse_query_csv(proc.stdout, fields.split(","))
        except ValueError as exc:  # not the CSV asked for ("No devices were found", wrong columns)
            out["error"] = str(exc)
    return out


def emit(kind: str, result: dict[str, Any]) -> None:
    """The one JSON result line on stdout."""
    print(json.dumps({RESULT_KEY: kind, **result}, sort_keys=True, default=str), flush=True)


def metadata_of(result: dict[str, Any]) -> dict[str, Any]:
    """Flat scalars for Dagster metadata (numbers plot in the UI), plus the whole result as JSON."""
    meta: dict[str, Any] = {
        k: v for k, v in result.items() if isinstance(v, bool | int | float | str) or v is None
    }
    meta["result"] = {"raw_value": result, "type": "json"}
    return meta


def run(
    kind: str, measure: Callable[[dict[str, Any], Log], dict[str, Any]], defaults: dict[str, Any]
) -> int:
    """Measure, print the result line, report through Pipes if present. Exit 0 on PASS/WARN,
    1 on FAIL. Under Pipes a passing result is a materialization; a failing one is a custom
    message the orchestrator turns into the failure's text and metadata (no materialization:
    a failed smoke must not look fresh)."""
    config = parse_args(sys.argv[1:], defaults)
    if not os.environ.get("DAGSTER_PIPES_CONTEXT"):
        result = _measure(kind, measure, config, stderr_log)
        emit(kind, result)
        return 0 if result["verdict"] != rules.FAIL else 1
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        config.update(dict(pipes.extras or {}))
        result = _measure(kind, measure, config, pipes.log.info)
        emit(kind, result)
        if result["verdict"] == rules.FAIL:
            for msg in result.get("messages") or [result.get("error", "failed")]:
                pipes.log.error(str(msg))
            pipes.report_custom_message({RESULT_KEY: kind, "result": result})
        else:
            pipes.report_asset_materialization(metadata=metadata_of(result))
    return 0 if result["verdict"] != rules.FAIL else 1


def _measure(
    kind: str,
    measure: Callable[[dict[str, Any], Log], dict[str, Any]],
    config: dict[str, Any],
    log: Log,
) -> dict[str, Any]:
    started = time.monotonic()
    facts = slurm_facts()
    try:
        result = measure(config, log)
    except Exception as exc:  # the result line must say what broke, not only a traceback
        result = {
            "verdict": rules.FAIL,
            "error": f"{type(exc).__name__}: {exc}",
            "messages": [f"{type(exc).__name__}: {exc}"],
        }
    result.setdefault("messages", [])
    if "error" not in result and result["verdict"] == rules.FAIL and result["messages"]:
        result["error"] = "; ".join(str(m) for m in result["messages"])[:800]
    return {**facts, **result, "payload_seconds": round(time.monotonic() - started, 3)}


def need_cuda(min_devices: int, allow_cpu: bool = False) -> dict[str, Any]:
    """The driver probe, as the payloads use it: ``{"ok": bool, "probe": ..., "error": ...}``."""
    probe = cuda_driver_probe()
    if probe["devices"] >= min_devices:
        return {"ok": True, "probe": probe}
    if allow_cpu:
        return {"ok": True, "probe": probe, "cpu_fallback": True}
    err = (
        probe.get("error")
        or f"{NO_CUDA}: need {min_devices} CUDA devices, the driver reports {probe['devices']}"
    )
    if probe["devices"] and probe["devices"] < min_devices:
        err = f"need {min_devices} CUDA devices, the driver reports {probe['devices']}"
    return {"ok": False, "probe": probe, "error": err}
