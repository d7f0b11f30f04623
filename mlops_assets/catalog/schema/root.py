"""The root of platform.yaml: Catalog, its sections, the references between them, and the
derived facts (asset keys, BeeGFS paths) other code asks instead of joining strings.
No Dagster imports."""

from typing import Any, Literal, Self

from pydantic import Field, model_validator

from mlops_assets.catalog.schema.automation import Automation, _move_crons
from mlops_assets.catalog.schema.cloud import Bucket, Cloud
from mlops_assets.catalog.schema.fields import Freshness, Name, _Strict
from mlops_assets.catalog.schema.fleet import Fleet
from mlops_assets.catalog.schema.hpc import Beegfs, Hpc
from mlops_assets.catalog.schema.network import Network
from mlops_assets.catalog.schema.smoke import Smoke
from mlops_assets.catalog.schema.staged import Container, Dataset, HubSource, Model, Staging
from mlops_assets.catalog.schema.trained_model import Registry, Serving
from mlops_assets.catalog.schema.workstation import Workstation


class Catalog(_Strict):
    version: Literal[1]
    platform: str = Field(min_length=1)
    hpc: Hpc
    cloud: Cloud
    network: Network
    datasets: dict[Name, Dataset] = Field(min_length=1)
    models: dict[Name, Model] = Field(min_length=1)
    containers: dict[Name, Container] = Field(min_length=1)
    workstation: Workstation
    smoke: Smoke
    default_freshness: Freshness
    automation: Automation = Automation()
    staging: Staging = Staging()
    fleet: Fleet = Fleet()
    registry: Registry = Registry()
    serving: Serving = Serving()

    # Derived facts: the asset keys and BeeGFS paths of the catalog's staged things. Other
    # code asks these instead of joining strings, so a key or a path is spelled once.

    def bucket(self, name: str) -> Bucket:
        """The bucket of this name (its `asset_key` is the storage group's asset)."""
        for b in self.cloud.buckets:
            if b.name == name:
                return b
        raise KeyError(
            f"no bucket {name!r} in cloud.buckets ({', '.join(b.name for b in self.cloud.buckets)})"
        )

    def trained_bucket(self) -> Bucket:
        """The bucket the trained MNIST model is copied to (must be in cloud.buckets)."""
        return self.bucket(self.registry.mnist.bucket)

    def dataset_key(self, name: str) -> str:
        """The datasets group's asset that stages this dataset on BeeGFS."""
        self.datasets[name]
        return f"dataset_{name}"

    def model_key(self, name: str) -> str:
        """The models group's asset that stages this model on BeeGFS."""
        self.models[name]
        return f"model_{name}"

    def container_key(self, name: str) -> str:
        """The containers group's asset that pulls or builds this image."""
        self.containers[name]
        return f"container_{name}"

    def dataset_path(self, name: str) -> str:
        """Where the dataset's staged files are: its `path` for torchvision, the pinned
        snapshot in the hub cache for a hub dataset."""
        d = self.datasets[name]
        if isinstance(d.source, HubSource):
            return self.hpc.beegfs.hub_snapshot("dataset", d.source.repo, d.source.revision)
        return self.hpc.beegfs.path(d.path)

    def dataset_manifest(self, name: str) -> str:
        """The staging manifest of the dataset's files."""
        d = self.datasets[name]
        if isinstance(d.source, HubSource):
            return self.hpc.beegfs.hub_manifest("dataset", d.source.repo, d.source.revision)
        return Beegfs.manifest_path(self.hpc.beegfs.path(d.path))

    def model_path(self, name: str) -> str:
        """The model's pinned snapshot in the hub cache."""
        m = self.models[name]
        return self.hpc.beegfs.hub_snapshot("model", m.repo, m.revision)

    def model_manifest(self, name: str) -> str:
        """The staging manifest of the model's snapshot."""
        m = self.models[name]
        return self.hpc.beegfs.hub_manifest("model", m.repo, m.revision)

    def container_path(self, name: str) -> str:
        """The image file under the containers directory."""
        return f"{self.hpc.beegfs.directory('containers')}/{self.containers[name].file}"

    @model_validator(mode="before")
    @classmethod
    def _deprecated_keys(cls, data: Any) -> Any:
        return _move_crons(data)

    @model_validator(mode="after")
    def _references(self) -> Self:
        buckets = {b.name for b in self.cloud.buckets}
        problems = [
            f"models.{name}.bucket {m.bucket!r} is not one of cloud.buckets "
            f"({', '.join(sorted(buckets))})"
            for name, m in self.models.items()
            if m.bucket not in buckets
        ]
        if any(d.sync_to_bucket for d in self.datasets.values()) and "datasets" not in buckets:
            problems.append("a dataset has sync_to_bucket: true but there is no 'datasets' bucket")
        partitions = {p.name for p in self.hpc.slurm.partitions}
        if self.smoke.container is not None and self.smoke.container not in self.containers:
            problems.append(
                f"smoke.container {self.smoke.container!r} is not one of containers "
                f"({', '.join(self.containers)})"
            )
        mover = self.hpc.data_mover
        if mover is not None and mover.partition not in partitions:
            problems.append(
                f"hpc.data_mover.partition {mover.partition!r} is not one of hpc.slurm.partitions"
            )
        for name, ct in self.containers.items():
            base = getattr(ct.source, "bootstrap_from", None)
            if base is not None and (base not in self.containers or base == name):
                problems.append(
                    f"containers.{name}.source.bootstrap_from {base!r} is not another of "
                    f"containers ({', '.join(self.containers)})"
                )
            if ct.where == "slurm" and ct.build_partition not in partitions:
                problems.append(
                    f"containers.{name}.build_partition {ct.build_partition!r} is not one of "
                    "hpc.slurm.partitions"
                )
        cifar = self.smoke.cifar_ddp.dataset
        if getattr(self.datasets.get(cifar, None), "source", None) is None or (
            getattr(self.datasets[cifar].source, "dataset_class", "") != "CIFAR10"
        ):
            tv = [
                n
                for n, d in self.datasets.items()
                if getattr(d.source, "dataset_class", "") == "CIFAR10"
            ]
            problems.append(
                f"smoke.cifar_ddp.dataset {cifar!r} is not one of the torchvision CIFAR10 "
                f"datasets ({', '.join(tv)})"
            )
        sft = self.smoke.sft
        if sft.model not in self.models:
            problems.append(
                f"smoke.sft.model {sft.model!r} is not one of models ({', '.join(self.models)})"
            )
        if sft.dataset not in self.datasets or not isinstance(
            self.datasets[sft.dataset].source, HubSource
        ):
            hub = [n for n, d in self.datasets.items() if isinstance(d.source, HubSource)]
            problems.append(
                f"smoke.sft.dataset {sft.dataset!r} is not one of the hub datasets "
                f"({', '.join(hub)})"
            )
        if sft.container is not None and sft.container not in self.containers:
            problems.append(
                f"smoke.sft.container {sft.container!r} is not one of containers "
                f"({', '.join(self.containers)})"
            )
        if self.smoke.partition not in partitions:
            problems.append(
                f"smoke.partition {self.smoke.partition!r} is not one of hpc.slurm.partitions"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self
