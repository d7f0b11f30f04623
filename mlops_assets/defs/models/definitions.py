"""Pretrained models: the Hugging Face cache copy on BeeGFS, its MinIO copy, and its MLflow
registration, in that lineage order; one set per catalog entry."""

from __future__ import annotations

from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, Model
from mlops_assets.checking import asset_checks, external
from mlops_assets.core import staging_rules
from mlops_assets.core.checks import CheckSpec, Outcome, ProbeFailed, Severity, bound
from mlops_assets.platform import active

GROUP = "models"


def registered_version(mlflow: Any, model: Model) -> Outcome:
    """A registered version tagged with the pinned revision proves which bytes it is."""
    query = f"name='{model.registered_name}'"
    import urllib.parse

    ans = mlflow.get("/api/2.0/mlflow/model-versions/search?" + urllib.parse.urlencode({"filter": query}))
    if ans.status != 200:
        raise ProbeFailed(f"model-versions/search answered {ans.status}", "check the mlflow checks first")
    versions = ans.json().get("model_versions", [])
    tagged = [
        v["version"] for v in versions
        if any(t.get("key") == "revision" and t.get("value") == model.revision for t in v.get("tags", []))
    ]
    return Outcome(
        bool(tagged), len(tagged), 1, f"versions of {model.registered_name} tagged revision={model.revision[:12]}",
        "materialize the model's MLflow registration",
        detail=f"versions: {', '.join(tagged)}" if tagged else f"{len(versions)} versions, none at this revision",
    )


def _in_cache(c: Any, m: Model) -> Outcome:
    return staging_rules.path_present(
        c.hpc.runner(), staging_rules.model_marker(c.catalog, m), "snapshot config.json",
        "stage it: materialize the model asset (HF_HOME must be on BeeGFS)",
    )


def _in_bucket(c: Any, name: str, m: Model) -> Outcome:
    return staging_rules.bucket_objects(c.s3.client(), m.bucket, staging_rules.model_prefix(name, m))


def specs(catalog: Catalog) -> list[CheckSpec]:
    E = Severity.ERROR
    out: list[CheckSpec] = []
    for name, m in catalog.models.items():
        out += [
            CheckSpec(
                f"model_{name}", f"model_{name}_in_hf_cache", E, "Jobs load it with HF_HUB_OFFLINE=1 from BeeGFS.",
                bound(_in_cache, m),
                ("hpc",),
            ),
            CheckSpec(
                f"model_{name}_minio", f"model_{name}_minio_objects_present", E, "KServe pulls the model from here.",
                bound(_in_bucket, name, m),
                ("s3",),
            ),
            CheckSpec(
                f"model_{name}_mlflow", f"model_{name}_mlflow_version_registered", E, "Deployments refer to registered versions.",
                bound(lambda c, m: registered_version(c.mlflow, m), m),
                ("mlflow",),
            ),
        ]
    return out


def build(catalog: Catalog) -> dg.Definitions:
    assets = []
    for name, m in catalog.models.items():
        fresh = m.freshness or catalog.default_freshness
        pinned = f"{m.repo}@{m.revision[:12]}"
        assets += [
            external(f"model_{name}", group=GROUP, kinds=["huggingface", "beegfs"], description=f"{pinned} in the HF cache on BeeGFS (~{m.approx_size_mb:g} MB).", deps=["beegfs_layout"], metadata={"repo": m.repo, "revision": m.revision}, freshness=fresh),
            external(f"model_{name}_minio", group=GROUP, kinds=["minio"], description=f"Copy of {pinned} in s3://{m.bucket}/{name}/{m.revision}/.", deps=[f"model_{name}", f"bucket_{m.bucket}"], freshness=fresh),
            external(f"model_{name}_mlflow", group=GROUP, kinds=["mlflow"], description=f"Registered model `{m.registered_name}` at {pinned}.", deps=[f"model_{name}_minio", "mlflow"], freshness=fresh),
        ]
    return dg.Definitions(assets=assets, asset_checks=asset_checks(specs(catalog), name="models_checks"))


defs = build(active().catalog)
