"""Datasets on BeeGFS, one asset per catalog entry: adding a dataset is a catalog entry."""

from __future__ import annotations

from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, Dataset, HubSource
from mlops_assets.checking import asset_checks, external
from mlops_assets.core import staging_rules
from mlops_assets.core.checks import CheckSpec, Outcome, Severity, bound
from mlops_assets.platform import active

GROUP = "datasets"


def _present(c: Any, d: Dataset) -> Outcome:
    return staging_rules.path_present(
        c.hpc.runner(), staging_rules.dataset_marker(c.catalog, d), "dataset files",
        "stage it: materialize the dataset asset (hub downloads need HF_HOME on BeeGFS and internet or a mirror)",
    )


def specs(catalog: Catalog) -> list[CheckSpec]:
    return [
        CheckSpec(
            f"dataset_{name}", f"dataset_{name}_present", Severity.ERROR,
            "Training reads it from BeeGFS with no network.",
            bound(_present, d),
            ("hpc",),
        )
        for name, d in catalog.datasets.items()
    ]


def build(catalog: Catalog) -> dg.Definitions:
    assets = []
    for name, d in catalog.datasets.items():
        src = d.source
        where = f"{src.repo}@{src.revision[:12]}" if isinstance(src, HubSource) else f"torchvision {src.dataset_class}"
        assets.append(external(
            f"dataset_{name}", group=GROUP, kinds=["beegfs", "huggingface" if isinstance(src, HubSource) else "torchvision"],
            description=f"{where} in {catalog.hpc.beegfs.root}/{d.path} (~{d.approx_size_mb:g} MB).",
            deps=["beegfs_layout"],
            metadata={"source": where, "path": f"{catalog.hpc.beegfs.root}/{d.path}"},
            freshness=d.freshness or catalog.default_freshness,
        ))
    return dg.Definitions(assets=assets, asset_checks=asset_checks(specs(catalog), name="datasets_checks"))


defs = build(active().catalog)
