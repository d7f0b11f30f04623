"""defs/registry without services: the budget verdicts its checks give from a
materialization's metadata, and the checks judging the latest materialization alone."""

from __future__ import annotations

import dagster as dg

from mlops_assets.core.checks import Severity
from mlops_assets.defs.registry.definitions import (
    COPY_CHECK,
    MINIO,
    REGISTER_CHECK,
    REGISTERED,
    budget_checks,
    budget_outcome,
)
from mlops_assets.platform import active


def test_budget_outcome_from_metadata() -> None:
    ok = budget_outcome(
        {"register_seconds": 3.4, "register_budget_s": 60.0},
        REGISTERED,
        "register_seconds",
        "register_budget_s",
        "registration",
    )
    assert ok.passed and ok.measured == 3.4 and ok.threshold == 60.0 and ok.unit == "s"
    over = budget_outcome(
        {"copy_seconds": 130.0, "copy_budget_s": 120.0},
        MINIO,
        "copy_seconds",
        "copy_budget_s",
        "copy to MinIO",
    )
    assert not over.passed and "OVER its budget of 120 s" in over.detail
    none = budget_outcome({}, MINIO, "copy_seconds", "copy_budget_s", "copy to MinIO")
    assert not none.passed and none.severity == Severity.WARN
    assert none.hint == f"materialize {MINIO}"


def test_checks_alone_judge_the_latest_materialization() -> None:
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            REGISTERED, metadata={"register_seconds": 2.5, "register_budget_s": 60.0}
        )
    )
    result = dg.materialize(
        [
            dg.AssetSpec(REGISTERED),
            dg.AssetSpec(MINIO),
            budget_checks(active().catalog),
        ],
        instance=instance,
        raise_on_error=False,
        selection=dg.AssetSelection.checks(
            dg.AssetCheckKey(dg.AssetKey(REGISTERED), REGISTER_CHECK),
            dg.AssetCheckKey(dg.AssetKey(MINIO), COPY_CHECK),
        ),
    )
    found = {e.check_name: (e.passed, e.severity) for e in result.get_asset_check_evaluations()}
    assert found == {
        REGISTER_CHECK: (True, dg.AssetCheckSeverity.WARN),
        COPY_CHECK: (False, dg.AssetCheckSeverity.WARN),
    }
