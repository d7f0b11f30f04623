"""How to tell staged things are there: a bucket's write/read round trip, the staged files
re-hashed on the HPC side, their size, the S3 copy of a model or dataset, and the load check.
Where things live and what the payloads are asked to do is core/staging_plan.py; the verdicts
on what the payloads answer are there and in core/load_rules.py. No Dagster imports."""

from __future__ import annotations

import json
from typing import Any

from mlops_assets.catalog.schema import Catalog, Model
from mlops_assets.core import load_rules, staging_plan
from mlops_assets.core.checks import Outcome, ProbeFailed
from mlops_assets.core.probes.cloud.object_store import s3_error_code
from mlops_assets.core.transport.hostexec import Runner


def bucket_round_trip(s3: Any, bucket: str) -> Outcome:
    key = ".mlops-probe/write-check"
    body = b"mlops-assets write probe"
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        s3.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise ProbeFailed(
            f"write/read/delete in s3://{bucket} failed: {s3_error_code(exc)}",
            "check bucket policy and credentials",
        ) from None
    return Outcome(
        got == body,
        "identical" if got == body else "different",
        "identical",
        "bytes read back",
        "the object store returned other bytes than written",
    )


# ------------------------------------------------------------------ staging plans (issue 6)


def verify_staged(
    runner: Runner, python: str, payload_dir: str, root: str, manifest_path: str, what: str
) -> Outcome:
    """Re-hash the staged files on the HPC side (the shipped mlops_manifest.py) against their
    manifest: nothing is copied to the orchestrator."""
    res = runner.run(
        [python, f"{payload_dir}/mlops_manifest.py", "verify", root, manifest_path], timeout_s=1800
    )
    return staging_plan.manifest_outcome(_verdict(runner, res, "manifest verification"), what)


def _verdict(runner: Runner, res: Any, what_ran: str) -> Any:
    """The JSON verdict a payload prints as its last line. Anything else means it did not run
    to the end (no such python, no shipped payload, a crash): said with its last lines."""
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise ProbeFailed(
            f"{what_ran} did not run on {runner.where} (exit {res.returncode}): {res.tail(3)}",
            "check hpc.python (it needs only the standard library for this) and the scripts "
            "directory on BeeGFS",
        ) from None


def staged_size(runner: Runner, manifest_path: str, approx_size_mb: float, what: str) -> Outcome:
    """Size from the manifest (no re-hash) against the catalog's approx_size_mb."""
    man = read_staged_manifest(runner, manifest_path, what)
    return staging_plan.size_outcome(man.total_bytes, approx_size_mb)


# ------------------------------------------------------------------ model copies in MinIO


def read_staged_manifest(runner: Runner, manifest_path: str, what: str) -> Any:
    """The staged manifest (core.manifest.Manifest), read on the HPC side: a few KB."""
    from mlops_assets.core.manifest import Manifest, ManifestError

    res = runner.run(["cat", "--", manifest_path])
    if not res.ok:
        raise ProbeFailed(f"{what} has no manifest at {manifest_path}", f"materialize {what}")
    try:
        return Manifest.from_json(res.stdout)
    except ManifestError as exc:
        raise ProbeFailed(f"{manifest_path}: {exc}", f"re-materialize {what}") from None


def head_objects(
    s3: Any, bucket: str, keys: list[str], workers: int = 8
) -> dict[str, tuple[int, dict[str, str]] | None]:
    """key -> (size, lower-cased user metadata), or None where there is no such object."""
    from concurrent.futures import ThreadPoolExecutor

    def head(key: str) -> tuple[int, dict[str, str]] | None:
        try:
            resp = s3.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            code = s3_error_code(exc)
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise ProbeFailed(
                f"HEAD s3://{bucket}/{key} failed: {code}",
                "check the bucket asset and the S3 credentials",
            ) from None
        meta = {str(k).lower(): str(v) for k, v in (resp.get("Metadata") or {}).items()}
        return int(resp.get("ContentLength", -1)), meta

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(keys)))) as pool:
        return dict(zip(keys, pool.map(head, keys), strict=True))


def minio_copy(runner: Runner, s3: Any, catalog: Catalog, name: str, model: Model) -> Outcome:
    return bucket_copy(runner, s3, staging_plan.sync_plan(catalog, name, model))


def bucket_copy(runner: Runner, s3: Any, plan: dict[str, Any]) -> Outcome:
    """The copy a sync plan made (model or dataset) against the staged manifest."""
    man = read_staged_manifest(runner, plan["manifest_path"], plan["what"])
    keys = [plan["prefix"] + f.path for f in man.files] + [
        plan["prefix"] + staging_plan.S3_MANIFEST_OBJECT
    ]
    heads = head_objects(s3, plan["bucket"], keys)
    return staging_plan.s3_copy_outcome(
        man, plan["prefix"], heads, f"s3://{plan['bucket']}/{plan['prefix']}", plan["what"]
    )


# ------------------------------------------------------------------ dataset copies in MinIO


def run_load_check(
    runner: Runner, python: str, payload_dir: str, spec: dict[str, Any], what: str
) -> Outcome:
    """payloads/load_check.py on the HPC side (shipped by hpc_pipes.ship_payloads); the spec
    travels as one quoted argument."""
    res = runner.run(
        [python, f"{payload_dir}/{load_rules.PAYLOAD}", json.dumps(spec, sort_keys=True)],
        timeout_s=load_rules.TIMEOUT_S,
    )
    verdict = _verdict(runner, res, f"the load check of {what}")
    return load_rules.load_outcome(verdict, spec, what)
