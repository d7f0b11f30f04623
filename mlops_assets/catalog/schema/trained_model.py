"""The model the platform trains itself: where it is registered (`registry:`) and how it
is served and measured (`serving:`). No Dagster imports."""

from typing import Literal, Self

from pydantic import Field, model_validator

from mlops_assets.catalog.schema.fields import _Strict


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
    def _distinct_aliases(self) -> Self:
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
