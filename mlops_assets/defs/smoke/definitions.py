"""Results of the GPU and SLURM smoke jobs that prove the validation tasks can run. The
jobs themselves arrive with the smoke-jobs issue; the results are placed in the lineage now
so that freshness and the UI show when they last passed."""

from __future__ import annotations

import dagster as dg

from mlops_assets.catalog.schema import Catalog
from mlops_assets.checking import external
from mlops_assets.platform import active

GROUP = "smoke"


def build(catalog: Catalog) -> dg.Definitions:
    containers = [f"container_{n}" for n in catalog.containers]
    first_container = containers[:1]
    fresh = catalog.smoke.freshness
    mnist = [f"dataset_{n}" for n, d in catalog.datasets.items() if getattr(d.source, "dataset_class", "") == "MNIST"]
    assets = [
        external("smoke_gpu", group=GROUP, kinds=["slurm", "nvidia"], description="Per-node GPU inventory, bf16 matmul TFLOP/s and memory bandwidth.", deps=["gpu_nodes", "slurm", *first_container], freshness=fresh),
        external("smoke_multi_gpu_nccl", group=GROUP, kinds=["slurm", "nccl"], description=f"{catalog.smoke.multi_gpu_count}-GPU NCCL all-reduce, values verified exactly.", deps=["gpu_nodes", *first_container], freshness=fresh),
        external("smoke_mnist_training", group=GROUP, kinds=["slurm", "pytorch"], description=f"MNIST on 1 GPU: accuracy > {catalog.smoke.mnist_min_accuracy:.0%} in < {catalog.smoke.mnist_max_seconds:g} s.", deps=["gpu_nodes", *first_container, *mnist], freshness=fresh),
    ]
    return dg.Definitions(assets=assets)


defs = build(active().catalog)
