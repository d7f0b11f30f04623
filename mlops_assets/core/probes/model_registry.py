"""Registered model versions in MLflow, through MLflow's own `MlflowClient`: find the version
of a staged model by its manifest digest, or create the registered model and the version with
`source` = the MinIO copy, tag it, and point the alias `staged` at it (aliases, not the
deprecated stages). No Dagster imports; mlflow is imported only when a call is made.

`api` is a tracking URI, or anything with `.url`, `.timeout_s` and `.bearer()` (the
HttpServiceResource of resources.clients). Timeouts and retries are bounded through MLflow's
own settings (`MLFLOW_HTTP_REQUEST_TIMEOUT`, `MLFLOW_HTTP_REQUEST_MAX_RETRIES`,
`MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`, and `MLFLOW_TRACKING_TOKEN` for the bearer token), set
around each call: MLflow's defaults (120 s, 7 retries with exponential backoff) would hold a
check for minutes on an unreachable server. A check makes no retry (it gives up within the
service's timeout, as every HTTP probe does); the registration, which writes, retries twice."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.core.checks import Outcome, ProbeFailed

TAG_REPO = "source_repo"
TAG_REVISION = "revision"
TAG_DIGEST = "manifest_digest"
TAG_URI = "minio_uri"
TAG_MANAGED = "managed_by"
#: The alias of the version that holds the bytes staged now: deployments load
#: `models:/<name>@staged`.
ALIAS = "staged"
MAX_RETRIES = 2
BACKOFF_FACTOR = 1


class RegistryError(ProbeFailed):
    """MLflow answered with an error (or not at all); carries a hint."""


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    created: bool
    source: str
    tags: dict[str, str]


@dataclass(frozen=True)
class Version:
    """A registered model version as the checks read it."""

    version: str
    source: str
    tags: dict[str, str]
    aliases: tuple[str, ...] = field(default=())


def version_tags(repo: str, revision: str, digest: str, uri: str) -> dict[str, str]:
    return {
        TAG_REPO: repo,
        TAG_REVISION: revision,
        TAG_DIGEST: digest,
        TAG_URI: uri,
        TAG_MANAGED: "mlops_assets",
    }


@contextlib.contextmanager
def mlflow_client(api: Any, *, retries: int = 0) -> Iterator[Any]:
    """An MlflowClient for api, with MLflow's request settings bounded for the duration of
    the calls (and the caller's environment restored after); its errors become a
    RegistryError that names the cause."""
    import requests
    from mlflow import MlflowClient  # lazy: never at code-location load
    from mlflow.exceptions import MlflowException

    if isinstance(api, str):
        uri, timeout_s, token = api, 10.0, None
    else:
        uri, timeout_s, token = str(api.url).rstrip("/"), float(api.timeout_s), api.bearer()
    settings = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(timeout_s))),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(BACKOFF_FACTOR),
        # MLflow writes a run's URL to stdout when it ends: it would corrupt the CLI's JSON
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    }
    if token:
        settings["MLFLOW_TRACKING_TOKEN"] = token
    saved = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)
    except (MlflowException, requests.RequestException) as exc:  # after MLflow's own retries
        raise _failure(exc, uri, timeout_s, retries) from None
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", "") or "")


def _failure(exc: BaseException, uri: str, timeout_s: float, retries: int) -> RegistryError:
    code = _error_code(exc)
    text = str(getattr(exc, "message", "") or exc).strip().splitlines()
    first = text[0][:300] if text else type(exc).__name__
    if "Max retries exceeded" in first or "Connection refused" in first or "timed out" in first:
        tries = f" ({retries} retries)" if retries else ""
        return RegistryError(
            f"MLflow at {uri}: no answer within {timeout_s:g}s{tries}: {first}",
            "check the mlflow checks (is the tracking server up and reachable?)",
        )
    if code in ("PERMISSION_DENIED", "UNAUTHENTICATED") or "401" in first or "403" in first:
        return RegistryError(
            f"MLflow at {uri} refused the call ({code or 'unauthorized'}): {first}",
            "check the MLflow token (the catalog's mlflow.token names its variable)",
        )
    return RegistryError(
        f"MLflow at {uri} answered {code or 'an error'}: {first}",
        "check the mlflow checks and the tracking server's log",
    )


def versions(api: Any, name: str, *, retries: int = 0) -> list[Version]:
    """Every version of the registered model `name` (empty when it does not exist), with the
    aliases that point at each."""
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    out: list[Version] = []
    with mlflow_client(api, retries=retries) as client:
        token = None
        while True:
            page = client.search_model_versions(
                filter_string=f"name='{quoted}'", max_results=1000, page_token=token
            )
            out += [Version(str(v.version), str(v.source or ""), dict(v.tags or {})) for v in page]
            token = getattr(page, "token", None)
            if not token:
                break
        if not out:
            return out
        aliases = _aliases(client, name)
    return [
        Version(v.version, v.source, v.tags, tuple(sorted(aliases.get(v.version, ())))) for v in out
    ]


def _aliases(client: Any, name: str) -> dict[str, list[str]]:
    """version -> the aliases pointing at it (a registered model without any has none)."""
    try:
        model = client.get_registered_model(name)
    except Exception as exc:
        if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    out: dict[str, list[str]] = {}
    for alias, version in (getattr(model, "aliases", None) or {}).items():
        out.setdefault(str(version), []).append(str(alias))
    return out


def find_by_digest(found: list[Version], digest: str, uri: str) -> Version | None:
    """The newest version carrying this manifest digest and MinIO URI."""
    same = [
        v for v in found if v.tags.get(TAG_DIGEST) == digest and v.tags.get(TAG_URI, uri) == uri
    ]
    return max(same, key=lambda v: int(v.version)) if same else None


def register(
    api: Any, name: str, source: str, tags: dict[str, str], description: str = ""
) -> Registered:
    """Idempotent: a version whose manifest digest tag matches is reused (created=False);
    otherwise the registered model is created if missing, then the version with its tags.
    Either way the alias `staged` ends on that version."""
    digest = tags[TAG_DIGEST]
    existing = find_by_digest(versions(api, name, retries=MAX_RETRIES), digest, source)
    with mlflow_client(api, retries=MAX_RETRIES) as client:
        if existing is not None:
            for key, value in tags.items():
                if existing.tags.get(key) != value:
                    client.set_model_version_tag(name, existing.version, key, value)
            if ALIAS not in existing.aliases:
                client.set_registered_model_alias(name, ALIAS, existing.version)
            return Registered(
                name, existing.version, False, existing.source, {**existing.tags, **tags}
            )
        try:
            client.create_registered_model(
                name,
                tags={TAG_MANAGED: "mlops_assets", TAG_REPO: tags.get(TAG_REPO, "")},
                description=description,
            )
        except Exception as exc:
            if _error_code(exc) != "RESOURCE_ALREADY_EXISTS":  # else: it exists, or a run won
                raise
        mv = client.create_model_version(name, source, tags=tags, description=description)
        version = str(mv.version)
        have = dict(mv.tags or {})
        for key, value in tags.items():  # servers that ignore tags on create
            if have.get(key) != value:
                client.set_model_version_tag(name, version, key, value)
        client.set_registered_model_alias(name, ALIAS, version)
        return Registered(name, version, True, str(mv.source or source), dict(tags))


def version_outcome(found: list[Version], name: str, revision: str, digest: str) -> Outcome:
    """A registered version tagged with the pinned revision AND the current manifest digest
    proves which bytes deployments get; the alias `staged` must not point elsewhere (a
    deployment loading `models:/<name>@staged` would get other bytes)."""
    at_rev = [v for v in found if v.tags.get(TAG_REVISION) == revision]
    current = [v.version for v in at_rev if v.tags.get(TAG_DIGEST) == digest]
    aliased = next((v for v in found if ALIAS in v.aliases), None)
    stale_alias = aliased is not None and aliased.version not in current
    if current and not stale_alias:
        where = f"@{ALIAS} -> {aliased.version}" if aliased else f"no @{ALIAS} alias yet"
        detail = f"versions: {', '.join(current)} (digest {digest[:16]}); {where}"
    elif current and aliased is not None:
        detail = (
            f"versions {', '.join(current)} carry the current digest {digest[:16]}, but @{ALIAS} "
            f"points at version {aliased.version} "
            f"(digest {aliased.tags.get(TAG_DIGEST, 'none')[:16]})"
        )
    elif at_rev:
        others = ", ".join(
            f"{v.version} ({v.tags.get(TAG_DIGEST, 'no digest')[:16]})" for v in at_rev
        )
        detail = (
            f"versions at this revision carry other manifest digests: {others}; "
            f"the current one is {digest[:16]}"
        )
    else:
        detail = f"{len(found)} versions, none at this revision"
    return Outcome(
        bool(current) and not stale_alias,
        len(current),
        1,
        f"versions of {name} tagged revision={revision[:12]} and the current manifest digest",
        "materialize the model's MinIO copy and MLflow registration (it moves @staged)",
        detail=detail,
    )
