"""Dagster resources for the cloud services the checks and assets talk to (the HPC side is
resources/hpc.py). Each has connect and read timeouts; secrets arrive only through EnvVar;
heavy clients (boto3, kubernetes) are imported on first use, never at code-location load."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from mlops_assets.core.transport import http


class HttpServiceResource(dg.ConfigurableResource):
    """MLflow, Prometheus, Grafana: a base URL, a timeout, and an optional bearer token (the
    one header it sends: its callers need no other).

    `token_env` names the variable that holds the token; it is read when a request is sent,
    so in the run worker (or the sensor's process), never when the code location loads: a
    deployment that gives the secret only to run pods still sends it. Unset there, requests
    go without a token, as the token is optional (Grafana's /api/health needs none)."""

    url: str
    timeout_s: float = 10
    token: str | None = None
    token_env: str = ""

    def bearer(self) -> str | None:
        return self.token or (os.environ.get(self.token_env) if self.token_env else None) or None

    def get(self, path: str) -> http.HttpAnswer:
        return self.call("GET", path)

    def call(self, method: str, path: str, *, body: bytes | None = None) -> http.HttpAnswer:
        token = self.bearer()
        return http.request(
            self.url.rstrip("/") + path,
            method=method,
            timeout_s=self.timeout_s,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            body=body,
        )


class _BuiltOnce(dg.ConfigurableResource):
    """A resource whose heavy clients (boto3, kubernetes) are imported and built on first use,
    never at code-location load, and then shared: one build per key, under a lock, since the
    run worker's threads share the resource."""

    _built: dict[str, Any] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def _once(self, key: str, build: Callable[[], Any]) -> Any:
        """`build()`'s client, built the first time `key` is asked for; a build that raises
        stores nothing, so the next call tries again."""
        with self._lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]


class S3Resource(_BuiltOnce):
    """MinIO (or any S3 server): path-style addressing, custom endpoint, bounded retries."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"
    timeout_s: float = 10

    def client(self) -> Any:
        """For transfers: the first try and two retries."""
        return self._once("client", lambda: self._build(max_attempts=3))

    def probe_client(self) -> Any:
        """For checks: one attempt per call, so a dead endpoint fails within timeout_s
        (client() retries twice, which suits transfers)."""
        return self._once("probe_client", lambda: self._build(max_attempts=1))

    def _build(self, max_attempts: int) -> Any:
        """max_attempts counts the first try (botocore's total_max_attempts)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=self.timeout_s,
                read_timeout=self.timeout_s,
                retries={"total_max_attempts": max_attempts, "mode": "standard"},
                signature_version="s3v4",
            ),
        )


class KubernetesResource(_BuiltOnce):
    """The cloud cluster's API: a kubeconfig and context, or in-cluster credentials."""

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    timeout_s: float = 10

    def api_client(self) -> Any:
        return self._once("api_client", self._make_api)

    def _make_api(self) -> Any:
        from kubernetes import client, config

        # no urllib3 retries (its default is 3): a dead API server fails a check within
        # timeout_s instead of four times that
        cfg = client.Configuration()
        cfg.retries = 0
        if self.in_cluster:
            config.load_incluster_config(client_configuration=cfg)
            return client.ApiClient(cfg)
        path = os.path.expanduser(self.kubeconfig) if self.kubeconfig else None
        if path and not os.path.isfile(path):
            from mlops_assets.core.checks import ProbeFailed

            raise ProbeFailed(
                f"kubeconfig {path} does not exist",
                "set cloud.kubernetes.kubeconfig (or KUBECONFIG) to a readable kubeconfig",
            )
        config.load_kube_config(
            config_file=path,
            context=self.context,
            client_configuration=cfg,
            persist_config=False,
        )
        return client.ApiClient(cfg)

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """GET a raw API path and return the decoded JSON; timeouts bounded."""
        return self.call("GET", path, query=query)

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        """One API request (a PATCH takes `content_type` application/merge-patch+json); the
        decoded JSON answer. An error status raises the client's ApiException."""
        api = self.api_client()
        # the kubernetes client 36 installed here takes response_types_map; older ones response_type
        import inspect

        typed = (
            {"response_types_map": {200: "object", 201: "object"}}
            if "response_types_map" in inspect.signature(api.call_api).parameters
            else {"response_type": "object"}
        )
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        return api.call_api(
            path,
            method,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
            **typed,
            _preload_content=True,
            _return_http_data_only=True,
            _request_timeout=(self.timeout_s, self.timeout_s),
        )
