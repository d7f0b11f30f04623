"""Where the fixed cost of one CLI command goes, on the sandbox: `validate --select network`,
a no-op `materialize --select dataset_cifar10` (scratch catalog, as bench/staging.py does, so
the real dataset is never touched) and a no-op materialize of both container images.

Each command runs in a fresh process (as a user runs it), after one warm-up run that makes
the materialization a no-op; in a second kind of run, a driver wraps the functions that are
the phases with timers (the union of each phase's call intervals: probes run in threads side
by side; phases nest: SSH set-up and payload shipping happen inside the run). Plain wall
times, without the timers, are taken alternately beside a bare `python -c "import dagster"`,
the goal's baseline (`validate --select network` within 2x of it plus the probes' own time).

    .venv/bin/python bench/fixed_cost.py [--rounds 3] [--only network,dataset,images]

Writes bench/results/fixed_cost.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEEGFS = Path("/mnt/sandbox-beegfs")
TRAINING_USER = "mlops"

# (label, module, attribute path): each is wrapped with a timer in the child process; a
# phase's figure is the union of its calls' intervals (probes run in threads, side by side)
PHASES = [
    ("catalog load and validation", "mlops_assets.platform", "active"),
    ("definitions build", "mlops_assets.definitions", "defs"),
    ("selection", "mlops_assets.headless", "select"),
    ("instance creation", "mlops_assets.headless", "instance"),
    ("run (execute_in_process), all of it", "mlops_assets.headless", "execute"),
    ("  SSH set-up (connect, auth)", "mlops_assets.core.transport.hostexec", "SshRunner._open"),
    ("  payload shipping check", "mlops_assets.resources.hpc_pipes", "ship_payloads"),
    ("  Pipes session (HPC payload)", "mlops_assets.resources.hpc_pipes", "LoginPipesClient.run"),
    ("  Pipes session (SLURM job)", "mlops_assets.resources.slurm_pipes", "SlurmPipesClient.run"),
    ("  asset checks' probes", "mlops_assets.checking", "run_check"),
    ("report rendering", "mlops_assets.core.report", "render"),
]

# Times the imports itself, then wraps each phase's function with an interval recorder
# (first one active counts: nested calls of the same phase are not counted twice).
DRIVER = r"""
import functools, importlib, json, sys, threading, time
t0 = time.perf_counter()
import dagster
from mlops_assets import cli
t_import = time.perf_counter() - t0
phases = json.loads(sys.argv[1])
spans = {label: [] for label, _, _ in phases}
lock = threading.Lock()
def timed(label, fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        start = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            with lock:
                spans[label].append((start, time.perf_counter()))
    return wrapper
for label, module, attr in phases:
    mod = importlib.import_module(module)
    owner, _, name = attr.rpartition(".")
    target = getattr(mod, owner) if owner else mod
    setattr(target, name, timed(label, getattr(target, name)))
try:
    code = cli.main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
total = time.perf_counter() - t0
def union(iv):
    iv, out, end = sorted(iv), 0.0, float("-inf")
    for a, b in iv:
        if b > end:
            out += b - max(a, end)
            end = b
    return out
out = {"imports (dagster + mlops_assets.cli)": round(t_import, 3)}
out.update({label: round(union(v), 3) for label, v in spans.items()})
print("@@fixed-cost " + json.dumps({"code": code, "total_s": round(total, 3), "phases": out}))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME",)}
    env["PYTHONPATH"] = str(ROOT)
    return env


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, env=_env(), check=False)
    took = time.perf_counter() - start
    if res.returncode not in (0, 1):
        raise RuntimeError(f"{argv[3:]} exited {res.returncode}: {res.stderr[-500:]}")
    return took


def profiled(args: list[str]) -> dict[str, Any]:
    res = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(PHASES), *args],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("@@fixed-cost ")), "")
    if not line:
        raise RuntimeError(f"{args}: no profile: {res.stderr[-800:]}")
    return dict(json.loads(line[len("@@fixed-cost ") :]))


@contextlib.contextmanager
def scratch_catalog() -> Iterator[Path]:
    """The shipped catalog with the sandbox BeeGFS root moved to a scratch dir."""
    from mlops_assets.platform import active

    scratch = BEEGFS / "jobs" / f"bench-fixed-{uuid.uuid4().hex[:8]}"
    root = scratch / "beegfs"
    root.mkdir(parents=True)
    shutil.chown(scratch, TRAINING_USER, TRAINING_USER)
    shutil.chown(root, TRAINING_USER, TRAINING_USER)
    try:
        text = Path(active().path).read_text(encoding="utf-8")
        cat = scratch / "platform.yaml"
        cat.write_text(text.replace(str(BEEGFS), str(root)), encoding="utf-8")
        yield cat
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def measure(name: str, cli_args: list[str], rounds: int) -> dict[str, Any]:
    cli = [sys.executable, "-m", "mlops_assets.cli", *cli_args]
    bare = [sys.executable, "-c", "import dagster"]
    wall(cli)  # warm-up: makes the materialization a no-op, fills the page cache
    walls: list[float] = []
    bares: list[float] = []
    profiles: list[dict[str, Any]] = []
    for i in range(rounds):
        for side in (cli, bare) if i % 2 == 0 else (bare, cli):
            (walls if side is cli else bares).append(wall(side))
        profiles.append(profiled(cli_args))
    phases = {
        label: round(statistics.median(p["phases"][label] for p in profiles), 3)
        for label in profiles[0]["phases"]
    }
    return {
        "command": "mlops-assets " + " ".join(cli_args),
        "wall_median_s": round(statistics.median(walls), 3),
        "bare_import_dagster_median_s": round(statistics.median(bares), 3),
        "timed_total_median_s": round(statistics.median(p["total_s"] for p in profiles), 3),
        "phases_cumulative_s": phases,
        "exit_codes": sorted({p["code"] for p in profiles}),
        "samples_s": {"wall": [round(x, 3) for x in walls], "bare": [round(x, 3) for x in bares]},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="network,dataset,images")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from mlops_assets.platform import active, load_sandbox_env

    load_sandbox_env()
    which = set(args.only.split(","))
    path = ROOT / "bench" / "results" / "fixed_cost.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    fmt = ["--format", "json"]
    if "network" in which:
        result["validate_network"] = measure(
            "network", ["validate", "--select", "network", *fmt], args.rounds
        )
    if "dataset" in which:
        with scratch_catalog() as cat:
            result["noop_dataset"] = measure(
                "dataset",
                ["materialize", "--catalog", str(cat), "--select", "dataset_cifar10", *fmt],
                args.rounds,
            )
            result["noop_dataset"]["command"] += " (catalog: scratch copy, BeeGFS root moved)"
    if "images" in which:
        catalog = active().catalog
        missing = [n for n in catalog.containers if not Path(catalog.container_path(n)).is_file()]
        if missing:  # a first build takes minutes and belongs to the staging benchmarks
            result["noop_images"] = {"skipped": f"images not staged: {missing}"}
        else:
            keys = [catalog.container_key(n) for n in catalog.containers]
            result["noop_images"] = measure(
                "images", ["materialize", "--select", *keys, *fmt], args.rounds
            )
    result["measured"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["goals"] = {"validate_network_vs_bare": 2.0, "noop_dataset_s": 2.0, "noop_images_s": 2.0}
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
