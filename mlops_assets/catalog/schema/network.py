"""The network between the two sides (`network:`): subnets and addresses, bandwidth, and
what both sides must reach. No Dagster imports."""

import ipaddress
from typing import Self

from pydantic import Field, field_validator, model_validator

from mlops_assets.catalog.schema.fields import Name, _Strict


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
    def _addresses(self) -> Self:
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
