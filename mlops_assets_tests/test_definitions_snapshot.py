"""A snapshot of the definitions (assets, groups, checks, jobs, schedules, sensors), committed
so that a change to the graph shows in review as a diff of this file.

The graph changed on purpose? Regenerate and commit the file:

    MLOPS_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest
    mlops_assets_tests/test_definitions_snapshot.py
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import dagster as dg

from mlops_assets.definitions import defs
from mlops_assets.platform import active

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.txt"
UPDATE_ENV = "MLOPS_UPDATE_SNAPSHOT"
HERE = f"{Path(__file__).parent.name}/{Path(__file__).name}"


def _keys(keys: object) -> str:
    names = sorted(k.to_user_string() for k in keys)  # type: ignore[attr-defined]
    return ", ".join(names) if names else "-"


def render(d: dg.Definitions, profile: str) -> str:
    """One line per definition, sorted, with what a reviewer needs to judge a change."""
    graph = d.resolve_asset_graph()
    out = [
        "# mlops_assets definitions, catalog profile "
        f"{profile}; regenerate: {UPDATE_ENV}=1 pytest {HERE}"
    ]
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    out.append(f"\n[assets] {len(keys)}")
    for key in keys:
        node = graph.get(key)
        kind = "materializable" if node.is_materializable else "external"
        parts = [f"group={node.group_name}", kind, f"kinds={','.join(sorted(node.kinds)) or '-'}"]
        pdef, cond = node.partitions_def, node.automation_condition
        if pdef is not None:
            parts.append(f"partitions={getattr(pdef, 'name', None) or type(pdef).__name__}")
        if cond is not None:
            parts.append(f"automation={cond.get_label() or type(cond).__name__}")
        if node.freshness_policy is not None:
            parts.append("freshness")
        parts.append(f"deps={_keys(node.parent_keys)}")
        out.append(f"{key.to_user_string()}  " + "  ".join(parts))
    checks = sorted(graph.asset_check_keys, key=lambda c: (c.asset_key.to_user_string(), c.name))
    out.append(f"\n[checks] {len(checks)}")
    for ck in checks:
        spec = graph.get_check_spec(ck)
        meta = spec.metadata or {}
        severity = getattr(meta.get("mlops/severity"), "value", meta.get("mlops/severity")) or "-"
        light = getattr(meta.get("mlops/light"), "value", meta.get("mlops/light")) or "-"
        extra = [f"severity={severity}", f"light={light}"]
        if spec.blocking:
            extra.append("blocking")
        if spec.additional_deps:
            extra.append(f"after={_keys(dep.asset_key for dep in spec.additional_deps)}")
        out.append(f"{ck.asset_key.to_user_string()}:{ck.name}  " + "  ".join(extra))
    jobs = sorted(
        (j for j in d.resolve_all_job_defs() if not j.name.startswith("__")), key=lambda j: j.name
    )
    out.append(f"\n[jobs] {len(jobs)}")
    for job in jobs:
        layer = job.asset_layer
        out.append(
            f"{job.name}  assets={_keys(layer.selected_asset_keys)}  "
            f"checks={len(layer.asset_graph.asset_check_keys)}"
        )
    schedules = sorted(d.schedules or [], key=lambda s: s.name)
    out.append(f"\n[schedules] {len(schedules)}")
    for s in schedules:
        out.append(
            f"{s.name}  cron={s.cron_schedule}  job={s.job_name}  default={s.default_status.value}"
        )
    sensors = sorted(d.sensors or [], key=lambda s: s.name)
    out.append(f"\n[sensors] {len(sensors)}")
    for s in sensors:
        out.append(
            f"{s.name}  type={s.sensor_type.value}  interval={s.minimum_interval_seconds}s  "
            f"default={s.default_status.value}"
        )
    out.append(f"\n[resources] {', '.join(sorted(d.resources or {}))}")
    return "\n".join(out) + "\n"


def test_definitions_match_the_committed_snapshot() -> None:
    loaded = active()
    text = render(defs(), loaded.profile)
    if os.environ.get(UPDATE_ENV):
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(text, encoding="utf-8")
    committed = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    if text != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{SNAPSHOT.name} (committed)",
                tofile="loaded now",
            )
        )
        raise AssertionError(
            f"The definitions differ from {SNAPSHOT}. If the change is intended, regenerate with\n"
            f"  {UPDATE_ENV}=1 .venv/bin/python -m pytest {HERE}\n"
            f"and commit the file.\n\n{diff}"
        )
