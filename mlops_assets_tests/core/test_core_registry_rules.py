"""core/registry_rules.py: the trained model's tags, alias moves, promotion and budgets."""

from __future__ import annotations

import pytest

from mlops_assets.catalog.schema import TrainedModel
from mlops_assets.core import registry_rules as rr
from mlops_assets.resources.shipping import code_digest

METRICS = {
    "epochs": 2,
    "loss": 0.21,
    "accuracy": 0.938,
    "training_time_seconds": 41.0,
    "batch_size": 128,
    "lr": 0.001,
    "device": "cpu",
    "epoch_losses": [0.5, 0.21],
}


def test_missing_digests_are_tagged_unknown_and_named() -> None:
    tags = rr.provenance_tags(
        "a" * 64,
        "b" * 64,
        dataset=None,
        container=rr.NONE,
        code="c" * 64,
        output_dir="/beegfs/models/mnist/job-7",
        slurm_job_id=None,
    )
    assert tags[rr.TAG_DATASET] == rr.UNKNOWN and tags[rr.TAG_SLURM_JOB] == rr.UNKNOWN
    assert tags[rr.TAG_CONTAINER] == "none" and tags[rr.TAG_CODE] == "c" * 64
    assert rr.unknown_digests(tags) == [rr.TAG_DATASET]


def test_params_and_metrics_split_and_skip_non_numbers() -> None:
    params, figures = rr.params_and_metrics({**METRICS, "loss": "nan?", "accuracy": True})
    assert params == {
        "epochs": "2",
        "batch_size": "128",
        "lr": "0.001",
        "device": "cpu",
    }
    assert figures == {"training_time_seconds": 41.0}, "a string or a bool is not a metric"


def test_promotion_uses_the_smokes_rule_and_total_time() -> None:
    ok = rr.judge_promotion(METRICS, min_accuracy=0.9, max_seconds=180, total_seconds=44.0)
    assert ok.passed and ok.messages == ()
    low = rr.judge_promotion(METRICS, min_accuracy=0.99999, max_seconds=180)
    assert not low.passed and "not above 0.99999" in low.messages[0]
    slow = rr.judge_promotion(METRICS, min_accuracy=0.9, max_seconds=180, total_seconds=200.0)
    assert not slow.passed and "took 200.0 s" in slow.messages[0]


def test_first_passing_version_is_candidate_and_production() -> None:
    moves = rr.alias_moves({}, "1", promote=True)
    assert moves.set == {"candidate": "1", "production": "1"}


def test_failing_version_is_candidate_only_and_production_stays() -> None:
    moves = rr.alias_moves({"candidate": "1", "production": "1"}, "2", promote=False)
    assert moves.set == {"candidate": "2"}


def test_new_production_keeps_the_previous_one_as_rollback() -> None:
    moves = rr.alias_moves({"candidate": "2", "production": "1"}, "3", promote=True)
    assert moves.set == {"candidate": "3", "rollback": "1", "production": "3"}
    assert moves.describe() == "@candidate -> 3, @rollback -> 1, @production -> 3"


def test_alias_moves_are_idempotent_and_use_the_catalog_names() -> None:
    assert rr.alias_moves({"candidate": "3", "production": "3"}, "3", promote=True).set == {}
    moves = rr.alias_moves(
        {"prod": "1"}, "2", promote=True, candidate="cand", production="prod", rollback="prev"
    )
    assert moves.set == {"cand": "2", "prev": "1", "prod": "2"}


def test_unchanged_model_is_the_newest_version_with_its_sha() -> None:
    versions = {
        "1": {rr.TAG_MODEL_SHA: "x"},
        "2": {rr.TAG_MODEL_SHA: "y"},
        "10": {rr.TAG_MODEL_SHA: "x"},
        "3": {},
    }
    assert rr.newest_with_sha(versions, "x") == "10", "numeric, not string order"
    assert rr.newest_with_sha(versions, "z") is None


def test_budget_and_object_keys() -> None:
    assert rr.Budget(59.9, 60).met and not rr.Budget(60.0, 60).met
    assert "OVER its budget of 120 s" in rr.Budget(130, 120).describe("copy")
    assert rr.object_keys("/mnist/", "4", ("model.pt", "metrics.json")) == {
        "model.pt": "mnist/4/model.pt",
        "metrics.json": "mnist/4/metrics.json",
    }


def test_catalog_rejects_equal_aliases() -> None:
    with pytest.raises(ValueError, match="aliases must differ"):
        TrainedModel(registered_name="m", experiment="e", rollback_alias="production")


def test_code_digest_is_stable_and_per_payload() -> None:
    assert code_digest("mnist_train.py") == code_digest("mnist_train.py")
    assert code_digest("mnist_train.py") != code_digest("mnist_ddp.py")
    assert len(code_digest("mnist_train.py")) == 64
