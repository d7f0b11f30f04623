"""Copy a staged snapshot (its manifest's files) to `s3://<bucket>/<prefix><relative path>`
from the HPC side, next to the data: the orchestrator never holds the bytes.

Runs ON THE HPC SIDE through Dagster Pipes with the catalog's `hpc.python` (boto3 and
dagster-pipes; extras: root, manifest_path, bucket, prefix, endpoint_url, region,
credentials_file, what, workers, multipart_threshold_mb, multipart_chunk_mb). Steps, under a
lock per target on the shared filesystem:

1. Read the staged manifest (the truth: path, size, sha256 per file).
2. List the prefix, HEAD every object whose size matches: an object whose size and
   `x-amz-meta-sha256` equal the manifest's is skipped, so an unchanged re-run uploads 0 bytes.
3. If anything must change, delete `<prefix>_manifest.json` first: from here on the copy does
   not look complete. Each file to upload is hashed first and must match the manifest (bad
   local bytes are never published); uploads run in parallel, big files in multipart
   (boto3 TransferConfig). Objects under the prefix that the manifest does not name are
   deleted (the prefix mirrors one manifest).
4. Write `<prefix>_manifest.json` last, with the manifest digest as metadata.

Credentials arrive in a 0600 file (see hpc_pipes.private_file) that this payload deletes as
soon as it has read it; they are never logged or reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stage_common import Log, Progress, StagingError, manifest, run_payload, target_lock

MANIFEST_OBJECT = "_manifest.json"
SHA_META = "sha256"  # x-amz-meta-sha256
DIGEST_META = "manifest-digest"  # x-amz-meta-manifest-digest on _manifest.json


def _read_credentials(path: str) -> tuple[str, str]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise StagingError(f"cannot read the credentials file ({type(exc).__name__})") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return str(doc["access_key_id"]), str(doc["secret_access_key"])


def _code(exc: BaseException) -> str:
    """The S3 error code or the exception type: never the request (it is signed)."""
    err = getattr(exc, "response", None)
    if isinstance(err, dict):
        return str(
            err.get("Error", {}).get("Code")
            or err.get("ResponseMetadata", {}).get("HTTPStatusCode")
        )
    return type(exc).__name__


class _SafeProgress:
    """boto3 calls back from its transfer threads."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner
        self.lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self.lock:
            self.inner(n)


def _client(params: dict[str, Any], key_id: str, secret: str, pool: int) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=str(params["endpoint_url"]),
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name=str(params.get("region") or "us-east-1"),
        config=Config(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            connect_timeout=10,
            read_timeout=120,
            retries={"total_max_attempts": 3, "mode": "standard"},
            max_pool_connections=pool,
        ),
    )


def _listing(s3: Any, bucket: str, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []) or []:
            out[str(obj["Key"])] = int(obj["Size"])
    return out


def _head_meta(s3: Any, bucket: str, key: str) -> dict[str, str] | None:
    try:
        resp = s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if _code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return {str(k).lower(): str(v) for k, v in (resp.get("Metadata") or {}).items()}


def sync(params: dict[str, Any], log: Log) -> dict[str, Any]:
    root = Path(str(params["root"]))
    mpath = Path(str(params["manifest_path"]))
    bucket, prefix = str(params["bucket"]), str(params["prefix"])
    what = str(params.get("what") or root)
    workers = max(1, int(params.get("workers") or 4))
    threshold = int(float(params.get("multipart_threshold_mb") or 64) * 1024 * 1024)
    chunk = int(float(params.get("multipart_chunk_mb") or 16) * 1024 * 1024)
    if not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix.split("/"):
        raise StagingError(f"bad object prefix {prefix!r}")
    key_id, secret = _read_credentials(str(params["credentials_file"]))
    uri = f"s3://{bucket}/{prefix}"

    try:
        man = manifest.read_manifest(mpath)
    except manifest.ManifestError as exc:
        raise StagingError(f"{mpath}: {exc}; re-materialize {what}") from None
    if man is None or not root.is_dir():
        raise StagingError(
            f"{what} is not staged (no manifest at {mpath}): materialize {what} first"
        )

    from boto3.s3.transfer import TransferConfig

    s3 = _client(params, key_id, secret, pool=workers * 4 + 4)
    transfer = TransferConfig(
        multipart_threshold=threshold,
        multipart_chunksize=chunk,
        max_concurrency=4,
        use_threads=True,
    )
    lock = manifest.sidecar(root, mpath, ".s3sync.lock")  # beside the staged tree, never in it
    with target_lock(lock, log):
        try:
            listed = _listing(s3, bucket, prefix)
        except Exception as exc:
            raise StagingError(
                f"cannot list {uri} at {params['endpoint_url']}: {_code(exc)}; check the bucket "
                "and the S3 credentials"
            ) from None
        wanted = {prefix + f.path: f for f in man.files}
        same_size = [k for k, f in wanted.items() if listed.get(k) == f.size]
        with ThreadPoolExecutor(max_workers=workers * 2) as pool:
            metas = dict(
                zip(
                    same_size, pool.map(lambda k: _head_meta(s3, bucket, k), same_size), strict=True
                )
            )
        todo = [f for k, f in wanted.items() if (metas.get(k) or {}).get(SHA_META) != f.sha256]
        extra = sorted(k for k in listed if k not in wanted and k != prefix + MANIFEST_OBJECT)
        mkey = prefix + MANIFEST_OBJECT
        current = _head_meta(s3, bucket, mkey) if mkey in listed else None
        skipped = man.total_bytes - sum(f.size for f in todo)
        uploaded = 0

        if todo or extra:
            if current is not None:  # until the new one lands, the copy is not complete
                s3.delete_object(Bucket=bucket, Key=mkey)
                current = None
            total = sum(f.size for f in todo)
            log(
                f"syncing {len(todo)} of {man.file_count} files ({total} bytes) to {uri}; "
                f"{len(wanted) - len(todo)} unchanged ({skipped} bytes)"
            )
            progress = _SafeProgress(Progress(log, f"upload to {uri}", total))

            def upload(f: manifest.FileEntry) -> int:
                path = root / f.path
                size, sha = manifest.hash_file(path)
                if (size, sha) != (f.size, f.sha256):
                    raise StagingError(
                        f"{f.path} on BeeGFS differs from its manifest: re-materialize {what} "
                        "(nothing bad is uploaded)"
                    )
                s3.upload_file(
                    str(path),
                    bucket,
                    prefix + f.path,
                    ExtraArgs={"Metadata": {SHA_META: f.sha256}},
                    Config=transfer,
                    Callback=progress,
                )
                return f.size

            with ThreadPoolExecutor(max_workers=workers) as pool:
                try:
                    uploaded = sum(pool.map(upload, sorted(todo, key=lambda f: -f.size)))
                except StagingError:
                    raise
                except Exception as exc:
                    raise StagingError(
                        f"upload to {uri} failed: {_code(exc)}; objects already uploaded are "
                        "kept and skipped next time"
                    ) from None
            for key in extra:
                s3.delete_object(Bucket=bucket, Key=key)
            if extra:
                log(
                    f"deleted {len(extra)} objects the manifest does not name: "
                    f"{', '.join(extra[:5])}"
                )

        manifest_bytes = 0
        if current is None or current.get(DIGEST_META) != man.digest:
            body = man.to_json().encode()
            import hashlib

            s3.put_object(
                Bucket=bucket,
                Key=mkey,
                Body=body,
                ContentType="application/json",
                Metadata={SHA_META: hashlib.sha256(body).hexdigest(), DIGEST_META: man.digest},
            )
            manifest_bytes = len(body)
        log(f"{uri}: {uploaded} bytes uploaded, {skipped} bytes already there")
        return {
            "uri": uri,
            "bucket": bucket,
            "prefix": prefix,
            "manifest_digest": man.digest,
            "objects": man.file_count,
            "objects_uploaded": len(todo),
            "objects_skipped": man.file_count - len(todo),
            "objects_deleted": len(extra),
            "bytes": man.total_bytes,
            "bytes_uploaded": uploaded,
            "bytes_skipped": skipped,
            "manifest_object_bytes": manifest_bytes,
            "bytes_transferred": uploaded + manifest_bytes,
        }


if __name__ == "__main__":
    run_payload(sync)
