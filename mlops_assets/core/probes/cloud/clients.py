"""What the cloud probes take: a Kubernetes API client and HTTP service clients, as
Protocols (a test passes a fake or a local server, production a resource), and how
their failures become a ProbeFailed with a hint; and the verdict of an endpoint judged by
its HTTP status. No Dagster imports."""

from __future__ import annotations

from typing import Any, Protocol

from mlops_assets.core.checks import Outcome, ProbeFailed, Scalar
from mlops_assets.core.transport import http as transport


class Kube(Protocol):
    def get(self, path: str, query: dict[str, str] | None = None) -> Any: ...


class Http(Protocol):
    url: str

    def get(self, path: str) -> transport.HttpAnswer: ...


class HttpCall(Http, Protocol):
    """An Http that also sends another method: the artifact probe DELETEs its file through
    MLflow's artifact proxy. Only what a probe sends is asked of the client."""

    def call(self, method: str, path: str) -> transport.HttpAnswer: ...


def _kget(kube: Kube, path: str, query: dict[str, str] | None = None) -> Any:
    try:
        return kube.get(path, query)
    except ProbeFailed:
        raise
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status == 404:
            return None
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise ProbeFailed(
            f"Kubernetes API GET {path} failed: {status or ''} {reason}".strip(),
            "check cloud.kubernetes.kubeconfig/context and that "
            "the API server answers (kubectl get nodes)",
        ) from None


def _items(obj: Any) -> list[dict[str, Any]]:
    return list((obj or {}).get("items") or [])


def _pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return _items(_kget(kube, f"/api/v1/namespaces/{namespace}/pods"))


def _answer(http: Http, path: str, hint: str) -> transport.HttpAnswer:
    try:
        return http.get(path)
    except transport.HttpUnreachable as exc:
        raise ProbeFailed(str(exc), hint) from None


def _status_200(
    ans: transport.HttpAnswer,
    unit: str,
    hint: str,
    *,
    detail: str = "",
    extra: dict[str, Scalar] | None = None,
) -> Outcome:
    """An endpoint whose HTTP status is the measurement (health, ready, a search that must
    answer): 200 passes. One place, so every such check reports its status alike."""
    return Outcome(ans.status == 200, ans.status, 200, unit, hint, detail=detail, extra=extra or {})
