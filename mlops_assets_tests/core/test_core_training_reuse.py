"""core/training_reuse: when a training asset reuses its last training, and the reason it
names when it does not (the asset's side, with a real SLURM job, is in
test_training_reuse_sandbox.py)."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_assets.core import training_reuse as tr

NOW = 1_800_000_000.0
INPUTS = {"code": "c1", "config": "k1", "dataset_mnist": "d1", "container_x": "s1"}
HOUR = 3600.0


def previous(**over: Any) -> dict[str, Any]:
    base = {
        tr.INPUTS: dict(INPUTS),
        tr.TRAINED_AT: NOW - 600,
        "slurm_job_id": "412",
        "accuracy": 0.97,
    }
    return {**base, **over}


def test_unchanged_inputs_within_the_window_reuse_naming_the_job() -> None:
    d = tr.decide(INPUTS, previous(), now=NOW, within_s=2 * HOUR)
    assert d.reuse is True
    assert d.reason == "inputs unchanged since job 412, trained 10.0 min ago"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"dataset_mnist": "d2"}, "dataset_mnist"),
        ({"code": "c2", "config": "k2"}, "code, config"),
        ({"container_x": "s2"}, "container_x"),
    ],
)
def test_a_changed_input_trains_and_names_it(change: dict[str, str], named: str) -> None:
    d = tr.decide({**INPUTS, **change}, previous(), now=NOW, within_s=2 * HOUR)
    assert d.reuse is False and d.reason == f"changed since job 412: {named}"


def test_an_input_added_or_dropped_counts_as_changed() -> None:
    d = tr.decide({**INPUTS, "dataset_extra": "e"}, previous(), now=NOW, within_s=2 * HOUR)
    assert not d.reuse and d.reason.endswith(": dataset_extra")
    fewer = {k: v for k, v in INPUTS.items() if k != "container_x"}
    d = tr.decide(fewer, previous(), now=NOW, within_s=2 * HOUR)
    assert not d.reuse and d.reason.endswith(": container_x")


def test_an_unknown_digest_never_reuses_and_says_what_to_materialize() -> None:
    d = tr.decide({**INPUTS, "dataset_mnist": None}, previous(), now=NOW, within_s=2 * HOUR)
    assert not d.reuse
    assert "no digest recorded for dataset_mnist" in d.reason and "materialize" in d.reason


def test_retrain_off_switch_and_first_run_train() -> None:
    assert tr.decide(INPUTS, previous(), now=NOW, within_s=HOUR, retrain=True).reason == (
        "retrain asked (run config retrain: true)"
    )
    assert "reuse is off" in tr.decide(INPUTS, previous(), now=NOW, within_s=0).reason
    assert tr.decide(INPUTS, None, now=NOW, within_s=HOUR).reason == "no earlier training recorded"
    assert tr.decide(INPUTS, {}, now=NOW, within_s=HOUR).reuse is False


def test_a_training_recorded_before_reuse_existed_trains() -> None:
    d = tr.decide(INPUTS, {"slurm_job_id": "7"}, now=NOW, within_s=HOUR)
    assert not d.reuse and d.reason == "the earlier training recorded no input digests"
    d = tr.decide(INPUTS, previous(**{tr.TRAINED_AT: None}), now=NOW, within_s=HOUR)
    assert not d.reuse and d.reason == "the earlier training recorded no time"


def test_an_old_training_or_one_from_the_future_trains() -> None:
    d = tr.decide(INPUTS, previous(**{tr.TRAINED_AT: NOW - 3 * HOUR}), now=NOW, within_s=2 * HOUR)
    assert not d.reuse and d.reason == (
        "job 412 trained 180 min ago, past the 120 min a training is reused"
    )
    # a clock that went backwards cannot vouch for the age
    assert not tr.decide(
        INPUTS, previous(**{tr.TRAINED_AT: NOW + 60}), now=NOW, within_s=2 * HOUR
    ).reuse


def test_reused_metadata_keeps_the_figures_and_the_first_training_time() -> None:
    prev = previous()
    meta = tr.reused_metadata(prev, "why", {"/m/model.pt": "ab"})
    assert meta["accuracy"] == 0.97 and meta["slurm_job_id"] == "412"
    assert meta[tr.TRAINED_AT] == prev[tr.TRAINED_AT]  # the age of the evidence is not reset
    assert meta[tr.REUSED] is True and meta["reuse_reason"] == "why"
    assert meta["outputs_sha256"] == {"/m/model.pt": "ab"}


def test_digest_is_canonical() -> None:
    assert tr.digest({"a": 1, "b": [1, 2]}) == tr.digest({"b": [1, 2], "a": 1})
    assert tr.digest({"a": 1}) != tr.digest({"a": 2})
