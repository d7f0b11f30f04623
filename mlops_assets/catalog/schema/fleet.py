"""Fleet baselines and the quarantine loop (`fleet:`): which per-node figures are compared,
how far below its peers or its past a node may fall, and when a failing node is drained.
No Dagster imports."""

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from mlops_assets.catalog.schema.fields import Name, _Strict


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
    def _history_long_enough(self) -> Self:
        need = max(self.own_window, self.own_min_samples) + 1
        if self.history_length < need:
            raise ValueError(
                f"history_length {self.history_length} cannot hold own_window/own_min_samples"
                f" earlier figures plus the latest: make it at least {need}"
            )
        return self
