"""Cloud infrastructure: Kubernetes, the GPU Operator, KServe, MLflow, MinIO, Prometheus and
Grafana, each proven to do its job rather than merely to answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog
from mlops_assets.checking import ProbeContext, ProbeSpec, asset_checks, externals
from mlops_assets.core.checks import CheckSpec, Outcome, Severity, bound
from mlops_assets.core.probes import cloud as r
from mlops_assets.platform import active

GROUP = "cloud"


Rule = Callable[[Any, Catalog], Outcome]


def _with(resource: str, rule: Rule) -> Callable[[ProbeContext], Outcome]:
    """`rule(<the named resource>, catalog)`; the core probes type their client loosely (a
    test gives them a fake), so the resource is looked up by its key here."""
    return lambda ctx: rule(getattr(ctx, resource), ctx.catalog)


@dataclass(frozen=True)
class _ChecksOn:
    """Writes the rows of `asset`'s checks, each probing `rule(<client>, catalog)` with the
    asset's own client, or `via` another (the Kubernetes API answers for the operator and
    KServe), so that a row names its check and not the plumbing."""

    asset: str
    via: str = ""

    def __call__(
        self,
        name: str,
        severity: Severity,
        why: str,
        rule: Rule,
        blocking: bool = False,
        light: bool = True,
    ) -> ProbeSpec:
        client = self.via or self.asset
        return CheckSpec(
            self.asset, name, severity, why, _with(client, rule), (client,), blocking, light
        )


def _buckets_exist(ctx: ProbeContext, required: bool) -> Outcome:
    return r.minio_buckets_exist(ctx.s3.probe_client(), ctx.catalog, required)


def specs(catalog: Catalog) -> list[ProbeSpec]:
    E, W = Severity.ERROR, Severity.WARN
    k = catalog.cloud.kubernetes
    hpa = E if k.require_hpa else W
    ingress = E if k.require_ingress_class else W
    kube = _ChecksOn("kubernetes")
    operator = _ChecksOn("gpu_operator", via="kubernetes")
    kserve = _ChecksOn("kserve", via="kubernetes")
    mlflow, minio = _ChecksOn("mlflow"), _ChecksOn("minio", via="minio_http")
    prometheus, grafana = _ChecksOn("prometheus"), _ChecksOn("grafana")
    return [
        kube(
            "k8s_version_at_least_minimum",
            E,
            "Older clusters lack APIs KServe and the HPA rely on.",
            r.k8s_version,
        ),
        kube(
            "k8s_namespaces_exist",
            E,
            "Deployments and services land in these namespaces.",
            r.k8s_namespaces,
        ),
        kube(
            "k8s_gpu_nodes_ready",
            E,
            "GPU inference needs Ready nodes with allocatable GPUs.",
            r.k8s_gpu_nodes,
        ),
        kube(
            "k8s_hpa_api_served",
            hpa,
            "Autoscaling of inference services needs autoscaling/v2.",
            r.k8s_hpa_served,
        ),
        kube(
            "k8s_ingress_class_exists",
            ingress,
            "Services are reached through the ingress by DNS name.",
            r.k8s_ingress_class,
        ),
        operator(
            "gpu_operator_validators_passed",
            E,
            "The validator proves driver, toolkit and CUDA on each GPU node.",
            r.gpu_operator_validators,
        ),
        operator(
            "gpu_operator_device_plugin_running",
            E,
            "Without the device plugin no pod can request a GPU.",
            r.gpu_operator_device_plugin,
        ),
        kube(
            "k8s_platform_pods_running",
            E,
            "MLflow, MinIO, Prometheus and Grafana run as pods on the cluster.",
            r.platform_pods_running,
        ),
        operator(
            "gpu_operator_crds_present",
            E,
            "The operator is configured through its CRDs.",
            r.gpu_operator_crds,
        ),
        operator(
            "gpu_operator_clusterpolicy_ready",
            E,
            "The operator's own verdict over driver, toolkit, plugin and validator: the CRD "
            "existing proves none of them runs.",
            r.gpu_operator_clusterpolicy,
        ),
        kserve(
            "kserve_serving_runtimes_present",
            E,
            "PyTorch and Hugging Face models need serving runtimes.",
            r.kserve_serving_runtimes,
        ),
        kserve(
            "kserve_crd_serves_v1beta1",
            E,
            "InferenceService manifests are written for v1beta1.",
            r.kserve_crd,
        ),
        kserve(
            "kserve_version_at_least_minimum",
            E,
            "Older KServe lacks the runtimes the validation tasks use.",
            r.kserve_version,
        ),
        kserve(
            "kserve_inference_services_ready",
            W,
            "A service that is not Ready answers no requests.",
            r.kserve_isvcs_ready,
            light=False,
        ),
        mlflow(
            "mlflow_health_endpoint",
            E,
            "Liveness first; the next checks go deeper.",
            r.mlflow_health,
            blocking=True,
        ),
        mlflow(
            "mlflow_experiments_search_answers",
            E,
            "/health never touches the backend store; this does.",
            r.mlflow_experiments,
        ),
        mlflow(
            "mlflow_model_registry_answers",
            E,
            "Staged models are registered here.",
            r.mlflow_registry,
        ),
        mlflow(
            "mlflow_artifact_round_trip",
            E,
            "Runs and models live in the artifact store, which "
            "no MLflow endpoint but an upload touches.",
            r.mlflow_artifact_round_trip,
            light=False,
        ),
        CheckSpec(
            "minio",
            "minio_credentials_list_buckets",
            E,
            "Proves the endpoint and the credentials with one signed call.",
            lambda ctx: r.minio_buckets_listable(ctx.s3.probe_client(), ctx.catalog),
            ("s3",),
            blocking=True,
        ),
        *_bucket_specs(catalog),
        minio(
            "minio_write_quorum",
            E,
            "MinIO answers liveness even when it cannot write.",
            r.minio_cluster_health,
        ),
        prometheus(
            "prometheus_ready",
            E,
            "/-/healthy always answers; /-/ready means queries work.",
            r.prometheus_ready,
        ),
        prometheus(
            "prometheus_targets_up",
            E,
            "A dead scrape target means a blind spot on the dashboards.",
            r.prometheus_targets_up,
        ),
        prometheus(
            "prometheus_targets_scraped",
            W,
            "A target not scraped yet (health unknown) is not judged up or down.",
            r.prometheus_targets_scraped,
        ),
        *(
            [
                prometheus(
                    "prometheus_expected_jobs_present",
                    W,
                    "A missing job means whole exporters were never scraped.",
                    r.prometheus_expected_jobs,
                )
            ]
            if catalog.cloud.services.prometheus.expected_jobs
            else []
        ),
        grafana(
            "grafana_database_ok",
            E,
            "Grafana answers /api/health even when its database fails.",
            r.grafana_health,
        ),
    ]


def _bucket_specs(catalog: Catalog) -> list[ProbeSpec]:
    """Cloud-side existence of the catalog's buckets (required: ERROR, optional: WARN); the
    storage group's bucket assets create them and prove writes."""
    out: list[ProbeSpec] = []
    for required, severity, label in (
        (True, Severity.ERROR, "required"),
        (False, Severity.WARN, "optional"),
    ):
        if any(b.required == required for b in catalog.cloud.buckets):
            out.append(
                CheckSpec(
                    "minio",
                    f"minio_{label}_buckets_exist",
                    severity,
                    f"The {label} catalog buckets exist; each missing one is named.",
                    bound(_buckets_exist, required),
                    ("s3",),
                    needs=tuple(
                        b.asset_key for b in catalog.cloud.buckets if b.required == required
                    ),
                )
            )
    return out


def build(catalog: Catalog) -> dg.Definitions:
    svc = catalog.cloud.services
    # (key, kinds, description[, deps])
    assets = externals(
        GROUP,
        ("kubernetes", ["kubernetes"], "The cloud cluster's API server, nodes and namespaces."),
        (
            "gpu_operator",
            ["kubernetes", "nvidia"],
            "NVIDIA GPU Operator: driver, toolkit, device plugin, validator.",
            ["kubernetes"],
        ),
        (
            "kserve",
            ["kubernetes", "kserve"],
            "KServe CRDs, controller and InferenceServices.",
            ["kubernetes"],
        ),
        ("mlflow", ["mlflow"], f"MLflow tracking and registry at {svc.mlflow.url}."),
        ("minio", ["minio", "s3"], f"S3 object store at {svc.minio.url}."),
        ("prometheus", ["prometheus"], f"Prometheus at {svc.prometheus.url}."),
        ("grafana", ["grafana"], f"Grafana at {svc.grafana.url}.", ["prometheus"]),
    )
    return dg.Definitions(
        assets=assets, asset_checks=asset_checks(specs(catalog), name="cloud_checks")
    )


defs = build(active().catalog)
