"""Typed schema of platform.yaml.

The catalog is the single source of truth: assets and checks are generated from it, so every
field a user may tune lives here, with its unit in its name. No Dagster imports.
"""

from __future__ import annotations

import ipaddress
import re
import warnings
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# a standard-library leaf (shipped to the HPC side as mlops_manifest.py): the payloads and the
# catalog name the manifest file from this one constant
from mlops_assets.core.manifest import MANIFEST_NAME

_NAME = r"^[a-z][a-z0-9_]{0,62}$"
_SHA40 = re.compile(r"^[0-9a-f]{40}$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_VERSION = r"^v?\d+(\.\d+){0,3}$"

Name = Annotated[str, Field(pattern=_NAME, description="lower_snake_case identifier")]
Version = Annotated[str, Field(pattern=_VERSION, description="dotted version such as 1.27")]
RepoId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", description="hub repo, org/name")
]
RelPath = Annotated[str, Field(min_length=1, description="path relative to the BeeGFS root")]


class _Strict(BaseModel):
    """Unknown keys are typos until proven otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


def _relative(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or ".." in parts or any(p in ("", ".") for p in parts):
        raise ValueError(f"{value!r} must be a relative path without '..', '.' or '//'")
    return value


def _pinned_revision(value: str) -> str:
    if not _SHA40.match(value):
        raise ValueError(
            f"revision {value!r} is not pinned: use the 40-hex commit sha, not a branch"
        )
    return value


class Freshness(_Strict):
    fail_after_hours: float = Field(gt=0)
    warn_after_hours: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _warn_before_fail(self) -> Freshness:
        if self.warn_after_hours is not None and self.warn_after_hours >= self.fail_after_hours:
            raise ValueError("warn_after_hours must be smaller than fail_after_hours")
        return self


# --------------------------------------------------------------------------- HPC


class SshLogin(_Strict):
    host: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")
    key_path: str = Field(min_length=1)
    known_hosts: str = Field(min_length=1)
    connect_timeout_s: float = Field(default=10, gt=0, le=120)
    command_timeout_s: float = Field(default=60, gt=0, le=3600)


class HpcAccess(_Strict):
    """`local` runs commands here (the orchestrator sits on the HPC side); `ssh` goes through
    the login node with verified host keys."""

    mode: Literal["local", "ssh"] = "ssh"
    login: SshLogin


class SlurmPartition(_Strict):
    """``max_unavailable_fraction`` is the ERROR level of the share of nodes out of service
    (down, drained, failing); ``warn_unavailable_fraction`` (optional, not above it) the WARN
    level, as BeeGFS has ``min_free_gb`` and ``warn_free_gb``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    gpu: bool = True
    max_unavailable_fraction: float = Field(
        default=0.1, ge=0, le=1, description="ERROR above this share"
    )
    warn_unavailable_fraction: float | None = Field(
        default=None, ge=0, le=1, description="WARN above this share"
    )

    @model_validator(mode="after")
    def _warn_below_error(self) -> SlurmPartition:
        warn = self.warn_unavailable_fraction
        if warn is not None and warn > self.max_unavailable_fraction:
            raise ValueError(
                f"warn_unavailable_fraction {warn} is above max_unavailable_fraction "
                f"{self.max_unavailable_fraction}: the WARN level must not exceed the ERROR level"
            )
        return self


class Slurm(_Strict):
    partitions: list[SlurmPartition] = Field(min_length=1)
    gpus_per_node: int = Field(ge=1, description="GPU GRES every GPU node must advertise")
    min_total_gpus: int = Field(ge=1, description="seed: minimum 2 GPUs for multi-GPU testing")
    require_accounting: bool = True
    require_cgroup_constrain_devices: bool = True
    max_controller_latency_s: float = Field(default=2.0, gt=0)
    client_commands: list[str] = Field(
        default_factory=lambda: ["sinfo", "squeue", "scontrol", "sbatch", "sacct", "scancel"]
    )


class BeegfsDirectories(_Strict):
    datasets: RelPath = "datasets"
    models: RelPath = "models"
    scripts: RelPath = "scripts"
    configs: RelPath = "configs"
    containers: RelPath = "containers"
    jobs: RelPath = "jobs"
    huggingface: RelPath = "huggingface"

    @field_validator("*")
    @classmethod
    def _rel(cls, value: str) -> str:
        return _relative(value)


class Beegfs(_Strict):
    root: str = Field(pattern=r"^/")
    fs_type: str = Field(min_length=1, description="filesystem type the mount must report")
    min_free_gb: float = Field(gt=0)
    warn_free_gb: float | None = Field(default=None, gt=0, description="WARN below this")
    directories: BeegfsDirectories = BeegfsDirectories()
    training_user: str = Field(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")
    recommended_total_gb: float = Field(default=20, gt=0)

    # Where things live on BeeGFS: the only place a path under the root is joined, so every
    # probe, payload plan and asset names the same bytes.

    def path(self, rel: str) -> str:
        """`rel` (relative, as the catalog's paths are) under the root."""
        return f"{self.root.rstrip('/')}/{rel}"

    def role_directories(self) -> dict[str, str]:
        """Role (datasets, models, scripts, ...) -> absolute directory, in catalog order."""
        return {role: self.path(rel) for role, rel in self.directories.model_dump().items()}

    def directory(self, role: str) -> str:
        """The absolute directory of one role; an unknown role raises KeyError naming the roles."""
        dirs = self.role_directories()
        if role not in dirs:
            raise KeyError(f"no BeeGFS directory role {role!r} (one of {', '.join(dirs)})")
        return dirs[role]

    def hub_cache(self) -> str:
        """huggingface_hub's cache under HF_HOME on BeeGFS: `transformers` finds it offline."""
        return self.directory("huggingface") + "/hub"

    def hub_repo(self, repo_type: str, repo: str) -> str:
        """One repo's folder in the hub cache (huggingface_hub's `<type>s--<org>--<name>`)."""
        return f"{self.hub_cache()}/{repo_type}s--{repo.replace('/', '--')}"

    def hub_snapshot(self, repo_type: str, repo: str, revision: str) -> str:
        """The files of one pinned revision, as huggingface_hub lays them out."""
        return f"{self.hub_repo(repo_type, repo)}/snapshots/{revision}"

    def hub_manifest(self, repo_type: str, repo: str, revision: str) -> str:
        """The staging manifest of one revision, beside (not inside) its snapshot."""
        return f"{self.hub_repo(repo_type, repo)}/.mlops/{revision}.json"

    @staticmethod
    def manifest_path(directory: str) -> str:
        """The manifest that a staged directory (a torchvision dataset, the training files)
        carries at its top."""
        return f"{directory}/{MANIFEST_NAME}"


class Apptainer(_Strict):
    min_version: Version
    require_nv: bool = True
    cachedir: str | None = Field(
        default=None, pattern=r"^/", description="APPTAINER_CACHEDIR for pulls and builds"
    )
    tmpdir: str | None = Field(
        default=None, pattern=r"^/", description="APPTAINER_TMPDIR: local scratch of the build node"
    )


class Gpus(_Strict):
    min_count: int = Field(ge=1)
    vendor: Literal["nvidia"] = "nvidia"
    nvidia_smi: str = "nvidia-smi"
    min_driver_version: Version | None = None
    fake: bool = Field(
        default=False,
        description="GRES backed by fake device files (sandbox): a missing driver is a WARN there",
    )


class SmokeJob(_Strict):
    """SLURM resources of one smoke job."""

    gpus: int = Field(default=1, ge=0)
    cpus: int = Field(default=1, ge=1)
    mem_mb: int = Field(default=4096, ge=1)
    time_limit_min: int = Field(default=10, ge=1)


class MoverJob(SmokeJob):
    """SLURM resources of one staging job: no GPU unless asked for, since data-mover nodes
    usually have none (a `job:` without `gpus` asked for 1 and SLURM refused it on the
    sandbox's CPU node cpu-01: "Requested node configuration is not available")."""

    gpus: int = Field(default=0, ge=0)


class DataMover(_Strict):
    """Staging payloads as SLURM jobs on a data-mover partition instead of on the login node."""

    partition: str
    job: MoverJob = MoverJob(gpus=0, cpus=2, mem_mb=4096, time_limit_min=120)


class Hpc(_Strict):
    access: HpcAccess
    controller_address: str
    slurm: Slurm
    beegfs: Beegfs
    apptainer: Apptainer
    gpus: Gpus
    env: dict[str, str] = Field(
        default_factory=dict, description="environment for jobs, e.g. HF_HOME on BeeGFS"
    )
    data_mover: DataMover | None = Field(
        default=None,
        description=(
            "run downloads/uploads as SLURM jobs on this partition (else on the login node)"
        ),
    )
    python: str = Field(
        default="python3",
        min_length=1,
        pattern=r"^[\w./+-]+$",
        description=(
            "Python on the HPC side that runs the payloads "
            "(needs pyproject's payloads group: huggingface_hub, dagster-pipes, boto3, pyarrow)"
        ),
    )


# ------------------------------------------------------------------------- cloud


class Kubernetes(_Strict):
    min_version: Version
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    namespaces: list[str] = Field(min_length=1)
    gpu_node_label: str = "nvidia.com/gpu.present=true"
    gpu_resource: str = "nvidia.com/gpu"
    min_gpu_nodes: int = Field(default=1, ge=0)
    require_hpa: bool = True
    require_ingress_class: bool = True
    request_timeout_s: float = Field(default=10, gt=0, le=120)


class GpuOperator(_Strict):
    namespace: str = "gpu-operator"
    crds: list[str] = Field(default_factory=lambda: ["clusterpolicies.nvidia.com"])


class Kserve(_Strict):
    min_version: Version
    namespace: str = "kserve"
    controller_deployment: str = "kserve-controller-manager"
    crd: str = "inferenceservices.serving.kserve.io"
    served_version: str = "v1beta1"
    watched_namespaces: list[str] = Field(default_factory=lambda: ["default", "production"])


class Components(_Strict):
    gpu_operator: GpuOperator = GpuOperator()
    kserve: Kserve


class Service(_Strict):
    url: str = Field(pattern=r"^https?://")
    dns_name: str | None = None
    in_cluster_url: str | None = None
    timeout_s: float = Field(default=10, gt=0, le=120)


class SecretRef(_Strict):
    """Names an environment variable; the value never enters the catalog."""

    env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")


class Mlflow(Service):
    probe_experiment: str = "mlops-assets-probe"
    token: SecretRef | None = None


class Minio(Service):
    access_key: SecretRef
    secret_key: SecretRef
    region: str = "us-east-1"
    minio_health_endpoints: bool = Field(
        default=True, description="false where the S3 server is not MinIO (sandbox: SeaweedFS)"
    )


class Prometheus(Service):
    pushgateway_url: str | None = Field(default=None, pattern=r"^https?://")
    min_targets_up_fraction: float = Field(
        default=1.0, ge=0, le=1, description="share of active scrape targets that must be up"
    )
    expected_jobs: list[str] = Field(
        default_factory=list, description="scrape jobs that must exist (a WARN when missing)"
    )


class Grafana(Service):
    token: SecretRef | None = None


class Services(_Strict):
    mlflow: Mlflow
    minio: Minio
    prometheus: Prometheus
    grafana: Grafana


class Bucket(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    required: bool = True
    purpose: str = ""

    @property
    def asset_key(self) -> str:
        """The storage group's asset that creates this bucket."""
        return f"bucket_{self.name.replace('-', '_').replace('.', '_')}"


class Cloud(_Strict):
    kubernetes: Kubernetes
    components: Components
    services: Services
    buckets: list[Bucket] = Field(min_length=1)

    @field_validator("buckets")
    @classmethod
    def _unique_buckets(cls, value: list[Bucket]) -> list[Bucket]:
        names = [b.name for b in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"bucket names must be unique; repeated: {', '.join(dupes)}")
        return value


# ----------------------------------------------------------------------- network


class Network(_Strict):
    hpc_subnet: str
    cloud_subnet: str
    hpc_controller: str
    hpc_compute_first: str
    cloud_control_plane: str
    cloud_worker_first: str
    min_bandwidth_mbps: float = Field(gt=0)
    recommended_bandwidth_mbps: float = Field(gt=0)
    probe_timeout_s: float = Field(default=5, gt=0, le=60)
    internet_targets: dict[Name, str | None] = Field(
        min_length=1,
        description="what the HPC and cloud sides must reach; a profile drops one with null",
    )
    hub_url: str = Field(
        default="https://huggingface.co", pattern=r"^https?://", description="HEAD from both sides"
    )
    bandwidth_probe_mb: float = Field(
        default=8, gt=0, le=1024, description="size of the timed HPC→object store probe object"
    )

    @field_validator("internet_targets")
    @classmethod
    def _drop_nulls(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        kept: dict[str, str | None] = {k: v for k, v in value.items() if v is not None}
        if not kept:
            raise ValueError("at least one internet target must remain")
        return kept

    @model_validator(mode="after")
    def _addresses(self) -> Network:
        hpc = ipaddress.ip_network(self.hpc_subnet, strict=True)
        cloud = ipaddress.ip_network(self.cloud_subnet, strict=True)
        for field, net in (
            ("hpc_controller", hpc),
            ("hpc_compute_first", hpc),
            ("cloud_control_plane", cloud),
            ("cloud_worker_first", cloud),
        ):
            addr = ipaddress.ip_address(getattr(self, field))
            if addr not in net:
                raise ValueError(f"{field} {addr} is outside its subnet {net}")
        if self.recommended_bandwidth_mbps < self.min_bandwidth_mbps:
            raise ValueError("recommended_bandwidth_mbps is below min_bandwidth_mbps")
        return self


# --------------------------------------------------------------- staged things


class TorchvisionSource(_Strict):
    kind: Literal["torchvision"]
    dataset_class: Literal["MNIST", "CIFAR10", "FashionMNIST", "CIFAR100"]
    mirrors: list[str] = Field(default_factory=list)
    md5: dict[str, str] = Field(
        default_factory=dict, description="file name -> md5 for mirrors with their own files"
    )

    @field_validator("md5")
    @classmethod
    def _md5(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k, v in value.items() if not _MD5.match(v)]
        if bad:
            raise ValueError(f"not a 32-hex md5 for: {', '.join(bad)}")
        return value


class HubSource(_Strict):
    kind: Literal["huggingface"]
    repo: RepoId
    revision: str
    allow_patterns: list[str] = Field(default_factory=list)
    config: str | None = None

    @field_validator("revision")
    @classmethod
    def _pinned(cls, value: str) -> str:
        return _pinned_revision(value)


class Dataset(_Strict):
    source: Annotated[TorchvisionSource | HubSource, Field(discriminator="kind")]
    path: RelPath
    approx_size_mb: float = Field(gt=0)
    splits: dict[
        Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")], Annotated[int, Field(ge=1)]
    ] = Field(
        default_factory=dict,
        description="split -> rows (items) the load check requires; empty: any",
    )
    sync_to_bucket: bool = False
    freshness: Freshness | None = None

    @field_validator("path")
    @classmethod
    def _rel(cls, value: str) -> str:
        return _relative(value)


class Model(_Strict):
    repo: RepoId
    revision: str
    approx_size_mb: float = Field(gt=0)
    registered_name: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*$")
    bucket: str = "models"
    allow_patterns: list[str] = Field(default_factory=list)
    parameters: int | None = Field(
        default=None, ge=1, description="parameter count the safetensors headers must add up to"
    )
    parameters_tolerance: float = Field(
        default=0.01, ge=0, lt=1, description="allowed relative difference"
    )
    non_parameter_tensors: list[str] = Field(
        default_factory=list, description="globs of tensor names that are buffers, not parameters"
    )
    freshness: Freshness | None = None

    @field_validator("revision")
    @classmethod
    def _pinned(cls, value: str) -> str:
        return _pinned_revision(value)


class PullSource(_Strict):
    pull: str = Field(
        pattern=r"^((docker|oras|library|shub|https?)://[^\s'\"\\;$`]+|"
        r"(oci|oci-archive|docker-archive):/[^\s'\"\\;$`]+)$",
        description=(
            "registry URI (docker://nvcr.io/nvidia/pytorch:24.07-py3) or a local OCI layout/archive"
        ),
    )


class BuildSource(_Strict):
    build: str = Field(
        pattern=r"^[\w.-]+(/[\w.-]+)*\.def$",
        description=(
            "definition file shipped in the package (mlops_assets/<path>), {{ name }} "
            "placeholders filled from args"
        ),
    )
    bootstrap_from: str | None = Field(
        default=None, description="catalog container whose image fills {{ base_image }}"
    )
    args: dict[str, str] = Field(
        default_factory=dict, description="values for the definition's {{ name }} placeholders"
    )

    @field_validator("build")
    @classmethod
    def _no_parent(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError("must stay inside the package (no '..')")
        return value


_REQUIREMENT = r"^[A-Za-z0-9][A-Za-z0-9._-]*>=\d+(\.\d+)*$"


class Container(_Strict):
    file: str = Field(pattern=r"^[\w.+-]+\.sif$")
    source: PullSource | BuildSource
    where: Literal["login", "slurm"] = Field(
        default="login",
        description="pull/build on the login node or as a SLURM job on build_partition",
    )
    build_partition: str | None = None
    job: SmokeJob = Field(
        default=SmokeJob(gpus=0, cpus=4, mem_mb=16384, time_limit_min=120),
        description="SLURM resources of the build job when where: slurm",
    )
    fakeroot: bool = Field(
        default=True,
        description="apptainer build --fakeroot (the training user's /etc/subuid range)",
    )
    expect_python_packages: list[Annotated[str, Field(pattern=_REQUIREMENT)]] = Field(
        default_factory=list, description="'package>=version' that the image's python3 must have"
    )
    freshness: Freshness | None = None

    @property
    def expected_packages(self) -> dict[str, str]:
        return dict(r.split(">=", 1) for r in self.expect_python_packages)

    @model_validator(mode="after")
    def _partition_for_slurm(self) -> Container:
        if self.where == "slurm" and not self.build_partition:
            raise ValueError("where: slurm needs build_partition (the partition of the build job)")
        return self


class Workstation(_Strict):
    python_min: Version
    cli_tools: list[str] = Field(min_length=1)
    optional_cli_tools: list[str] = Field(default_factory=list)
    python_packages: list[str] = Field(default_factory=list)


class GpuProfile(_Strict):
    """Expected figures of one GPU model, judged as ReFrame references are: PASS at or above
    warn_fraction x expected, WARN down to fail_fraction, FAIL below."""

    match: list[str] = Field(
        min_length=1, description="substrings of the torch/nvidia-smi GPU name"
    )
    matmul_bf16_tflops: float = Field(gt=0, description="8192^3 bf16 matmul through torch")
    copy_gbps: float = Field(gt=0, description="device-to-device copy, GB/s counting read + write")
    allreduce_busbw_gbps: float | None = Field(
        default=None, gt=0, description="2-GPU NCCL all-reduce bus bandwidth at >= 1 GiB"
    )
    warn_fraction: float = Field(default=0.9, gt=0, le=1)
    fail_fraction: float = Field(default=0.75, gt=0, le=1)
    source: str = Field(default="", description="where the expected figures come from")

    @model_validator(mode="after")
    def _fractions(self) -> GpuProfile:
        if self.fail_fraction > self.warn_fraction:
            raise ValueError("fail_fraction must not exceed warn_fraction")
        return self


class SmokeJobs(_Strict):
    gpu: SmokeJob = SmokeJob(gpus=1, cpus=2, mem_mb=8192, time_limit_min=10)
    nccl: SmokeJob = SmokeJob(gpus=2, cpus=4, mem_mb=16384, time_limit_min=10)
    mnist: SmokeJob = SmokeJob(gpus=1, cpus=4, mem_mb=8192, time_limit_min=10)
    ddp: SmokeJob = Field(
        default=SmokeJob(gpus=1, cpus=4, mem_mb=8192, time_limit_min=15),
        description="per node of the multi-node DDP smoke (one task per node)",
    )
    sft: SmokeJob = Field(
        default=SmokeJob(gpus=1, cpus=4, mem_mb=16384, time_limit_min=30),
        description="MLOPS-1.2: --gres=gpu:1 --mem=16G --time=00:30:00",
    )
    cifar_ddp: SmokeJob = Field(
        default=SmokeJob(gpus=1, cpus=8, mem_mb=16384, time_limit_min=20),
        description="per node of MLOPS-2.1's DDP job (one task per node)",
    )


class DdpSmoke(_Strict):
    """Multi-node DDP training smoke (MNIST across nodes, one SLURM job, srun per node). The
    platform's plan: 2 distinct hosts take part, "Training Complete" within 600 s, no NCCL
    WARN in the log."""

    nodes: int = Field(default=2, ge=2, description="nodes the job spans (one rank per node)")
    epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=64, ge=1, description="per rank")
    min_accuracy: float = Field(default=0.95, gt=0, le=1)
    max_seconds: float = Field(default=600, gt=0, description='"Training Complete" within this')
    min_speedup: float | None = Field(
        default=None,
        gt=0,
        description="samples/s across the nodes over one node's; below it is a WARN; unset: "
        "the speedup is reported, not judged (a WARN that says so)",
    )
    join_timeout_s: int = Field(default=120, ge=5, description="how long rank 0 waits for all")
    timeout_s: int = Field(default=300, ge=10, description="collective timeout")
    baseline_batches: int = Field(default=40, ge=5, description="one node's samples/s over these")


class CifarDdpSmoke(_Strict):
    """Validation task MLOPS-2.1: CIFAR-10 ResNet-18 under DDP (batch 128 per GPU, SGD lr
    0.01 momentum 0.9, 3 epochs; pass: both GPUs allocated, under 15 minutes, above 60 %
    accuracy, no NCCL errors), one rank per node of one SLURM job like the MNIST DDP smoke.
    `dataset` names the catalog's torchvision CIFAR10 entry it reads where it was staged."""

    dataset: str = "cifar10"
    nodes: int = Field(default=2, ge=2, description="nodes the job spans (one rank per node)")
    stem: Literal["cifar", "stock"] = Field(
        default="cifar",
        description="cifar: 3x3 stride-1 conv, no max-pool (the usual for 32x32); stock: "
        "torchvision's 7x7/2 + max-pool (~8x less compute, less accurate)",
    )
    train_samples: int = Field(default=0, ge=0, description="first N training images; 0: all")
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=128, ge=1, description="per rank")
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    min_accuracy: float = Field(default=0.6, gt=0, le=1)
    max_seconds: float = Field(default=900, gt=0, description='"Training Complete" within this')
    min_speedup: float | None = Field(
        default=None,
        gt=0,
        description="samples/s across the ranks over one rank's (same model and batch); below "
        "it is a WARN; unset: reported, not judged (a WARN that says so)",
    )
    join_timeout_s: int = Field(default=120, ge=5, description="how long rank 0 waits for all")
    timeout_s: int = Field(default=300, ge=10, description="collective timeout")
    baseline_batches: int = Field(default=20, ge=5, description="one rank's samples/s over these")


class SftSmoke(_Strict):
    """Supervised fine-tuning smoke (validation task MLOPS-1.2: SmolLM-135M on no_robots
    `train[:1000]`, 1 epoch, batch 4, gradient accumulation 4, lr 2e-5, bf16, max_seq_length
    512, under 20 minutes, loss goes down, the checkpoint reloads). `model` and `dataset` name
    catalog entries; a model whose parameter count is not `task_parameters` is a stand-in and
    every verdict says so."""

    model: str = "smollm_135m"
    dataset: str = "no_robots"
    container: str | None = Field(
        default=None, description="catalog container the job runs in; null: smoke.container"
    )
    task_parameters: int = Field(
        default=134_515_008, ge=1, description="the task's model (SmolLM-135M); else a stand-in"
    )
    train_rows: int = Field(default=1000, ge=1)
    eval_rows: int = Field(default=32, ge=0, description="held-out test rows, loss before/after")
    epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=4, ge=1)
    grad_accum: int = Field(default=4, ge=1)
    lr: float = Field(default=2e-5, ge=0)
    max_seq_length: int = Field(default=512, ge=16)
    max_steps: int = Field(default=0, ge=0, description="optimizer steps; 0: no cap")
    log_every: int = Field(default=5, ge=1, description="optimizer steps per logged loss window")
    min_loss_drop_fraction: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        description="the last loss window must be below the first by this share of it",
    )
    max_seconds: float = Field(default=1200, gt=0, description="MLOPS-1.2: under 20 minutes")


class Smoke(_Strict):
    partition: str
    mnist_min_accuracy: float = Field(gt=0, le=1)
    mnist_max_seconds: float = Field(gt=0)
    multi_gpu_count: int = Field(ge=2)
    freshness: Freshness
    mnist_epochs: int = Field(default=5, ge=1, description="MLOPS-1.1: 5 epochs")
    gpu_profiles: dict[str, GpuProfile] = Field(default_factory=dict)
    sibling_min_fraction: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description="a GPU below this share of its siblings' median is named",
    )
    container: str | None = Field(
        default=None, description="catalog container the smoke jobs run in (apptainer exec --nv)"
    )
    jobs: SmokeJobs = SmokeJobs()
    ddp: DdpSmoke = DdpSmoke()
    cifar_ddp: CifarDdpSmoke = CifarDdpSmoke()
    sft: SftSmoke = SftSmoke()
    node_sensor_interval_s: int = Field(default=60, ge=5)
    reuse_training_within_minutes: float = Field(
        default=120,
        ge=0,
        description="a re-run of smoke_mnist_training whose code, config, image and dataset "
        "are unchanged reuses the last training this recent (0: always train)",
    )


class FleetFigure(_Strict):
    """One per-node smoke figure the fleet compares: `key` in the latest materialization of
    each node's partition of `asset`; higher is better. `group_by: gres` compares a node only
    with nodes of the same GRES (H200 with H200); `none` with every node reporting it."""

    asset: Name
    key: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    unit: str = ""
    group_by: Literal["gres", "none"] = "gres"

    @property
    def id(self) -> str:
        return f"{self.asset}.{self.key}"


def _default_fleet_figures() -> list[FleetFigure]:
    gpu = [
        ("smoke_gpu", "min_matmul_bf16_tflops", "TFLOP/s"),
        ("smoke_gpu", "min_copy_gbps", "GB/s"),
        ("smoke_multi_gpu_nccl", "busbw_gbps", "GB/s"),
    ]
    cpu = [  # what the smoke jobs measure where the catalog declares the GPUs fake
        ("smoke_gpu", "cpu_matmul_fp32_gflops", "GFLOP/s"),
        ("smoke_gpu", "cpu_copy_gbps", "GB/s"),
        ("smoke_multi_gpu_nccl", "cpu_allreduce_busbw_gbps", "GB/s"),
    ]
    return [FleetFigure(asset=a, key=k, unit=u, group_by="gres") for a, k, u in gpu] + [
        FleetFigure(asset=a, key=k, unit=u, group_by="none") for a, k, u in cpu
    ]


class Quarantine(_Strict):
    """The opt-in loop that drains failing nodes (dry-run first: it says what it would do).
    It drains a node whose per-node smoke's latest attempt failed or that a listed check
    names in an ERROR failure, resumes only the nodes it drained (reason prefix) once they
    pass again, and never takes more than `max_drained_fraction` of a partition out of
    service (counting nodes already out)."""

    enabled: bool = False
    dry_run: bool = True
    max_drained_fraction: float = Field(default=0.25, ge=0, le=1)
    reason_prefix: str = Field(default="mlops_assets:", pattern=r"^[A-Za-z0-9_.:-]{3,40}$")
    smoke_assets: list[Name] = Field(
        default_factory=lambda: ["smoke_gpu", "smoke_multi_gpu_nccl"],
        description="per-node smoke assets whose failed latest attempt drains the node",
    )
    checks: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*$")]] = Field(
        default_factory=lambda: [
            "fleet_baseline/fleet_nodes_within_peers",
            "gpu_nodes/gpu_nvidia_smi_matches_gres_per_node",
        ],
        description="asset/check whose ERROR failure drains the nodes it names",
    )
    interval_s: int = Field(default=300, ge=30, description="how often the loop looks")
    retest_after_minutes: float = Field(
        default=60,
        ge=0,
        description="re-test a node drained this long (a MAINT reservation for the login user,"
        " drain lifted, its smoke jobs run there); 0: never",
    )
    retest_window_minutes: float = Field(
        default=30, gt=0, description="a re-test without a result by then drains it again"
    )


class Fleet(_Strict):
    """Fleet baselines: a node below its peers or below its own past is named (see
    core/fleet.py for the rules). `severity` is the verdict of a named node."""

    severity: Literal["WARN", "ERROR"] = "WARN"
    sigma: float = Field(default=2.0, gt=0, description="sigma below the others' mean")
    min_fraction_of_median: float = Field(default=0.8, gt=0, le=1)
    sigma_floor_fraction: float = Field(
        default=0.05, ge=0, lt=1, description="sigma is never taken below this share of the mean"
    )
    min_nodes: int = Field(default=3, ge=3, description="fewer nodes: the figure is unjudged")
    own_min_fraction: float = Field(default=0.8, gt=0, le=1)
    own_window: int = Field(default=10, ge=1, description="earlier runs the own median spans")
    own_min_samples: int = Field(default=3, ge=1)
    history_length: int = Field(default=20, ge=2, le=500, description="figures kept per node")
    max_figure_age_hours: float = Field(
        default=72, gt=0, description="older figures leave the baseline (a node that left)"
    )
    figures: list[FleetFigure] = Field(default_factory=_default_fleet_figures, min_length=1)
    quarantine: Quarantine = Quarantine()

    @model_validator(mode="after")
    def _history_long_enough(self) -> Fleet:
        need = max(self.own_window, self.own_min_samples) + 1
        if self.history_length < need:
            raise ValueError(
                f"history_length {self.history_length} cannot hold own_window/own_min_samples"
                f" earlier figures plus the latest: make it at least {need}"
            )
        return self


class Automation(_Strict):
    """The schedules and sensors that keep the platform checked (light checks, nightly
    validation, node and orphan sensors, smoke re-runs when a container changes) start
    RUNNING, so scheduled checks happen without anyone switching them on in the UI; one key
    turns them all off (each can still be toggled in the UI)."""

    running: bool = True
    light_checks_cron: str = Field(
        default="*/15 * * * *", description="schedule of the light checks"
    )
    full_validation_cron: str = Field(default="0 2 * * *", description="nightly full validation")


#: Keys that moved from `smoke:` to `automation:` with the cross-domain schedules
#: (defs/automation); a catalog that still writes them under `smoke:` loads, with a warning.
MOVED_TO_AUTOMATION = ("light_checks_cron", "full_validation_cron")


def _move_crons(data: Any) -> Any:
    """`smoke.<cron>` (the old place) becomes `automation.<cron>`, with a FutureWarning that
    names the new key; both places set to different values is an error, not a guess."""
    if not isinstance(data, dict) or not isinstance(data.get("smoke"), dict):
        return data
    old = {k: data["smoke"][k] for k in MOVED_TO_AUTOMATION if k in data["smoke"]}
    if not old:
        return data
    automation = data.get("automation")
    automation = dict(automation) if isinstance(automation, dict) else {}
    clash = [k for k, v in old.items() if k in automation and automation[k] != v]
    if clash:
        raise ValueError(
            f"{', '.join(f'smoke.{k}' for k in clash)} and automation.{clash[0]} disagree: "
            "the schedules moved to automation:, keep only that one"
        )
    warnings.warn(
        f"catalog: {', '.join(f'smoke.{k}' for k in old)} moved to "
        f"{', '.join(f'automation.{k}' for k in old)}; the old keys still work but are deprecated",
        FutureWarning,
        stacklevel=2,
    )
    smoke = {k: v for k, v in data["smoke"].items() if k not in old}
    return {**data, "smoke": smoke, "automation": {**old, **automation}}


class Staging(_Strict):
    """How much a re-materialization trusts the stat stamp (each staged file's size, mtime
    and inode at its last full verification) instead of re-hashing."""

    rehash_after_hours: float = Field(
        default=168,
        ge=0,
        description=(
            "re-hash a staged copy whose last full verification is older "
            "than this even if no file's size/mtime/inode changed (bit rot "
            "leaves them alone); 0 re-hashes on every materialization"
        ),
    )


class TrainedModel(_Strict):
    """A model the platform trains itself (the MNIST smoke's SimpleCNN), registered in MLflow
    and copied to the models bucket (defs/registry). `production_min_accuracy`: the bar for
    the alias `production`; null = the smoke's own (`smoke.mnist_min_accuracy`)."""

    registered_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    experiment: str = Field(min_length=1)
    bucket: str = "models"
    prefix: str = Field(default="mnist", pattern=r"^[a-z0-9][a-z0-9._/-]*[a-z0-9]$")
    candidate_alias: str = "candidate"
    production_alias: str = "production"
    rollback_alias: str = "rollback"
    production_min_accuracy: float | None = Field(default=None, gt=0, le=1)
    register_budget_s: float = Field(default=60, gt=0)
    copy_budget_s: float = Field(default=120, gt=0)

    @model_validator(mode="after")
    def _distinct_aliases(self) -> TrainedModel:
        names = [self.candidate_alias, self.production_alias, self.rollback_alias]
        if len(set(names)) != 3:
            raise ValueError(f"the three aliases must differ: {names}")
        return self


class Registry(_Strict):
    """Trained models the registry group registers (validation tasks 2 and 4)."""

    mnist: TrainedModel = TrainedModel(
        registered_name="mnist-simplecnn", experiment="mlops-assets-mnist"
    )


class LocalModelServer(_Strict):
    """Where there is no KServe controller (the sandbox), KServe's Python model server runs on
    this machine on loopback: `python` has kserve==0.21.0 and torch; `state_dir` keeps its pid
    and version (default: ~/.local/state/mlops-assets/serving). `prometheus_sd_file`: a
    file_sd target list the server is written into while it runs, as a ServiceMonitor would
    appear with a predictor pod (null: Prometheus is told nothing)."""

    python: str = "/opt/mlops-assets/kserve/bin/python"
    port: int = Field(default=8085, ge=1024, le=65535)
    state_dir: str | None = None
    prometheus_sd_file: str | None = None


class ServedModel(_Strict):
    """The registered MNIST version served (defs/serving, validation task 4): an
    InferenceService `isvc_name` in `namespace` whose v2 model is `model_name`.
    `deploy: kserve` applies it and waits for KServe's Ready; `deploy: local` (no controller)
    also applies it, then runs the model server itself (`local`). Thresholds: the validation
    tasks' (deploy < 3 min, Ready < 10 min, p95 < 100 ms) and the held-out accuracy."""

    isvc_name: str = Field(default="mnist-simplecnn", pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
    namespace: str = Field(default="mlops", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    model_name: str = Field(default="mnist", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    deploy: Literal["kserve", "local"] = "kserve"
    url: str | None = None  # kserve: the endpoint to measure; default the status' URL
    local: LocalModelServer = LocalModelServer()
    held_out_samples: int = Field(default=1000, ge=10)
    min_accuracy: float = Field(default=0.95, gt=0, le=1)
    load_requests: int = Field(default=200, ge=1)
    load_concurrency: int = Field(default=4, ge=1)
    max_p95_ms: float = Field(default=100, gt=0)
    min_throughput_rps: float = Field(default=10, gt=0)
    deploy_budget_s: float = Field(default=180, gt=0)
    ready_budget_s: float = Field(default=600, gt=0)
    prometheus_job: str = "kserve"  # the scrape job that reads the model server's /metrics
    prometheus_wait_s: float = Field(default=30, ge=0)


class Serving(_Strict):
    """Models the serving group deploys and measures."""

    mnist: ServedModel = ServedModel()


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
    def _references(self) -> Catalog:
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
