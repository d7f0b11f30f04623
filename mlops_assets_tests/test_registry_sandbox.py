"""The registry group end to end on the sandbox: a real MNIST training job (SLURM, the
BeeGFS stand-in), then `model_mnist_registered` (the real MLflow 3 server, artifacts on
SeaweedFS through it) and `model_mnist_minio` (SeaweedFS standing in for MinIO), materialized
in-process with the catalog's resources and one ephemeral instance.

Each test registers under its own model name and bucket prefix (a catalog copy), so runs do
not see each other's versions. Proves: a version with the sha256, digest tags, params and
metrics, @candidate and @production; the S3 objects with the same bytes; an unchanged model
makes no run, version or upload; a model that misses the bar gets @candidate only; a second
passing model takes @production and the first keeps @rollback."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core import registry_rules as rr
from mlops_assets.core.probes import trained_model
from mlops_assets.platform import active
from mlops_assets_tests.conftest import (
    check_evaluations,
    forget_registered,
    materialize_with,
    materialized_meta,
    sandbox_s3,
)

pytestmark = pytest.mark.sandbox


_MADE: list[Catalog] = []


@pytest.fixture(scope="module", autouse=True)
def _forget_made() -> Iterator[None]:
    """Every name this module registered goes at its end (MLflow, S3)."""
    yield
    for cat in _MADE:
        forget_registered(cat)


def _catalog(**mnist: Any) -> Catalog:
    """The active catalog with its own model name and prefix (and any other registry field)."""
    cat = active().catalog
    tag = uuid.uuid4().hex[:8]
    cfg = cat.registry.mnist.model_copy(
        update={"registered_name": f"mnist-test-{tag}", "prefix": f"mnist-test-{tag}", **mnist}
    )
    made = cat.model_copy(update={"registry": cat.registry.model_copy(update={"mnist": cfg})})
    _MADE.append(made)
    return made


def _materialize(
    assets: list[Any], cat: Catalog, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    return materialize_with(cat, instance, assets, ("hpc", "s3", "mlflow"))


_meta = materialized_meta


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {name: ev.passed for name, ev in check_evaluations(result).items()}


def _train(instance: dg.DagsterInstance, cat: Catalog) -> dict[str, Any]:
    from mlops_assets.defs.smoke.definitions import smoke_assets

    asset = next(a for a in smoke_assets(cat) if a.key.to_user_string() == "smoke_mnist_training")
    return _meta(_materialize([asset], cat, instance), "smoke_mnist_training")


def _registry(cat: Catalog) -> list[dg.AssetsDefinition]:
    from mlops_assets.defs.registry.definitions import minio_asset, registered_asset

    return [registered_asset(cat), minio_asset(cat)]


@pytest.fixture(scope="module")
def trained(
    mnist_trained: tuple[dg.DagsterInstance, dict[str, Any]],
) -> tuple[dg.DagsterInstance, dict[str, Any]]:
    return mnist_trained


def test_register_copy_and_unchanged_rerun(
    trained: tuple[dg.DagsterInstance, dict[str, Any]],
) -> None:
    instance, train = trained
    cat = _catalog()
    cfg = cat.registry.mnist
    out = Path(train["output_dir"])
    model_sha = hashlib.sha256((out / "model.pt").read_bytes()).hexdigest()
    metrics = json.loads((out / "metrics.json").read_text())

    from mlops_assets.defs.registry.definitions import budget_checks

    first = _materialize([*_registry(cat), budget_checks(cat)], cat, instance)
    reg = _meta(first, "model_mnist_registered")
    minio = _meta(first, "model_mnist_minio")
    assert reg["created"] is True and reg["model_sha256"] == model_sha
    assert reg["aliases"] == "candidate, production" and reg["production"] is True
    assert reg["register_seconds"] < cfg.register_budget_s
    assert minio["copy_seconds"] < cfg.copy_budget_s
    assert _checks(first) == {"registration_within_budget": True, "copy_within_budget": True}
    print(
        f"registered version {reg['version']} in {reg['register_seconds']} s, copied in "
        f"{minio['copy_seconds']} s"
    )

    now = trained_model.state(cat.cloud.services.mlflow.url, cfg.registered_name)
    assert list(now.tags) == [reg["version"]]
    tags = now.tags[reg["version"]]
    assert tags[rr.TAG_MODEL_SHA] == model_sha
    assert tags[rr.TAG_CODE] == train["code_digest"] and len(tags[rr.TAG_CODE]) == 64
    assert tags[rr.TAG_CONTAINER] == rr.NONE, "the sandbox's smoke runs in no container"
    assert tags[rr.TAG_DATASET] == rr.UNKNOWN, (
        "dataset_mnist was staged through the CLI, in another instance: not known here"
    )
    assert now.aliases == {"candidate": reg["version"], "production": reg["version"]}

    from mlops_assets.core.probes.model_registry import mlflow_client

    with mlflow_client(cat.cloud.services.mlflow.url) as client:
        run = client.get_run(tags[trained_model.TAG_RUN])
        assert run.data.params["epochs"] == str(metrics["epochs"])
        assert run.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert arts == {"model.pt", "metrics.json"}

    s3 = sandbox_s3()
    key = f"{cfg.prefix}/{reg['version']}/model.pt"
    obj = s3.get_object(Bucket=cfg.bucket, Key=key)
    assert hashlib.sha256(obj["Body"].read()).hexdigest() == model_sha
    assert obj["Metadata"]["sha256"] == model_sha
    assert minio["uploaded"] == "model.pt, metrics.json"

    again = _materialize(_registry(cat), cat, instance)
    reg2 = _meta(again, "model_mnist_registered")
    minio2 = _meta(again, "model_mnist_minio")
    assert reg2["created"] is False and reg2["version"] == reg["version"]
    assert minio2["uploaded"] == "" and minio2["bytes_uploaded"] == 0
    assert list(trained_model.state(cat.cloud.services.mlflow.url, cfg.registered_name).tags) == [
        reg["version"]
    ], "no new version"
    with mlflow_client(cat.cloud.services.mlflow.url) as client:
        exp = client.get_experiment_by_name(cfg.experiment)
        runs = client.search_runs(
            [exp.experiment_id], filter_string=f"tags.model_sha256 = '{model_sha}'"
        )
        mine = [r for r in runs if r.info.run_id == tags[trained_model.TAG_RUN]]
        assert len(mine) == 1


def test_a_model_below_the_bar_is_candidate_only_and_a_new_one_keeps_rollback(
    trained: tuple[dg.DagsterInstance, dict[str, Any]],
) -> None:
    instance, _ = trained
    failing = _catalog(production_min_accuracy=0.99999)
    res = _materialize(_registry(failing)[:1], failing, instance)
    reg = _meta(res, "model_mnist_registered")
    assert reg["created"] is True and reg["production"] is False
    assert reg["aliases"] == "candidate"
    assert "not above 0.99999" in reg["promotion_detail"]
    url = failing.cloud.services.mlflow.url
    now = trained_model.state(url, failing.registry.mnist.registered_name)
    assert now.aliases == {"candidate": reg["version"]}, "no production alias"

    # a passing model, then a different passing one (3 epochs: other bytes)
    passing = _catalog()
    first = _meta(_materialize(_registry(passing)[:1], passing, instance), "model_mnist_registered")
    longer = active().catalog.smoke.model_copy(update={"mnist_epochs": 3})
    _train(instance, active().catalog.model_copy(update={"smoke": longer}))
    second = _meta(
        _materialize(_registry(passing)[:1], passing, instance), "model_mnist_registered"
    )
    assert second["created"] is True and second["version"] != first["version"]
    now = trained_model.state(url, passing.registry.mnist.registered_name)
    assert now.aliases == {
        "candidate": second["version"],
        "production": second["version"],
        "rollback": first["version"],
    }
