"""Datasets on BeeGFS, one materializable asset per catalog entry: adding a dataset is a
catalog entry. torchvision datasets are fetched from the catalog's mirrors into the layout
torchvision expects; hub datasets are snapshots of a pinned revision in the HF cache. The
bytes move on the HPC side (payloads through Pipes); the orchestrator gets metadata only."""

from __future__ import annotations

from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, Dataset, HubSource
from mlops_assets.checking import asset_checks_per_asset, freshness_policy
from mlops_assets.core import staging_plan
from mlops_assets.core.checks import CheckSpec, Outcome, Severity, bound
from mlops_assets.core.probes import staging
from mlops_assets.platform import active

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


def _verifies(c: Any, name: str, d: Dataset) -> Outcome:
    from mlops_assets.resources.hpc_pipes import ship_payloads

    runner = c.hpc.runner()
    where = ship_payloads(runner, c.catalog.hpc.beegfs.directory("scripts"))
    root, mpath = c.catalog.dataset_path(name), c.catalog.dataset_manifest(name)
    return staging.verify_staged(
        runner, c.catalog.hpc.python, where, root, mpath, c.catalog.dataset_key(name)
    )


def _loads(c: Any, name: str, d: Dataset) -> Outcome:
    from mlops_assets.core import load_rules
    from mlops_assets.resources.hpc_pipes import ship_payloads

    runner = c.hpc.runner()
    where = ship_payloads(runner, c.catalog.hpc.beegfs.directory("scripts"))
    return staging.run_load_check(
        runner,
        c.catalog.hpc.python,
        where,
        load_rules.dataset_spec(c.catalog, d),
        c.catalog.dataset_key(name),
    )


def _size(c: Any, name: str, d: Dataset) -> Outcome:
    mpath = c.catalog.dataset_manifest(name)
    return staging.staged_size(c.hpc.runner(), mpath, d.approx_size_mb, c.catalog.dataset_key(name))


def _in_bucket(c: Any, name: str, d: Dataset) -> Outcome:
    return staging.bucket_copy(
        c.hpc.runner(), c.s3.probe_client(), staging_plan.dataset_sync_plan(c.catalog, name, d)
    )


def specs(catalog: Catalog) -> list[CheckSpec]:
    out: list[CheckSpec] = []
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
        required_resource_keys={"hpc"},
        description=f"{where} staged in {root} (~{d.approx_size_mb:g} MB), verified and with a manifest.",
        metadata={"source": where, "path": dg.MetadataValue.path(root)},
        freshness_policy=freshness_policy(d.freshness or catalog.default_freshness),
    )
    def _stage(context) -> dg.MaterializeResult:  # dagster validates a bare `context`
        from mlops_assets.resources.hpc_pipes import client_for

        client = client_for(catalog, context.resources.hpc.runner())
        return client.run(context=context, payload=payload, extras=extras).get_materialize_result()

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
        required_resource_keys={"hpc", "s3"},
        description=f"Copy of the staged {key} in {uri} (catalog: sync_to_bucket), uploaded from the HPC side; _manifest.json last.",
        metadata={"uri": uri},
        freshness_policy=freshness_policy(d.freshness or catalog.default_freshness),
    )
    def _sync(context) -> dg.MaterializeResult:  # dagster validates a bare `context`
        from mlops_assets.resources.hpc_pipes import run_s3_sync

        return run_s3_sync(context, catalog, plan)

    return _sync


def build(catalog: Catalog) -> dg.Definitions:
    assets = [_asset(catalog, name, d) for name, d in catalog.datasets.items()]
    assets += [
        _minio_asset(catalog, name, d) for name, d in catalog.datasets.items() if d.sync_to_bucket
    ]
    return dg.Definitions(assets=assets, asset_checks=asset_checks_per_asset(specs(catalog)))


defs = build(active().catalog)
