"""Dagster resources for the cloud services the checks and assets talk to (the HPC side is
resources/hpc.py). Each has connect and read timeouts; secrets arrive only through EnvVar;
heavy clients (boto3, kubernetes) are imported on first use, never at code-location load."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from mlops_assets.core.transport.http import HttpAnswer, request


class HttpServiceResource(dg.ConfigurableResource):
    """MLflow, Prometheus, Grafana: a base URL, a timeout, and an optional bearer token.

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

    def get(self, path: str, *, headers: Mapping[str, str] | None = None) -> HttpAnswer:
        return self.call("GET", path, headers=headers)

    def call(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpAnswer:
        all_headers = dict(headers or {})
        token = self.bearer()
        if token:
            all_headers.setdefault("Authorization", f"Bearer {token}")
        return request(
            self.url.rstrip("/") + path,
            method=method,
            timeout_s=self.timeout_s,
            headers=all_headers,
            body=body,
        )


class S3Resource(dg.ConfigurableResource):
    """MinIO (or any S3 server): path-style addressing, custom endpoint, bounded retries."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"
    timeout_s: float = 10

    _client: Any = PrivateAttr(default=None)
    _probe_client: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def client(self) -> Any:
        with self._lock:
            return self._make_client()

    def probe_client(self) -> Any:
        """For checks: one attempt per call, so a dead endpoint fails within timeout_s
        (client() retries twice, which suits transfers)."""
        with self._lock:
            if self._probe_client is None:
                self._probe_client = self._build(max_attempts=1)
            return self._probe_client

    def _make_client(self) -> Any:
        if self._client is None:
            self._client = self._build(max_attempts=3)  # the first try and two retries, as before
        return self._client

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


class KubernetesResource(dg.ConfigurableResource):
    """The cloud cluster's API: a kubeconfig and context, or in-cluster credentials."""

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    timeout_s: float = 10

    _api: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def api_client(self) -> Any:
        with self._lock:
            return self._make_api()

    def _make_api(self) -> Any:
        if self._api is None:
            import os

            from kubernetes import client, config

            # no urllib3 retries (its default is 3): a dead API server fails a check within
            # timeout_s instead of four times that
            cfg = client.Configuration()
            cfg.retries = 0
            if self.in_cluster:
                config.load_incluster_config(client_configuration=cfg)
                self._api = client.ApiClient(cfg)
            else:
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
                self._api = client.ApiClient(cfg)
        return self._api

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
