"""Datasets on BeeGFS, one materializable asset per catalog entry: adding a dataset is a
catalog entry. torchvision datasets are fetched from the catalog's mirrors into the layout
torchvision expects; hub datasets are snapshots of a pinned revision in the HF cache. The
bytes move on the HPC side (payloads through Pipes); the orchestrator gets metadata only."""

from __future__ import annotations

from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, Dataset, HubSource
from mlops_assets.checking import ProbeSpec, asset_checks_per_asset
from mlops_assets.core import load_rules, staging_plan
from mlops_assets.defs.staged import Staged, bucket_asset, bucket_check, stage_asset, staged_checks
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


def staged(catalog: Catalog, name: str, d: Dataset) -> Staged:
    """The dataset as the shared staging assets and checks (defs/staged.py) see it."""
    return Staged(
        key=catalog.dataset_key(name),
        path=lambda cat: cat.dataset_path(name),
        manifest=lambda cat: cat.dataset_manifest(name),
        load_spec=lambda cat: load_rules.dataset_spec(cat, d),
        approx_size_mb=d.approx_size_mb,
        freshness=d.freshness,
        sync_plan=(lambda cat: staging_plan.dataset_sync_plan(cat, name, d))
        if d.sync_to_bucket
        else None,
        bucket=staging_plan.DATASETS_BUCKET,
        verifies_why="Every staged file still has the size and sha256 of its manifest; names "
        "what is missing, extra or changed.",
        loads_why="The data opens as training will read it, on the HPC side: parquet/arrow "
        "files with the catalog's splits and row counts; torchvision's layout (and "
        "torchvision itself with download=False where hpc.python has it).",
        bucket_why="Cloud-side jobs read the dataset from here",
    )


def specs(catalog: Catalog) -> list[ProbeSpec]:
    out: list[ProbeSpec] = []
    for name, d in catalog.datasets.items():
        s = staged(catalog, name, d)
        if d.sync_to_bucket:
            out.append(bucket_check(s))
        out += staged_checks(s)
    return out


def _asset(catalog: Catalog, name: str, d: Dataset) -> dg.AssetsDefinition:
    src = d.source
    where = (
        f"{src.repo}@{src.revision[:12]}"
        if isinstance(src, HubSource)
        else f"torchvision {src.dataset_class}"
    )
    payload, extras = plan(catalog, d)
    return stage_asset(
        catalog,
        staged(catalog, name, d),
        group=GROUP,
        pool=POOL,
        payload=payload,
        extras=extras,
        kinds={"beegfs", "huggingface" if isinstance(src, HubSource) else "torchvision"},
        description=f"{where} staged in {catalog.dataset_path(name)} "
        f"(~{d.approx_size_mb:g} MB), verified and with a manifest.",
        metadata={"source": where},
    )


def _minio_asset(catalog: Catalog, name: str, d: Dataset) -> dg.AssetsDefinition:
    s = staged(catalog, name, d)
    sync = staging_plan.dataset_sync_plan(catalog, name, d)
    uri = f"s3://{sync['bucket']}/{sync['prefix']}"
    return bucket_asset(
        catalog,
        s,
        group=GROUP,
        uri=uri,
        description=f"Copy of the staged {s.key} in {uri} (catalog: sync_to_bucket), uploaded "
        "from the HPC side; _manifest.json last.",
    )


def build(catalog: Catalog) -> dg.Definitions:
    assets = [_asset(catalog, name, d) for name, d in catalog.datasets.items()]
    assets += [
        _minio_asset(catalog, name, d) for name, d in catalog.datasets.items() if d.sync_to_bucket
    ]
    return dg.Definitions(assets=assets, asset_checks=asset_checks_per_asset(specs(catalog)))


defs = build(active().catalog)
