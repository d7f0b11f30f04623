"""Typed schema of platform.yaml.

The catalog is the single source of truth: assets and checks are generated from it, so every
field a user may tune lives here, with its unit in its name. One module per part of the file
(`hpc`, `cloud`, `network`, `staged`, `workstation`, `smoke`, `fleet`, `automation`,
`trained_model`), the root `Catalog` in `root`; every model is importable from here. No Dagster
imports.
"""

from mlops_assets.catalog.schema.automation import MOVED_TO_AUTOMATION, Automation
from mlops_assets.catalog.schema.cloud import (
    Bucket,
    Cloud,
    Components,
    GpuOperator,
    Grafana,
    Kserve,
    Kubernetes,
    Minio,
    Mlflow,
    Prometheus,
    SecretRef,
    Service,
    Services,
)
from mlops_assets.catalog.schema.fields import Freshness, Name, RelPath, RepoId, Version
from mlops_assets.catalog.schema.fleet import Fleet, FleetFigure, Quarantine
from mlops_assets.catalog.schema.hpc import (
    Apptainer,
    Beegfs,
    BeegfsDirectories,
    DataMover,
    Gpus,
    Hpc,
    HpcAccess,
    MoverJob,
    Slurm,
    SlurmPartition,
    SmokeJob,
    SshLogin,
)
from mlops_assets.catalog.schema.network import Network
from mlops_assets.catalog.schema.root import Catalog
from mlops_assets.catalog.schema.smoke import (
    CifarDdpSmoke,
    DdpSmoke,
    GpuProfile,
    SftSmoke,
    Smoke,
    SmokeJobs,
)
from mlops_assets.catalog.schema.staged import (
    BuildSource,
    Container,
    Dataset,
    HubSource,
    Model,
    PullSource,
    Staging,
    TorchvisionSource,
)
from mlops_assets.catalog.schema.trained_model import (
    LocalModelServer,
    Registry,
    ServedModel,
    Serving,
    TrainedModel,
)
from mlops_assets.catalog.schema.workstation import Workstation

__all__ = [
    "MOVED_TO_AUTOMATION",
    "Apptainer",
    "Automation",
    "Beegfs",
    "BeegfsDirectories",
    "Bucket",
    "BuildSource",
    "Catalog",
    "CifarDdpSmoke",
    "Cloud",
    "Components",
    "Container",
    "DataMover",
    "Dataset",
    "DdpSmoke",
    "Fleet",
    "FleetFigure",
    "Freshness",
    "GpuOperator",
    "GpuProfile",
    "Gpus",
    "Grafana",
    "Hpc",
    "HpcAccess",
    "HubSource",
    "Kserve",
    "Kubernetes",
    "LocalModelServer",
    "Minio",
    "Mlflow",
    "Model",
    "MoverJob",
    "Name",
    "Network",
    "Prometheus",
    "PullSource",
    "Quarantine",
    "Registry",
    "RelPath",
    "RepoId",
    "SecretRef",
    "ServedModel",
    "Service",
    "Services",
    "Serving",
    "SftSmoke",
    "Slurm",
    "SlurmPartition",
    "Smoke",
    "SmokeJob",
    "SmokeJobs",
    "SshLogin",
    "Staging",
    "TorchvisionSource",
    "TrainedModel",
    "Version",
    "Workstation",
]
