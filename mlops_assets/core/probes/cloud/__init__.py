"""Probes of the cloud side: Kubernetes, GPU Operator, KServe, MLflow, MinIO, Prometheus,
Grafana. Each takes injected clients (anything with `.get(path)`, see `clients`) and the
catalog; no Dagster imports. They go past liveness: each proves the service does its job.

One module per thing probed (`k8s`, `gpu_operator`, `kserve`, `mlflow_server`, `monitoring`,
`object_store`); every probe is importable from here, as the cloud domain's check table reads
them."""

from __future__ import annotations

from mlops_assets.core.probes.cloud.clients import Http, HttpCall, Kube
from mlops_assets.core.probes.cloud.gpu_operator import (
    CLUSTERPOLICIES,
    gpu_operator_clusterpolicy,
    gpu_operator_crds,
    gpu_operator_device_plugin,
    gpu_operator_validators,
)
from mlops_assets.core.probes.cloud.k8s import (
    k8s_gpu_nodes,
    k8s_hpa_served,
    k8s_ingress_class,
    k8s_namespaces,
    k8s_version,
    platform_pods_running,
)
from mlops_assets.core.probes.cloud.kserve import (
    isvc_not_ready,
    kserve_crd,
    kserve_isvcs_ready,
    kserve_serving_runtimes,
    kserve_version,
)
from mlops_assets.core.probes.cloud.mlflow_server import (
    ARTIFACT_API,
    PROXY_SCHEME,
    mlflow_artifact_round_trip,
    mlflow_experiments,
    mlflow_health,
    mlflow_registry,
)
from mlops_assets.core.probes.cloud.monitoring import (
    NOT_SCRAPED,
    grafana_health,
    prometheus_expected_jobs,
    prometheus_ready,
    prometheus_targets_scraped,
    prometheus_targets_up,
)
from mlops_assets.core.probes.cloud.object_store import (
    CREDENTIAL_ERRORS,
    minio_buckets_exist,
    minio_buckets_listable,
    minio_cluster_health,
    s3_error_code,
)

__all__ = [
    "ARTIFACT_API",
    "CLUSTERPOLICIES",
    "CREDENTIAL_ERRORS",
    "NOT_SCRAPED",
    "PROXY_SCHEME",
    "Http",
    "HttpCall",
    "Kube",
    "gpu_operator_clusterpolicy",
    "gpu_operator_crds",
    "gpu_operator_device_plugin",
    "gpu_operator_validators",
    "grafana_health",
    "isvc_not_ready",
    "k8s_gpu_nodes",
    "k8s_hpa_served",
    "k8s_ingress_class",
    "k8s_namespaces",
    "k8s_version",
    "kserve_crd",
    "kserve_isvcs_ready",
    "kserve_serving_runtimes",
    "kserve_version",
    "minio_buckets_exist",
    "minio_buckets_listable",
    "minio_cluster_health",
    "mlflow_artifact_round_trip",
    "mlflow_experiments",
    "mlflow_health",
    "mlflow_registry",
    "platform_pods_running",
    "prometheus_expected_jobs",
    "prometheus_ready",
    "prometheus_targets_scraped",
    "prometheus_targets_up",
    "s3_error_code",
]
