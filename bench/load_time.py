"""Code-location load time against a bare `import dagster`, measured side by side in one
run (alternating, so machine noise hits both), reported as a ratio of medians.

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


def once(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=ENV)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    once(BARE), once(LOAD)  # warm the page cache for both, and write the project's bytecode
    bare, load = [], []
    for _ in range(args.runs):
        bare.append(once(BARE))
        load.append(once(LOAD))
    result = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs": args.runs,
        "python": platform.python_version(),
        "bare_import_dagster_median_s": round(statistics.median(bare), 3),
        "load_definitions_median_s": round(statistics.median(load), 3),
        "ratio": round(statistics.median(load) / statistics.median(bare), 3),
        "goal_ratio": 1.3,
    }
    out = Path(__file__).parent / "results" / "load_time.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
