"""Pretrained models: the Hugging Face cache copy on BeeGFS (materialized on the HPC side
through Pipes), its MinIO copy, and its MLflow registration, in that lineage order; one set
per catalog entry."""

from __future__ import annotations

from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, Model
from mlops_assets.checking import ProbeContext, ProbeSpec, asset_checks_per_asset, freshness_policy
from mlops_assets.core import load_rules, staging_plan
from mlops_assets.core.checks import Outcome, Severity, bound
from mlops_assets.core.probes import staging
from mlops_assets.defs.staged import Staged, bucket_asset, bucket_check, stage_asset, staged_checks
from mlops_assets.platform import active
from mlops_assets.resources.clients import HttpServiceResource, S3Resource
from mlops_assets.resources.hpc import HpcSide

GROUP = "models"
POOL = "hub_downloads"


def _mlflow_version(c: ProbeContext, name: str, m: Model) -> Outcome:
    """A version tagged with the pinned revision and the digest of the manifest staged now."""
    from mlops_assets.core.probes import model_registry

    mpath = c.catalog.model_manifest(name)
    digest = staging.read_staged_manifest(c.hpc.runner(), mpath, c.catalog.model_key(name)).digest
    return model_registry.version_outcome(
        model_registry.versions(c.mlflow, m.registered_name), m.registered_name, m.revision, digest
    )


def plan(catalog: Catalog, m: Model) -> dict[str, Any]:
    return staging_plan.hub_plan(catalog, "model", m.repo, m.revision, m.allow_patterns)


def staged(catalog: Catalog, name: str, m: Model) -> Staged:
    """The model as the shared staging assets and checks (defs/staged.py) see it."""
    return Staged(
        key=catalog.model_key(name),
        path=lambda cat: cat.model_path(name),
        manifest=lambda cat: cat.model_manifest(name),
        load_spec=lambda cat: load_rules.model_spec(cat, m),
        approx_size_mb=m.approx_size_mb,
        freshness=m.freshness,
        sync_plan=lambda cat: staging_plan.sync_plan(cat, name, m),
        bucket=m.bucket,
        verifies_why="The snapshot in the HF cache on BeeGFS still matches its manifest (jobs "
        "load it with HF_HUB_OFFLINE=1); names what is missing, extra or changed.",
        loads_why=(
            "config.json and the tokenizer files parse, every safetensors header parses and fits "
            "its file, and the tensors add up to the catalog's parameter count (no torch needed)."
        ),
        bucket_why="KServe pulls the model from here",
    )


def specs(catalog: Catalog) -> list[ProbeSpec]:
    out: list[ProbeSpec] = []
    for name, m in catalog.models.items():
        s = staged(catalog, name, m)
        out += [
            *staged_checks(s),
            bucket_check(s),
            ProbeSpec(
                f"{s.key}_mlflow",
                f"{s.key}_mlflow_version_registered",
                Severity.ERROR,
                "Deployments refer to registered versions: one is tagged with the pinned "
                "revision and the current manifest digest.",
                bound(_mlflow_version, name, m),
                ("hpc", "mlflow"),
                hint=f"materialize {s.key}_mlflow",
            ),
        ]
    return out


def _model_asset(catalog: Catalog, name: str, m: Model) -> dg.AssetsDefinition:
    return stage_asset(
        catalog,
        staged(catalog, name, m),
        group=GROUP,
        pool=POOL,
        payload="stage_hub.py",
        extras=plan(catalog, m),
        kinds={"huggingface", "beegfs"},
        description=f"{m.repo}@{m.revision[:12]} in the HF cache on BeeGFS "
        f"(~{m.approx_size_mb:g} MB), verified and with a manifest.",
        metadata={"repo": m.repo, "revision": m.revision},
    )


def _minio_asset(catalog: Catalog, name: str, m: Model) -> dg.AssetsDefinition:
    uri = staging_plan.model_uri(name, m)
    return bucket_asset(
        catalog,
        staged(catalog, name, m),
        group=GROUP,
        uri=uri,
        description=f"Copy of {m.repo}@{m.revision[:12]} in {uri}, uploaded from the HPC side; "
        "_manifest.json last.",
    )


def _mlflow_asset(catalog: Catalog, name: str, m: Model) -> dg.AssetsDefinition:
    pinned = f"{m.repo}@{m.revision[:12]}"
    uri = staging_plan.model_uri(name, m)
    staged = catalog.model_key(name)

    @dg.asset(
        name=f"{staged}_mlflow",
        group_name=GROUP,
        kinds={"mlflow"},
        deps=[f"{staged}_minio", "mlflow"],
        description=(
            f"Registered model `{m.registered_name}` at {pinned}: a version whose source is "
            f"{uri}, tagged with repo, revision, manifest digest and URI."
        ),
        metadata={"registered_model": m.registered_name},
        freshness_policy=freshness_policy(m.freshness or catalog.default_freshness),
    )
    def _register(
        context, hpc: HpcSide, s3: S3Resource, mlflow: HttpServiceResource
    ) -> dg.MaterializeResult:
        """MlflowClient (core.probes.model_registry); reuses the version with this manifest
        digest and points the alias `staged` at it."""
        from mlops_assets.core.checks import ProbeFailed
        from mlops_assets.core.probes import model_registry

        try:
            mpath = catalog.model_manifest(name)
            man = staging.read_staged_manifest(hpc.runner(), mpath, staged)
            prefix = staging_plan.model_prefix(name, m)
            key = prefix + staging_plan.S3_MANIFEST_OBJECT
            head = staging.head_objects(s3.probe_client(), m.bucket, [key])[key]
            in_bucket = head[1].get(staging_plan.S3_DIGEST_META) if head else None
            if in_bucket != man.digest:
                raise ProbeFailed(
                    f"{uri}{staging_plan.S3_MANIFEST_OBJECT} is "
                    f"{'missing' if head is None else f'at digest {str(in_bucket)[:16]}'}, "
                    f"the staged manifest is at {man.digest[:16]}: the MinIO "
                    "copy is not complete or not current",
                    f"materialize {staged}_minio first",
                )
            tags = model_registry.version_tags(m.repo, m.revision, man.digest, uri)
            reg = model_registry.register(
                mlflow,
                m.registered_name,
                uri,
                tags,
                description=f"{pinned}, staged by mlops_assets",
            )
        except ProbeFailed as exc:
            raise dg.Failure(
                description=f"{exc} Hint: {exc.hint}", metadata={"hint": exc.hint}
            ) from None
        context.log.info(
            f"{m.registered_name} version {reg.version} "
            f"({'created' if reg.created else 'reused: same manifest digest'})"
        )
        base = catalog.cloud.services.mlflow.url.rstrip("/")
        return dg.MaterializeResult(
            metadata={
                "registered_model": m.registered_name,
                "version": reg.version,
                "created": reg.created,
                "source": reg.source,
                "manifest_digest": man.digest,
                "revision": m.revision,
                "url": dg.MetadataValue.url(
                    f"{base}/#/models/{m.registered_name}/versions/{reg.version}"
                ),
            },
            data_version=dg.DataVersion(man.digest),
        )

    return _register


def build(catalog: Catalog) -> dg.Definitions:
    assets: list[Any] = []
    for name, m in catalog.models.items():
        assets += [
            _model_asset(catalog, name, m),
            _minio_asset(catalog, name, m),
            _mlflow_asset(catalog, name, m),
        ]
    return dg.Definitions(assets=assets, asset_checks=asset_checks_per_asset(specs(catalog)))


defs = build(active().catalog)
