"""The cloud side of the catalog (`cloud:`): the Kubernetes cluster and its components
(GPU Operator, KServe), the services (MLflow, MinIO, Prometheus, Grafana) and the
buckets. No Dagster imports."""

from pydantic import Field, field_validator

from mlops_assets.catalog.schema.fields import Version, _Strict


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
