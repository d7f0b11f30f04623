"""SLURM probe: the smallest job that proves the submission path end to end (script, GRES
allocation, shared filesystem, Pipes messages back), with no torch and no GPU needed.

Runs ON THE HPC SIDE inside a SLURM job. Config (defaults, --config/--set, Pipes extras):
`sleep_s` (seconds to run), `exit_code` (exit with this code after reporting), `message`.
Prints one JSON result line; under Pipes a zero exit code is a materialization, a non-zero one
a custom message with the result (no materialization).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from smoke_common import emit, metadata_of, parse_args, rules, slurm_facts, stderr_log

DEFAULTS: dict[str, Any] = {"sleep_s": 0.0, "exit_code": 0, "message": "slurm probe"}


def measure(cfg: dict[str, Any], log: Any) -> dict[str, Any]:
    started = time.monotonic()
    log(
        f"{cfg['message']}: job {os.environ.get('SLURM_JOB_ID')} on "
        f"{os.environ.get('SLURMD_NODENAME')}, sleeping {cfg['sleep_s']} s"
    )
    time.sleep(float(cfg["sleep_s"]))
    code = int(cfg["exit_code"])
    gres = os.environ.get("CUDA_VISIBLE_DEVICES") or ""
    return {
        **slurm_facts(),
        "gres_gpus_visible": len([g for g in gres.split(",") if g.strip()]),
        "slept_s": round(time.monotonic() - started, 3),
        "exit_code": code,
        "verdict": rules.PASS if code == 0 else rules.FAIL,
        "error": None if code == 0 else f"probe asked to exit {code}",
    }


def main() -> int:
    cfg = parse_args(sys.argv[1:], DEFAULTS)
    if not os.environ.get("DAGSTER_PIPES_CONTEXT"):
        result = measure(cfg, stderr_log)
        emit("slurm_probe", result)
        return int(result["exit_code"])
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        cfg.update(dict(pipes.extras or {}))
        result = measure(cfg, pipes.log.info)
        emit("slurm_probe", result)
        if result["exit_code"]:
            pipes.log.error(result["error"])
            pipes.report_custom_message({"mlops_result": "slurm_probe", "result": result})
        else:
            pipes.report_asset_materialization(metadata=metadata_of(result))
    return int(result["exit_code"])


if __name__ == "__main__":
    sys.exit(main())
