"""The active catalog and the resources it implies. The only module that knows which
profile is selected; everything else receives a Catalog."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from mlops_assets.catalog.loader import (
    DEFAULT_SANDBOX_HOME,
    SANDBOX_HOME_ENV,
    LoadedCatalog,
    load_catalog,
    resolve_profile,
)
from mlops_assets.catalog.schema import Catalog


def sandbox_home() -> Path:
    return Path(os.environ.get(SANDBOX_HOME_ENV) or DEFAULT_SANDBOX_HOME)


def load_sandbox_env(home: Path | None = None) -> list[str]:
    """deploy/sandbox writes its generated credentials to sandbox.env; the sandbox profile
    reads them from there unless the environment already has them. Returns the names set."""
    path = (home or sandbox_home()) / "sandbox.env"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    names = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip().strip("'\"")
        if key and key not in os.environ:
            os.environ[key] = value
            names.append(key)
    return names


@lru_cache(maxsize=4)
def _load(path: str | None, profile: str) -> LoadedCatalog:
    if profile == "sandbox":
        load_sandbox_env()
    return load_catalog(path, profile)


def active() -> LoadedCatalog:
    """The catalog selected by MLOPS_CATALOG / MLOPS_PROFILE (default: shipped, sandbox)."""
    return _load(os.environ.get("MLOPS_CATALOG") or None, resolve_profile())


def secret_env_names(catalog: Catalog) -> list[str]:
    s = catalog.cloud.services
    refs = [s.minio.access_key, s.minio.secret_key, s.mlflow.token, s.grafana.token]
    return [r.env for r in refs if r is not None]


def secret_values(catalog: Catalog) -> list[str]:
    return [os.environ[n] for n in secret_env_names(catalog) if os.environ.get(n)]


def build_resources(catalog: Catalog) -> dict[str, Any]:
    """Resources for every check and asset, configured from the catalog. Secrets resolve in
    the run worker, whatever the code-location process has: the S3 keys by EnvVar (required:
    a run without them fails naming the variable), the optional bearer tokens by name."""
    import dagster as dg

    from mlops_assets.resources.clients import (
        HttpServiceResource,
        KubernetesResource,
        S3Resource,
    )
    from mlops_assets.resources.hpc import HpcSide

    svc = catalog.cloud.services
    kube = catalog.cloud.kubernetes

    def token_env(ref: Any) -> str:
        return ref.env if ref is not None else ""

    return {
        "hpc": HpcSide.from_catalog(catalog),
        "s3": S3Resource(
            endpoint_url=svc.minio.url,
            access_key_id=dg.EnvVar(svc.minio.access_key.env),
            secret_access_key=dg.EnvVar(svc.minio.secret_key.env),
            region=svc.minio.region,
            timeout_s=svc.minio.timeout_s,
        ),
        "kubernetes": KubernetesResource(
            kubeconfig=kube.kubeconfig,
            context=kube.context,
            in_cluster=kube.in_cluster,
            timeout_s=kube.request_timeout_s,
        ),
        "mlflow": HttpServiceResource(
            url=svc.mlflow.url,
            timeout_s=svc.mlflow.timeout_s,
            token_env=token_env(svc.mlflow.token),
        ),
        "minio_http": HttpServiceResource(url=svc.minio.url, timeout_s=svc.minio.timeout_s),
        "prometheus": HttpServiceResource(
            url=svc.prometheus.url, timeout_s=svc.prometheus.timeout_s
        ),
        "pushgateway": HttpServiceResource(
            url=svc.prometheus.pushgateway_url or svc.prometheus.url,
            timeout_s=svc.prometheus.timeout_s,
        ),
        "grafana": HttpServiceResource(
            url=svc.grafana.url,
            timeout_s=svc.grafana.timeout_s,
            token_env=token_env(svc.grafana.token),
        ),
    }
