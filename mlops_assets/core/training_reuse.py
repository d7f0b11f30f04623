"""When a training asset may stand on its last real training instead of training again
(issue 19: a re-materialization with unchanged inputs retrains nothing). Pure: the asset
gathers the inputs' digests and its latest materialization; this says yes, or names why not.

A reused result is still the cluster's evidence, so it is bounded: only within
`smoke.reuse_training_within_minutes` of the run that really trained (`trained_at`, carried
forward by every reuse), so a Dagster freshness window measured from the reuse is at most
that much kinder than the training itself."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

INPUTS = "training_inputs"  # metadata: {input: digest} of the run that really trained
TRAINED_AT = "trained_at"  # metadata: unix time that run ended (carried forward by reuse)
REUSED = "reused"  # metadata: True when this materialization trained nothing


def digest(value: Any) -> str:
    """sha256 of `value` as canonical JSON (sorted keys): the same config, the same digest."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Decision:
    reuse: bool
    reason: str


def decide(
    inputs: Mapping[str, str | None],
    previous: Mapping[str, Any] | None,
    *,
    now: float,
    within_s: float,
    retrain: bool = False,
) -> Decision:
    """Reuse the previous training only if every input has a known digest equal to the one
    it trained on, and it trained less than `within_s` ago. `previous`: the metadata of the
    asset's latest materialization (None: there is none)."""
    if retrain:
        return Decision(False, "retrain asked (run config retrain: true)")
    if within_s <= 0:
        return Decision(False, "reuse is off (smoke.reuse_training_within_minutes: 0)")
    unknown = sorted(k for k, v in inputs.items() if not v)
    if unknown:
        return Decision(
            False,
            f"no digest recorded for {', '.join(unknown)} (materialize it in this instance): "
            "cannot tell whether it changed",
        )
    if not previous:
        return Decision(False, "no earlier training recorded")
    before = previous.get(INPUTS)
    if not isinstance(before, Mapping):
        return Decision(False, "the earlier training recorded no input digests")
    job = previous.get("slurm_job_id", "?")
    changed = sorted(k for k in set(inputs) | set(before) if inputs.get(k) != before.get(k))
    if changed:
        return Decision(False, f"changed since job {job}: {', '.join(changed)}")
    try:
        trained_at = float(previous[TRAINED_AT])
    except (KeyError, TypeError, ValueError):
        return Decision(False, "the earlier training recorded no time")
    age = now - trained_at
    if age < 0 or age > within_s:
        return Decision(
            False,
            f"job {job} trained {age / 60:.0f} min ago, past the "
            f"{within_s / 60:g} min a training is reused",
        )
    return Decision(True, f"inputs unchanged since job {job}, trained {age / 60:.1f} min ago")


def reused_metadata(
    previous: Mapping[str, Any], reason: str, outputs_sha256: Mapping[str, str]
) -> dict[str, Any]:
    """The previous training's figures, marked as reused (and why), with the output files'
    sha256 as read now."""
    return {
        **previous,
        REUSED: True,
        "reuse_reason": reason,
        "outputs_sha256": dict(outputs_sha256),
    }
