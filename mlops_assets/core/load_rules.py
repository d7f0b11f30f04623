"""Does staged data load? The catalog's expectations become a spec for payloads/load_check.py,
which runs on the HPC side next to the data (the bytes never come here); its JSON verdict
becomes a check Outcome that names every file that does not load (core/probes/staging.py
runs it). Pure: no I/O, no Dagster imports."""

from __future__ import annotations

import json
from typing import Any

from mlops_assets.catalog.schema import Catalog, Dataset, HubSource, Model
from mlops_assets.core import staging_plan
from mlops_assets.core.checks import Outcome, Scalar

PAYLOAD = "load_check.py"
TIMEOUT_S = 900


def dataset_spec(catalog: Catalog, d: Dataset) -> dict[str, Any]:
    src = d.source
    if isinstance(src, HubSource):
        plan = staging_plan.hub_plan(catalog, "dataset", src.repo, src.revision, src.allow_patterns)
        root, _ = staging_plan.staged_location(catalog, plan)
        return {"kind": "hub_dataset", "root": root, "config": src.config, "splits": dict(d.splits)}
    plan = staging_plan.torchvision_plan(catalog, d)
    return {
        "kind": "torchvision",
        "root": plan["target"],
        "dataset_class": src.dataset_class,
        "md5": plan["extracted_md5"],
        "splits": dict(d.splits),
    }


def model_spec(catalog: Catalog, m: Model) -> dict[str, Any]:
    plan = staging_plan.hub_plan(catalog, "model", m.repo, m.revision, m.allow_patterns)
    root, _ = staging_plan.staged_location(catalog, plan)
    return {
        "kind": "model",
        "root": root,
        "parameters": m.parameters,
        "tolerance": m.parameters_tolerance,
        "non_parameter_globs": list(m.non_parameter_tensors),
    }


def _expected(spec: dict[str, Any]) -> str:
    if spec["kind"] == "model":
        p = spec.get("parameters")
        return (
            f"{p} parameters ±{spec['tolerance']:.1%}"
            if p
            else "config, tokenizer and weights parse"
        )
    splits = spec.get("splits") or {}
    return ", ".join(f"{k}={v}" for k, v in splits.items()) or "every data file opens"


def load_outcome(verdict: dict[str, Any], spec: dict[str, Any], what: str) -> Outcome:
    """The payload's verdict as a check: measured is the number of problems, the detail
    names each file and what is wrong with it, the extra metadata says who read the files."""
    problems = [str(p) for p in verdict.get("problems") or []]
    measured = verdict.get("measured") or {}
    extra: dict[str, Scalar] = {"reader": str(verdict.get("reader", ""))}
    if verdict.get("note"):
        extra["note"] = str(verdict["note"])
    if "parameters" in measured:
        extra["parameters"] = int(measured["parameters"])
        extra["tensors"] = int(measured.get("tensors", 0))
    if "rows_per_split" in measured:
        extra["rows_per_split"] = json.dumps(measured["rows_per_split"], sort_keys=True)
    if problems:
        shown = "; ".join(problems[:6]) + (
            f" (+{len(problems) - 6} more)" if len(problems) > 6 else ""
        )
        detail = shown
    else:
        detail = f"loads: {json.dumps(measured, sort_keys=True)}"[:400]
    return Outcome(
        not problems,
        len(problems),
        0,
        f"load problems (expected {_expected(spec)})",
        f"re-materialize {what} (the manifest check says whether the bytes changed); if it still "
        "fails, the source or the catalog's expectation (splits/parameters) is wrong",
        detail=detail,
        extra=extra,
    )
