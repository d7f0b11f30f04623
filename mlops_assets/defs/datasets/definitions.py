"""Datasets on BeeGFS, one materializable asset per catalog entry: adding a dataset is a
catalog entry. torchvision datasets are fetched from the catalog's mirrors into the layout
torchvision expects; hub datasets are snapshots of a pinned revision in the HF cache. The
bytes move on the HPC side (payloads through Pipes); the orchestrator gets metadata only."""

from __future__ import annotations

from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, Dataset, HubSource
from mlops_assets.checking import ProbeContext, ProbeSpec, asset_checks_per_asset, freshness_policy
from mlops_assets.core import staging_plan
from mlops_assets.core.checks import CheckSpec, Outcome, Severity, bound
from mlops_assets.core.probes import staging
from mlops_assets.platform import active
from mlops_assets.resources.clients import S3Resource
from mlops_assets.resources.hpc import HpcSide

GROUP = "datasets"
POOL = "hub_downloads"


def plan(catalog: Catalog, d: Dataset) -> tuple[str, dict[str, Any]]:
    """(payload, extras) that stage this dataset."""
    src = d.source
    if isinstance(src, HubSource):
        return "stage_hub.py", staging_plan.hub_plan(
            catalog, "dataset", src.repo, src.revision, src.allow_patterns
        )
    return "stage_torchvision.py", staging_plan.torchvision_plan(catalog, d)


def _verifies(c: ProbeContext, name: str, d: Dataset) -> Outcome:
    hpc = c.hpc
    root, mpath = c.catalog.dataset_path(name), c.catalog.dataset_manifest(name)
    return staging.verify_staged(
        hpc.runner(), hpc.python, hpc.ship(), root, mpath, c.catalog.dataset_key(name)
    )


def _loads(c: ProbeContext, name: str, d: Dataset) -> Outcome:
    from mlops_assets.core import load_rules

    hpc = c.hpc
    return staging.run_load_check(
        hpc.runner(),
        hpc.python,
        hpc.ship(),
        load_rules.dataset_spec(c.catalog, d),
        c.catalog.dataset_key(name),
    )


def _size(c: ProbeContext, name: str, d: Dataset) -> Outcome:
    mpath = c.catalog.dataset_manifest(name)
    return staging.staged_size(c.hpc.runner(), mpath, d.approx_size_mb, c.catalog.dataset_key(name))


def _in_bucket(c: ProbeContext, name: str, d: Dataset) -> Outcome:
    return staging.bucket_copy(
        c.hpc.runner(), c.s3.probe_client(), staging_plan.dataset_sync_plan(c.catalog, name, d)
    )


def specs(catalog: Catalog) -> list[ProbeSpec]:
    out: list[ProbeSpec] = []
    for name, d in catalog.datasets.items():
        key = catalog.dataset_key(name)
        if d.sync_to_bucket:
            out.append(
                CheckSpec(
                    f"{key}_minio",
                    f"{key}_minio_matches_manifest",
                    Severity.ERROR,
                    "Cloud-side jobs read the dataset from here: every manifest entry is an object with the same size and "
                    "x-amz-meta-sha256, and _manifest.json (written last) has the current digest; names missing/changed keys.",
                    bound(_in_bucket, name, d),
                    ("hpc", "s3"),
                    blocking=True,
                    hint=f"materialize {key}_minio",
                )
            )
        out += [
            CheckSpec(
                key,
                f"{key}_manifest_verifies",
                Severity.ERROR,
                "Every staged file still has the size and sha256 of its manifest; names what is missing, extra or changed.",
                bound(_verifies, name, d),
                ("hpc",),
                blocking=True,
                light=False,
                hint=f"re-materialize {key}",
            ),
            CheckSpec(
                key,
                f"{key}_loads",
                Severity.ERROR,
                "The data opens as training will read it, on the HPC side: parquet/arrow files with the catalog's splits "
                "and row counts; torchvision's layout (and torchvision itself with download=False where hpc.python has it).",
                bound(_loads, name, d),
                ("hpc",),
                blocking=True,
                light=False,
                hint=f"re-materialize {key}",
            ),
            CheckSpec(
                key,
                f"{key}_size_within_bounds",
                Severity.WARN,
                "The staged bytes are within a factor of 4 of the catalog's approx_size_mb.",
                bound(_size, name, d),
                ("hpc",),
            ),
        ]
    return out


def _asset(catalog: Catalog, name: str, d: Dataset) -> dg.AssetsDefinition:
    src = d.source
    where = (
        f"{src.repo}@{src.revision[:12]}"
        if isinstance(src, HubSource)
        else f"torchvision {src.dataset_class}"
    )
    payload, extras = plan(catalog, d)
    root = catalog.dataset_path(name)

    @dg.asset(
        name=catalog.dataset_key(name),
        group_name=GROUP,
        kinds={"beegfs", "huggingface" if isinstance(src, HubSource) else "torchvision"},
        deps=["beegfs_layout"],
        pool=POOL,
        description=f"{where} staged in {root} (~{d.approx_size_mb:g} MB), verified and with a manifest.",
        metadata={"source": where, "path": dg.MetadataValue.path(root)},
        freshness_policy=freshness_policy(d.freshness or catalog.default_freshness),
    )
    def _stage(context, hpc: HpcSide) -> dg.MaterializeResult:
        done = hpc.staging_client().run(context=context, payload=payload, extras=extras)
        return done.get_materialize_result()

    return _stage


def _minio_asset(catalog: Catalog, name: str, d: Dataset) -> dg.AssetsDefinition:
    plan = staging_plan.dataset_sync_plan(catalog, name, d)
    uri = f"s3://{plan['bucket']}/{plan['prefix']}"
    key = catalog.dataset_key(name)

    @dg.asset(
        name=f"{key}_minio",
        group_name=GROUP,
        kinds={"minio"},
        deps=[key, catalog.bucket(staging_plan.DATASETS_BUCKET).asset_key],
        description=f"Copy of the staged {key} in {uri} (catalog: sync_to_bucket), uploaded from the HPC side; _manifest.json last.",
        metadata={"uri": uri},
        freshness_policy=freshness_policy(d.freshness or catalog.default_freshness),
    )
    def _sync(context, hpc: HpcSide, s3: S3Resource) -> dg.MaterializeResult:
        return hpc.sync_to_s3(context, s3, plan)

    return _sync


def build(catalog: Catalog) -> dg.Definitions:
    assets = [_asset(catalog, name, d) for name, d in catalog.datasets.items()]
    assets += [
        _minio_asset(catalog, name, d) for name, d in catalog.datasets.items() if d.sync_to_bucket
    ]
    return dg.Definitions(assets=assets, asset_checks=asset_checks_per_asset(specs(catalog)))


defs = build(active().catalog)
