"""`sandbox up` after `sandbox down` (cold start of every service and of the 4-node SLURM
cluster, packages already installed) and a full `validate` on the nodes it brings up.

Issue 16 asks for both figures. No goal is set: the rows are information. Needs root and the
sandbox installed once (`mlops-assets sandbox up`); the sandbox is left up.

    .venv/bin/python bench/sandbox_up.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SANDBOX = ROOT / "deploy" / "sandbox" / "sandbox.sh"
OUT = ROOT / "bench" / "results" / "sandbox_up.json"


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    return time.perf_counter() - start, res


def node_names() -> list[str]:
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True, check=False
    ).stdout
    return sorted({line.split()[0] for line in out.splitlines() if line.strip()})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    ups, validates, summaries = [], [], []
    for _ in range(args.rounds):
        _, down = timed(["bash", str(SANDBOX), "down"])
        if down.returncode != 0:
            sys.exit(f"sandbox down failed ({down.returncode}): {down.stderr[-2000:]}")
        up_s, up = timed(["bash", str(SANDBOX), "up"])
        if up.returncode != 0:
            sys.exit(f"sandbox up failed ({up.returncode}): {up.stderr[-3000:]}")
        ups.append(up_s)
        val_s, val = timed([sys.executable, "-m", "mlops_assets.cli", "validate"])
        validates.append(val_s)
        summaries.append(next((x for x in val.stdout.splitlines() if "Summary" in x), "?"))
    result = {
        "measured": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": args.rounds,
        "nodes": node_names(),
        "sandbox_up_after_down_median_s": round(statistics.median(ups), 1),
        "validate_median_s": round(statistics.median(validates), 1),
        "validate_summary": summaries[-1],
        "samples_s": {
            "up": [round(x, 1) for x in ups],
            "validate": [round(x, 1) for x in validates],
        },
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
