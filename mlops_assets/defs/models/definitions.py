"""Pretrained models: the Hugging Face cache copy on BeeGFS (materialized on the HPC side
through Pipes), its MinIO copy, and its MLflow registration, in that lineage order; one set
per catalog entry."""

from __future__ import annotations

from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, Model
from mlops_assets.checking import asset_checks_per_asset, freshness_policy
from mlops_assets.core import staging_plan
from mlops_assets.core.checks import CheckSpec, Outcome, Severity, bound
from mlops_assets.core.probes import staging
from mlops_assets.platform import active

GROUP = "models"
POOL = "hub_downloads"


def _mlflow_version(c: Any, name: str, m: Model) -> Outcome:
    """A version tagged with the pinned revision and the digest of the manifest staged now."""
    from mlops_assets.core.probes import model_registry

    mpath = c.catalog.model_manifest(name)
    digest = staging.read_staged_manifest(c.hpc.runner(), mpath, c.catalog.model_key(name)).digest
    return model_registry.version_outcome(
        model_registry.versions(c.mlflow, m.registered_name), m.registered_name, m.revision, digest
    )


def plan(catalog: Catalog, m: Model) -> dict[str, Any]:
    return staging_plan.hub_plan(catalog, "model", m.repo, m.revision, m.allow_patterns)


def _verifies(c: Any, name: str, m: Model) -> Outcome:
    from mlops_assets.resources.hpc_pipes import ship_payloads

    runner = c.hpc.runner()
    where = ship_payloads(runner, c.catalog.hpc.beegfs.directory("scripts"))
    root, mpath = c.catalog.model_path(name), c.catalog.model_manifest(name)
    return staging.verify_staged(
        runner, c.catalog.hpc.python, where, root, mpath, c.catalog.model_key(name)
    )


def _loads(c: Any, name: str, m: Model) -> Outcome:
    from mlops_assets.core import load_rules
    from mlops_assets.resources.hpc_pipes import ship_payloads

    runner = c.hpc.runner()
    where = ship_payloads(runner, c.catalog.hpc.beegfs.directory("scripts"))
    return staging.run_load_check(
        runner,
        c.catalog.hpc.python,
        where,
        load_rules.model_spec(c.catalog, m),
        c.catalog.model_key(name),
    )


def _size(c: Any, name: str, m: Model) -> Outcome:
    mpath = c.catalog.model_manifest(name)
    return staging.staged_size(c.hpc.runner(), mpath, m.approx_size_mb, c.catalog.model_key(name))


def _in_bucket(c: Any, name: str, m: Model) -> Outcome:
    return staging.minio_copy(c.hpc.runner(), c.s3.probe_client(), c.catalog, name, m)


def specs(catalog: Catalog) -> list[CheckSpec]:
    E, W = Severity.ERROR, Severity.WARN
    out: list[CheckSpec] = []
    for name, m in catalog.models.items():
        staged = catalog.model_key(name)
        out += [
            CheckSpec(
                staged,
                f"{staged}_manifest_verifies",
                E,
                "The snapshot in the HF cache on BeeGFS still matches its manifest (jobs load it with HF_HUB_OFFLINE=1); names what is missing, extra or changed.",
                bound(_verifies, name, m),
                ("hpc",),
                blocking=True,
                light=False,
                hint=f"re-materialize {staged}",
            ),
            CheckSpec(
                staged,
                f"{staged}_loads",
                E,
                "config.json and the tokenizer files parse, every safetensors header parses and fits its file, and the "
                "tensors add up to the catalog's parameter count (no torch needed).",
                bound(_loads, name, m),
                ("hpc",),
                blocking=True,
                light=False,
                hint=f"re-materialize {staged}",
            ),
            CheckSpec(
                staged,
                f"{staged}_size_within_bounds",
                W,
                "The staged bytes are within a factor of 4 of the catalog's approx_size_mb.",
                bound(_size, name, m),
                ("hpc",),
            ),
            CheckSpec(
                f"{staged}_minio",
                f"{staged}_minio_matches_manifest",
                E,
                "KServe pulls the model from here: every manifest entry is an object with the same size and "
                "x-amz-meta-sha256, and _manifest.json (written last) has the current digest; names missing/changed keys.",
                bound(_in_bucket, name, m),
                ("hpc", "s3"),
                blocking=True,
                hint=f"materialize {staged}_minio",
            ),
            CheckSpec(
                f"{staged}_mlflow",
                f"{staged}_mlflow_version_registered",
                E,
                "Deployments refer to registered versions: one is tagged with the pinned revision and the current manifest digest.",
                bound(_mlflow_version, name, m),
                ("hpc", "mlflow"),
                hint=f"materialize {staged}_mlflow",
            ),
        ]
    return out


def _model_asset(catalog: Catalog, name: str, m: Model) -> dg.AssetsDefinition:
    extras = plan(catalog, m)
    root = catalog.model_path(name)

    @dg.asset(
        name=catalog.model_key(name),
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
        return client.run(
            context=context, payload="stage_hub.py", extras=extras
        ).get_materialize_result()

    return _stage


def _minio_asset(catalog: Catalog, name: str, m: Model) -> dg.AssetsDefinition:
    pinned = f"{m.repo}@{m.revision[:12]}"
    staged = catalog.model_key(name)

    @dg.asset(
        name=f"{staged}_minio",
        group_name=GROUP,
        kinds={"minio"},
        deps=[staged, catalog.bucket(m.bucket).asset_key],
        required_resource_keys={"hpc", "s3"},
        description=f"Copy of {pinned} in {staging_plan.model_uri(name, m)}, uploaded from the HPC side; _manifest.json last.",
        metadata={"uri": staging_plan.model_uri(name, m)},
        freshness_policy=freshness_policy(m.freshness or catalog.default_freshness),
    )
    def _sync(context) -> dg.MaterializeResult:  # dagster validates a bare `context`
        """sync_s3.py on the HPC side; the keys travel in a private file (hpc_pipes.run_s3_sync)."""
        from mlops_assets.resources.hpc_pipes import run_s3_sync

        return run_s3_sync(context, catalog, staging_plan.sync_plan(catalog, name, m))

    return _sync


def _mlflow_asset(catalog: Catalog, name: str, m: Model) -> dg.AssetsDefinition:
    pinned = f"{m.repo}@{m.revision[:12]}"
    uri = staging_plan.model_uri(name, m)
    staged = catalog.model_key(name)

    @dg.asset(
        name=f"{staged}_mlflow",
        group_name=GROUP,
        kinds={"mlflow"},
        deps=[f"{staged}_minio", "mlflow"],
        required_resource_keys={"hpc", "s3", "mlflow"},
        description=f"Registered model `{m.registered_name}` at {pinned}: a version whose source is {uri}, tagged with repo, revision, manifest digest and URI.",
        metadata={"registered_model": m.registered_name},
        freshness_policy=freshness_policy(m.freshness or catalog.default_freshness),
    )
    def _register(context) -> dg.MaterializeResult:  # dagster validates a bare `context`
        """MlflowClient (core.probes.model_registry); reuses the version with this manifest digest
        and points the alias `staged` at it."""
        from mlops_assets.core.checks import ProbeFailed
        from mlops_assets.core.probes import model_registry

        try:
            mpath = catalog.model_manifest(name)
            man = staging.read_staged_manifest(context.resources.hpc.runner(), mpath, staged)
            prefix = staging_plan.model_prefix(name, m)
            key = prefix + staging_plan.S3_MANIFEST_OBJECT
            head = staging.head_objects(context.resources.s3.probe_client(), m.bucket, [key])[key]
            in_bucket = head[1].get(staging_plan.S3_DIGEST_META) if head else None
            if in_bucket != man.digest:
                raise ProbeFailed(
                    f"{uri}{staging_plan.S3_MANIFEST_OBJECT} is {'missing' if head is None else f'at digest {str(in_bucket)[:16]}'}, "
                    f"the staged manifest is at {man.digest[:16]}: the MinIO copy is not complete or not current",
                    f"materialize {staged}_minio first",
                )
            tags = model_registry.version_tags(m.repo, m.revision, man.digest, uri)
            reg = model_registry.register(
                context.resources.mlflow,
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
            f"{m.registered_name} version {reg.version} ({'created' if reg.created else 'reused: same manifest digest'})"
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
