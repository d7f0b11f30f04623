"""The things staged on the HPC side (`datasets:`, `models:`, `containers:`): where each
comes from, pinned, and what it must hold; and `staging:`, how far a re-staging trusts
the stat stamp. No Dagster imports."""

import re
from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from mlops_assets.catalog.schema.fields import (
    Freshness,
    PinnedRevision,
    RelPath,
    RepoId,
    _Strict,
)
from mlops_assets.catalog.schema.hpc import SmokeJob

_MD5 = re.compile(r"^[0-9a-f]{32}$")


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
    revision: PinnedRevision
    allow_patterns: list[str] = Field(default_factory=list)
    config: str | None = None


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


class Model(_Strict):
    repo: RepoId
    revision: PinnedRevision
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
    def _partition_for_slurm(self) -> Self:
        if self.where == "slurm" and not self.build_partition:
            raise ValueError("where: slurm needs build_partition (the partition of the build job)")
        return self


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
