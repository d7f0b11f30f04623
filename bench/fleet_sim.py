"""Per-node GPU probes at fleet scale, by simulation: the orchestration side of
`gpu_nvidia_smi_matches_gres_per_node` and of the per-node `--nv` check over 10, 100 and
1,000 simulated nodes; and the node sensor's tick (core/node_watch: sinfo parsed, diffed
against the last cursor) at 1,000 and 10,000 nodes.

The nodes are played by `SimulatedFleetRunner`, a STAND-IN runner (core/transport/standin.py)
behind the same Runner interface as the SSH runner: it answers sinfo, scontrol and the
labelled fleet step in SLURM's shapes, each node printing a RECORDED output (nvidia-smi on a
2x H200 node; NV_PROBE on an H200). Timed: our side only (steps built, output parsed, every
node judged), the stand-in's own time subtracted. 1% of the nodes are busy and one is taken
between sinfo and the step (a race), so the busy path and the halving are in the figure.

With `--sandbox`, one real fleet step on the sandbox's node is timed too (SLURM's own cost
of a step), and the wall time of 1,000 nodes is modelled from it: sequential one-step-per-
node (the old way) against batches of FLEET_BATCH nodes, FLEET_PARALLEL at a time. A model,
labelled as such: a real step over many nodes also waits for its slowest node.

    .venv/bin/python bench/fleet_sim.py [--rounds 5] [--sandbox]

Writes bench/results/fleet_sim.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.core import node_watch
from mlops_assets.core.probes import containers, hpc, node_step
from mlops_assets.core.transport.hostexec import LocalRunner
from mlops_assets.core.transport.standin import SimulatedFleetRunner, uniform_fleet

FIX = Path(__file__).parent.parent / "mlops_assets_tests" / "core" / "fixtures"
GOAL_S = 10.0
TICK_GOAL_S = 1.0  # a node-sensor tick (sinfo parse + diff) at 10,000 nodes


def _recorded(name: str) -> str:
    lines = (FIX / name).read_text().splitlines(keepends=True)
    return "".join(ln for ln in lines if not ln.startswith("#@"))


SMI = _recorded("nvidia_smi_query_h200x2_580.159.04.txt")
NV = _recorded("apptainer/nv_probe_h200_bound.txt")


def _fleet(count: int, gpus: int, output: str) -> SimulatedFleetRunner:
    nodes = uniform_fleet(count, gpus=gpus)
    for n in nodes[::100]:  # 1% busy: every GPU held by a job
        n.state, n.gpus_used = "mixed", gpus
    taken = {nodes[count // 2 + 1].name} if count > 2 else set()
    return SimulatedFleetRunner(nodes, lambda node, cmd: (0, output, ""), taken=taken)


def orchestration_s(count: int, which: str) -> tuple[float, int, int]:
    """(our seconds, srun steps, nodes probed) for one check over ``count`` nodes."""
    catalog = load_catalog(profile="sandbox").catalog
    if which == "nvidia_smi":
        runner = _fleet(count, 2, SMI)
        start = time.perf_counter()
        out = hpc.nvidia_smi_per_node(runner, catalog)
    else:
        runner = _fleet(count, 1, NV)
        start = time.perf_counter()
        out = containers.nv_exposes_gpus_per_node(runner, "/c/x.sif", "gpu")
    wall = time.perf_counter() - start
    assert out.passed, out  # healthy recorded nodes: a failed verdict means a broken bench
    return (
        wall - runner.spent_s,
        int(out.extra["srun_steps"] or 0),
        int(out.extra["nodes_probed"] or 0),
    )


def sandbox_step_s(rounds: int) -> float:
    """SLURM's own cost of one labelled fleet step on the sandbox's node (`true` as the
    command), median of ``rounds``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run = node_step.run_on_nodes(LocalRunner(), "gpu", ["true"])
        times.append(time.perf_counter() - start)
        assert run.probed and not run.busy, run
    return statistics.median(times)


def node_tick_s(count: int) -> float:
    """One node-sensor tick at `count` nodes: parse sinfo, decode the last cursor, diff. Every
    seventh node comes back from a drain, so the diff has work to report."""
    drained = "|".join(["drained", "64", "512000", "gpu:8", "bad DIMM"])
    lines = [
        f"gpu{i:05d}|gpu|" + ("idle|64|512000|gpu:8|none" if i % 7 else drained)
        for i in range(count)
    ]
    cursor = node_watch.encode_cursor(node_watch.snapshot_from_sinfo("\n".join(lines), "gpu"))
    resumed = "\n".join(lines).replace(drained, "idle|64|512000|gpu:8|none")
    start = time.perf_counter()
    current = node_watch.snapshot_from_sinfo(resumed, "gpu")
    found = node_watch.changes(node_watch.decode_cursor(cursor), current)
    elapsed = time.perf_counter() - start
    assert len(current) == count and len(found) == len(range(0, count, 7)), len(found)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sandbox", action="store_true")
    args = ap.parse_args()
    result: dict[str, object] = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": args.rounds,
        "runner": "SimulatedFleetRunner (stand-in; recorded per-node outputs)",
        "batch": node_step.FLEET_BATCH,
        "parallel_steps": node_step.FLEET_PARALLEL,
        "goal_orchestration_1000_s": GOAL_S,
    }
    for which in ("nvidia_smi", "nv"):
        for count in (10, 100, 1000):
            runs = [orchestration_s(count, which) for _ in range(args.rounds)]
            result[f"{which}_{count}_orchestration_s"] = round(
                statistics.median(r[0] for r in runs), 4
            )
            result[f"{which}_{count}_srun_steps"] = runs[0][1]
            result[f"{which}_{count}_nodes_probed"] = runs[0][2]
    result["goal_node_tick_10000_s"] = TICK_GOAL_S
    result["node_tick_10000_s"] = round(
        statistics.median(node_tick_s(10_000) for _ in range(args.rounds)), 4
    )
    result["node_tick_1000_s"] = round(
        statistics.median(node_tick_s(1_000) for _ in range(args.rounds)), 4
    )
    out = Path(__file__).parent / "results" / "fleet_sim.json"
    old = json.loads(out.read_text()) if out.exists() else {}
    if not args.sandbox:  # the sandbox figures are kept, with the date they were measured
        keep = ("sandbox_measured", "sandbox_one_step_s", "model_1000_sequential_s")
        result.update({k: old[k] for k in (*keep, "model_1000_fleet_s") if k in old})
    if args.sandbox:
        result["sandbox_measured"] = result["measured"]
        step = sandbox_step_s(args.rounds)
        steps = math.ceil(1000 / node_step.FLEET_BATCH)
        result["sandbox_one_step_s"] = round(step, 3)
        result["model_1000_sequential_s"] = round(1000 * step, 1)
        result["model_1000_fleet_s"] = round(
            math.ceil(steps / node_step.FLEET_PARALLEL) * step
            + float(result["nvidia_smi_1000_orchestration_s"]),  # type: ignore[arg-type]
            2,
        )
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
