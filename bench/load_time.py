"""Code-location load time against a bare `import dagster`, measured side by side in one
run (alternating, so machine noise hits both), reported as a ratio of medians.

Two figures per run: `ratio`, the whole process (start-up, load, interpreter teardown) as a
`python -c` that a CLI call or a run worker pays; and `in_process_ratio`, the time from the
first statement to the loaded graph, without start-up or teardown, which is what a code
server pays before it answers. They differ because the load freezes its heap for the
collector (definitions.py): the frozen objects are also skipped by the collections at
interpreter teardown, which a bare `import dagster` still runs over Dagster's whole heap.

    .venv/bin/python bench/load_time.py [--runs 15]

Writes bench/results/load_time.json and prints a line for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

BARE = "import dagster"
LOAD = "from mlops_assets.definitions import defs; defs().resolve_asset_graph()"


# Both sides run from bytecode, as an installed package does (pip compiles it; so does the
# image build): with PYTHONDONTWRITEBYTECODE set, an editable checkout would recompile the
# project's sources on every run while dagster's come from site-packages' .pyc files.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


TIMED = "import time; _t = time.perf_counter(); {}; print(time.perf_counter() - _t)"

# Where the load's own time goes, in the same process: Dagster, the project's modules, the
# domains' definitions (built when `defs()` runs), and Dagster resolving the graph.
PHASES = """
import json, time
t0 = time.perf_counter()
import dagster
t1 = time.perf_counter()
import mlops_assets.definitions as d
t2 = time.perf_counter()
built = d.defs()
t3 = time.perf_counter()
graph = built.resolve_asset_graph()
t4 = time.perf_counter()
print(json.dumps({
    "import_dagster_s": t1 - t0, "import_project_s": t2 - t1, "build_definitions_s": t3 - t2,
    "resolve_graph_s": t4 - t3, "assets": len(graph.get_all_asset_keys()),
    "checks": len(graph.asset_check_keys),
}))
"""


def phases(runs: int) -> dict[str, float | int]:
    """Medians of the load's phases over `runs` fresh processes."""
    docs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", PHASES], check=True, capture_output=True, text=True, env=ENV
            ).stdout.splitlines()[-1]
        )
        for _ in range(runs)
    ]
    return {
        k: (
            docs[0][k]
            if isinstance(docs[0][k], int)
            else round(statistics.median(x[k] for x in docs), 3)
        )
        for k in docs[0]
    }


def once(code: str) -> tuple[float, float]:
    """(whole process, in-process) seconds."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", TIMED.format(code)],
        check=True,
        capture_output=True,
        text=True,
        env=ENV,
    )
    return time.perf_counter() - start, float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    once(BARE), once(LOAD)  # warm the page cache for both, and write the project's bytecode
    bare, load = [], []
    for _ in range(args.runs):
        bare.append(once(BARE))
        load.append(once(LOAD))

    def median(xs: list[tuple[float, float]], i: int) -> float:
        return statistics.median(x[i] for x in xs)

    result = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": args.runs,
        "python": platform.python_version(),
        "bare_import_dagster_median_s": round(median(bare, 0), 3),
        "load_definitions_median_s": round(median(load, 0), 3),
        "ratio": round(median(load, 0) / median(bare, 0), 3),
        "in_process_bare_median_s": round(median(bare, 1), 3),
        "in_process_load_median_s": round(median(load, 1), 3),
        "in_process_ratio": round(median(load, 1) / median(bare, 1), 3),
        "goal_ratio": 1.3,
        "phases": phases(max(3, args.runs // 3)),
    }
    out = Path(__file__).parent / "results" / "load_time.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
