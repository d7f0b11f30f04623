"""Judge what a site already runs (nccl-tests' `all_reduce_perf`, `nvidia-smi -q` or its query
CSV) by the same rules and catalog GPU profiles the smoke jobs and node checks use, without
running anything: `mlops-assets judge KIND FILE`."""

from __future__ import annotations

from typing import Any

from mlops_assets.catalog.schema import Catalog

KINDS = ("all-reduce-perf", "nvidia-smi-q", "nvidia-smi-csv")


def judge(kind: str, text: str, catalog: Catalog) -> dict[str, Any]:
    """{verdict: PASS|WARN|FAIL, messages, ...figures}. ValueError when the text is not that
    tool's output (the CLI exits 2 and says so)."""
    if kind == "all-reduce-perf":
        from mlops_assets.core.parse.nccl_tests import judge_all_reduce_perf, parse_all_reduce_perf

        profiles = {k: p.model_dump() for k, p in catalog.smoke.gpu_profiles.items()}
        return judge_all_reduce_perf(parse_all_reduce_perf(text), profiles)
    if kind in ("nvidia-smi-q", "nvidia-smi-csv"):
        from mlops_assets.core.parse import nvidia_smi

        failure = nvidia_smi.classify_failure(text)
        if failure is not None:
            return {"verdict": "FAIL", "messages": [failure.describe()], "cause": failure.meaning}
        gpus = (
            nvidia_smi.parse_nvidia_smi_q(text)
            if kind == "nvidia-smi-q"
            else nvidia_smi.parse_query_gpu(text, None)
        )
        health = nvidia_smi.judge_gpu_health(
            gpus, where="input", min_driver=catalog.hpc.gpus.min_driver_version
        )
        return {
            "verdict": health.verdict,
            "messages": health.problems + health.unjudged,
            "gpus": health.fact,
        }
    raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
