"""Registered model versions in MLflow through its REST API (no mlflow import: the orchestrator
needs six endpoints, not the library): find the version of a staged model by its manifest
digest, or create the registered model and the version with `source` = the MinIO copy, then
tag it. No Dagster imports; `api` is anything with `.call(method, path, body=...)` and
`.get(path)` answering core.transport.http.HttpAnswer (resources.clients.HttpServiceResource)."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

from mlops_assets.core.checks import Outcome, ProbeFailed

API = "/api/2.0/mlflow"
TAG_REPO = "source_repo"
TAG_REVISION = "revision"
TAG_DIGEST = "manifest_digest"
TAG_URI = "minio_uri"
TAG_MANAGED = "managed_by"


class RegistryError(ProbeFailed):
    """MLflow answered with an error (or not at all); carries a hint."""


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    created: bool
    source: str
    tags: dict[str, str]


def version_tags(repo: str, revision: str, digest: str, uri: str) -> dict[str, str]:
    return {
        TAG_REPO: repo,
        TAG_REVISION: revision,
        TAG_DIGEST: digest,
        TAG_URI: uri,
        TAG_MANAGED: "mlops_assets",
    }


def _answer(
    api: Any, method: str, path: str, payload: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    from mlops_assets.core.transport.http import HttpUnreachable

    try:
        if method == "GET":
            ans = api.get(path)
        else:
            ans = api.call(
                method,
                path,
                headers={"Content-Type": "application/json"},
                body=json.dumps(payload or {}).encode(),
            )
    except HttpUnreachable as exc:
        raise RegistryError(
            f"MLflow did not answer: {exc}", "check the mlflow checks (is the tracking server up?)"
        ) from None
    try:
        doc = ans.json() if ans.body else {}
    except ValueError:
        doc = {"message": ans.text[:200]}
    return ans.status, doc if isinstance(doc, dict) else {}


def _fail(what: str, status: int, doc: dict[str, Any]) -> RegistryError:
    code = doc.get("error_code", "")
    msg = str(doc.get("message", ""))[:300]
    return RegistryError(
        f"MLflow {what} answered {status} {code}: {msg}".strip(),
        "check the mlflow checks and the tracking server's log",
    )


def _tags(version: dict[str, Any]) -> dict[str, str]:
    return {str(t.get("key")): str(t.get("value")) for t in version.get("tags", []) or []}


def versions(api: Any, name: str) -> list[dict[str, Any]]:
    """Every version of the registered model `name` (empty when it does not exist)."""
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    out: list[dict[str, Any]] = []
    token = ""
    while True:
        query = {"filter": f"name='{quoted}'", "max_results": "1000"}
        if token:
            query["page_token"] = token
        status, doc = _answer(
            api, "GET", f"{API}/model-versions/search?" + urllib.parse.urlencode(query)
        )
        if status != 200:
            raise _fail("model-versions/search", status, doc)
        out += doc.get("model_versions", []) or []
        token = str(doc.get("next_page_token") or "")
        if not token:
            return out


def find_by_digest(found: list[dict[str, Any]], digest: str, uri: str) -> dict[str, Any] | None:
    """The newest version carrying this manifest digest and MinIO URI."""
    same = [
        v for v in found if _tags(v).get(TAG_DIGEST) == digest and _tags(v).get(TAG_URI, uri) == uri
    ]
    return max(same, key=lambda v: int(v.get("version", 0))) if same else None


def register(
    api: Any, name: str, source: str, tags: dict[str, str], description: str = ""
) -> Registered:
    """Idempotent: a version whose manifest digest tag matches is reused (created=False);
    otherwise the registered model is created if missing, then the version, then its tags."""
    digest = tags[TAG_DIGEST]
    existing = find_by_digest(versions(api, name), digest, source)
    if existing is not None:
        have = _tags(existing)
        version = str(existing["version"])
        for key, value in tags.items():
            if have.get(key) != value:
                _set_tag(api, name, version, key, value)
        return Registered(name, version, False, str(existing.get("source", "")), {**have, **tags})

    status, doc = _answer(
        api, "GET", f"{API}/registered-models/get?" + urllib.parse.urlencode({"name": name})
    )
    if status == 404 or doc.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
        status, doc = _answer(
            api,
            "POST",
            f"{API}/registered-models/create",
            {
                "name": name,
                "description": description,
                "tags": [
                    {"key": TAG_MANAGED, "value": "mlops_assets"},
                    {"key": TAG_REPO, "value": tags.get(TAG_REPO, "")},
                ],
            },
        )
        if (
            status != 200 and doc.get("error_code") != "RESOURCE_ALREADY_EXISTS"
        ):  # a concurrent run won
            raise _fail("registered-models/create", status, doc)
    elif status != 200:
        raise _fail("registered-models/get", status, doc)

    status, doc = _answer(
        api,
        "POST",
        f"{API}/model-versions/create",
        {
            "name": name,
            "source": source,
            "description": description,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
    )
    if status != 200:
        raise _fail("model-versions/create", status, doc)
    mv = doc.get("model_version") or {}
    version = str(mv.get("version", ""))
    if not version:
        raise RegistryError(
            f"model-versions/create answered without a version: {str(doc)[:200]}",
            "check the MLflow server version",
        )
    have = _tags(mv)
    for key, value in tags.items():  # servers that ignore tags on create
        if have.get(key) != value:
            _set_tag(api, name, version, key, value)
    return Registered(name, version, True, str(mv.get("source", source)), dict(tags))


def _set_tag(api: Any, name: str, version: str, key: str, value: str) -> None:
    status, doc = _answer(
        api,
        "POST",
        f"{API}/model-versions/set-tag",
        {"name": name, "version": version, "key": key, "value": value},
    )
    if status != 200:
        raise _fail("model-versions/set-tag", status, doc)


def version_outcome(found: list[dict[str, Any]], name: str, revision: str, digest: str) -> Outcome:
    """A registered version tagged with the pinned revision AND the current manifest digest
    proves which bytes deployments get."""
    at_rev = [v for v in found if _tags(v).get(TAG_REVISION) == revision]
    current = [str(v["version"]) for v in at_rev if _tags(v).get(TAG_DIGEST) == digest]
    if current:
        detail = f"versions: {', '.join(current)} (digest {digest[:16]})"
    elif at_rev:
        others = ", ".join(
            f"{v['version']} ({_tags(v).get(TAG_DIGEST, 'no digest')[:16]})" for v in at_rev
        )
        detail = (
            "versions at this revision carry other manifest "
            f"digests: {others}; the current one is {digest[:16]}"
        )
    else:
        detail = f"{len(found)} versions, none at this revision"
    return Outcome(
        bool(current),
        len(current),
        1,
        f"versions of {name} tagged revision={revision[:12]} and the current manifest digest",
        "materialize the model's MinIO copy and MLflow registration",
        detail=detail,
    )
