"""Pretrained models: the Hugging Face cache copy on BeeGFS (materialized on the HPC side
through Pipes), its MinIO copy, and its MLflow registration, in that lineage order; one set
per catalog entry."""

from __future__ import annotations

from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, Model
from mlops_assets.checking import asset_checks, external, freshness_policy
from mlops_assets.core import staging_rules
from mlops_assets.core.checks import CheckSpec, Outcome, ProbeFailed, Severity, bound
from mlops_assets.core.hpc_rules import directories
from mlops_assets.platform import active

GROUP = "models"
POOL = "hub_downloads"


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


def plan(catalog: Catalog, m: Model) -> dict[str, Any]:
    return staging_rules.hub_plan(catalog, "model", m.repo, m.revision, m.allow_patterns)


def _verifies(c: Any, name: str, m: Model) -> Outcome:
    from mlops_assets.resources.hpc_pipes import ship_payloads

    runner = c.hpc.runner()
    where = ship_payloads(runner, directories(c.catalog)["scripts"])
    root, mpath = staging_rules.staged_location(c.catalog, plan(c.catalog, m))
    return staging_rules.verify_staged(runner, c.catalog.hpc.python, where, root, mpath, f"model_{name}")


def _size(c: Any, name: str, m: Model) -> Outcome:
    _, mpath = staging_rules.staged_location(c.catalog, plan(c.catalog, m))
    return staging_rules.staged_size(c.hpc.runner(), mpath, m.approx_size_mb, f"model_{name}")


def _in_bucket(c: Any, name: str, m: Model) -> Outcome:
    return staging_rules.bucket_objects(c.s3.client(), m.bucket, staging_rules.model_prefix(name, m))


def specs(catalog: Catalog) -> list[CheckSpec]:
    E, W = Severity.ERROR, Severity.WARN
    out: list[CheckSpec] = []
    for name, m in catalog.models.items():
        out += [
            CheckSpec(
                f"model_{name}", f"model_{name}_manifest_verifies", E,
                "The snapshot in the HF cache on BeeGFS still matches its manifest (jobs load it with HF_HUB_OFFLINE=1); names what is missing, extra or changed.",
                bound(_verifies, name, m), ("hpc",), blocking=True, light=False,
                hint=f"re-materialize model_{name}",
            ),
            CheckSpec(
                f"model_{name}", f"model_{name}_size_within_bounds", W,
                "The staged bytes are within a factor of 4 of the catalog's approx_size_mb.",
                bound(_size, name, m), ("hpc",),
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


def _model_asset(catalog: Catalog, name: str, m: Model) -> dg.AssetsDefinition:
    extras = plan(catalog, m)
    root, _ = staging_rules.staged_location(catalog, extras)

    @dg.asset(
        name=f"model_{name}",
        group_name=GROUP,
        kinds={"huggingface", "beegfs"},
        deps=["beegfs_layout"],
        pool=POOL,
        required_resource_keys={"hpc"},
        description=f"{m.repo}@{m.revision[:12]} in the HF cache on BeeGFS (~{m.approx_size_mb:g} MB), verified and with a manifest.",
        metadata={"repo": m.repo, "revision": m.revision, "path": dg.MetadataValue.path(root)},
        freshness_policy=freshness_policy(m.freshness or catalog.default_freshness),
    )
    def _stage(context) -> dg.MaterializeResult:  # dagster validates a bare `context`
        from mlops_assets.resources.hpc_pipes import client_for

        client = client_for(catalog, context.resources.hpc.runner())
        return client.run(context=context, payload="stage_hub.py", extras=extras).get_materialize_result()

    return _stage


def _checks_per_asset(all_specs: list[CheckSpec]) -> list[dg.AssetChecksDefinition]:
    """One multi-check per staged asset, not per domain: a failed staging of one asset must
    not leave the checks of the others unrun."""
    by_asset: dict[str, list[CheckSpec]] = {}
    for spec in all_specs:
        by_asset.setdefault(spec.asset, []).append(spec)
    return [c for asset, group in by_asset.items() for c in asset_checks(group, name=f"{asset}_checks")]


def build(catalog: Catalog) -> dg.Definitions:
    assets: list[Any] = []
    for name, m in catalog.models.items():
        fresh = m.freshness or catalog.default_freshness
        pinned = f"{m.repo}@{m.revision[:12]}"
        assets += [
            _model_asset(catalog, name, m),
            external(f"model_{name}_minio", group=GROUP, kinds=["minio"], description=f"Copy of {pinned} in s3://{m.bucket}/{name}/{m.revision}/.", deps=[f"model_{name}", f"bucket_{m.bucket}"], freshness=fresh),
            external(f"model_{name}_mlflow", group=GROUP, kinds=["mlflow"], description=f"Registered model `{m.registered_name}` at {pinned}.", deps=[f"model_{name}_minio", "mlflow"], freshness=fresh),
        ]
    return dg.Definitions(assets=assets, asset_checks=_checks_per_asset(specs(catalog)))


defs = build(active().catalog)
