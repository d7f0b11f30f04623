"""Probes of the S3 object store (MinIO, or another S3 server): the credentials, the
catalog's buckets, MinIO's write quorum; and the S3 error code other probes report.
No Dagster imports."""

from __future__ import annotations

import dataclasses
from typing import Any

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import Outcome, ProbeFailed, missing_items
from mlops_assets.core.probes.cloud.clients import Http, _answer, _status_200

CREDENTIAL_ERRORS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}
)


def s3_error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError, else the exception's class name. Never
    the message: messages may quote request parameters."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


def _credentials_failure(catalog: Catalog, what: str, code: str) -> ProbeFailed:
    m = catalog.cloud.services.minio
    if code in CREDENTIAL_ERRORS:
        return ProbeFailed(
            f"{what} at {m.url} refused the credentials: {code} "
            f"(access key from ${m.access_key.env}, secret from ${m.secret_key.env})",
            f"wrong S3 credentials: set ${m.access_key.env} / "
            f"${m.secret_key.env} to a key pair the server knows",
        )
    return ProbeFailed(
        f"{what} at {m.url} failed: {code}",
        "the S3 endpoint does not answer: check cloud.services.minio.url and the service",
    )


def minio_buckets_listable(s3: Any, catalog: Catalog) -> Outcome:
    """Credentials valid and the S3 API answers: list_buckets is the cheapest signed call."""
    try:
        names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    except Exception as exc:
        raise _credentials_failure(catalog, "S3 list_buckets", s3_error_code(exc)) from None
    return Outcome(True, len(names), 0, "buckets visible", "", detail=", ".join(names))


def minio_buckets_exist(s3: Any, catalog: Catalog, required: bool) -> Outcome:
    """HEAD on each catalog bucket (required or optional ones): works for users who may not
    list all buckets, and names each missing or forbidden one."""
    wanted = [b.name for b in catalog.cloud.buckets if b.required == required]
    present: list[str] = []
    problems: list[str] = []
    for name in wanted:
        try:
            s3.head_bucket(Bucket=name)
            present.append(name)
        except Exception as exc:
            code = s3_error_code(exc)
            if code in {"404", "NoSuchBucket", "NotFound"}:
                problems.append(f"{name}: missing")
            elif code in {"403", *CREDENTIAL_ERRORS}:
                problems.append(f"{name}: forbidden (403)")
            else:
                raise _credentials_failure(catalog, f"S3 head_bucket {name}", code) from None
    out = missing_items(
        present,
        wanted,
        "buckets",
        "materialize the bucket assets (mlops-assets "
        "materialize --select storage) or create them (mc mb)",
    )
    return dataclasses.replace(out, detail="; ".join(problems))


def minio_cluster_health(http: Http, catalog: Catalog) -> Outcome:
    """MinIO's /minio/health/cluster: 200 while the write quorum holds, 503 when lost. The
    quorum it needs comes back in X-Minio-Write-Quorum."""
    if not catalog.cloud.services.minio.minio_health_endpoints:
        return Outcome(
            True,
            "not MinIO",
            "n/a",
            "write quorum",
            "",
            detail=(
                "the S3 server is not MinIO: /minio/health/cluster "
                "does not exist (sandbox: SeaweedFS)"
            ),
        )
    ans = _answer(http, "/minio/health/cluster", "MinIO unreachable")
    headers = {k.lower(): v for k, v in ans.headers.items()}
    quorum = headers.get("x-minio-write-quorum", "")
    server = headers.get("server", "")
    return _status_200(
        ans,
        "HTTP status of /minio/health/cluster",
        "MinIO lost its write quorum (503): bring drives/nodes back (mc admin info)"
        if ans.status == 503
        else "unexpected answer: is cloud.services.minio.url a MinIO server?",
        detail=f"write quorum {quorum or '?'}, server {server or '?'}",
        extra={"write_quorum": quorum} if quorum else {},
    )
