"""The HPC side of the catalog (`hpc:`): login, SLURM, BeeGFS and where things live on it,
Apptainer, GPUs, the SLURM resources of a job, the data mover. No Dagster imports."""

from typing import Literal, Self

from pydantic import Field, model_validator

from mlops_assets.catalog.schema.fields import RelPath, Version, _Strict

# a standard-library leaf (shipped to the HPC side as mlops_manifest.py): the payloads and the
# catalog name the manifest file from this one constant
from mlops_assets.core.manifest import MANIFEST_NAME


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
    def _warn_below_error(self) -> Self:
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
