"""What staging is asked to do, as data: the plans the staging and sync payloads run, the
bucket prefixes, and the pure verdicts on what those payloads answer (manifest, size, S3 copy).
Where staged things live on BeeGFS is the catalog's answer (`Beegfs.directory`,
`Catalog.dataset_path`, ...); the plans carry it. No I/O and no Dagster:
core/probes/staging.py asks the platform with these."""

from __future__ import annotations

from typing import Any

from mlops_assets.catalog.schema import Catalog, Dataset, Model, TorchvisionSource
from mlops_assets.core.checks import Outcome, ProbeFailed


def model_prefix(name: str, model: Model) -> str:
    return f"{name}/{model.revision}/"


# torchvision's own checksums for the real files (torchvision.datasets.MNIST.resources,
# CIFAR10.tgz_md5/train_list/test_list/meta): a real mirror of the real files needs no
# override in the catalog; a mirror with its own files names its md5s in `source.md5`.
TORCHVISION_LAYOUTS: dict[str, dict[str, Any]] = {
    "MNIST": {
        "dir": "MNIST/raw",
        "files": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
        "extract": "gunzip",
        "members": {},
    },
    "CIFAR10": {
        "dir": "",
        "files": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        "extract": "untar",
        "members_dir": "cifar-10-batches-py",
        "members": {
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
            "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
        },
    },
}


def rehash_after_s(catalog: Catalog) -> float:
    """The staging payloads' `rehash_after_s` extra: past this age of the last full
    verification, a re-materialization re-hashes instead of trusting the stat stamp."""
    return catalog.staging.rehash_after_hours * 3600.0


def torchvision_plan(catalog: Catalog, dataset: Dataset) -> dict[str, Any]:
    """What stage_torchvision.py does, as data: files with mirrors and md5s, the layout
    torchvision expects, and the md5s of what comes out of archives. Catalog md5s win over
    torchvision's own."""
    import hashlib
    import json

    src = dataset.source
    assert isinstance(src, TorchvisionSource)
    layout = TORCHVISION_LAYOUTS.get(src.dataset_class)
    if layout is None:
        raise ProbeFailed(
            f"no staging layout for torchvision {src.dataset_class}",
            f"use MNIST or CIFAR10, or add {src.dataset_class} to "
            "core.probes.staging.TORCHVISION_LAYOUTS",
        )
    if not src.mirrors:
        raise ProbeFailed(
            f"torchvision {src.dataset_class} has no mirrors",
            "list mirrors under datasets.<name>.source.mirrors",
        )
    files = [
        {
            "name": name,
            "urls": list(src.mirrors),
            "md5": src.md5.get(name, md5),
            "dir": layout["dir"],
            "extract": layout["extract"],
        }
        for name, md5 in layout["files"].items()
    ]
    members_dir = layout.get("members_dir", "")
    extracted = {f"{members_dir}/{n}": src.md5.get(n, md5) for n, md5 in layout["members"].items()}
    digest_input = json.dumps(
        {
            "files": [{k: f[k] for k in ("name", "md5", "dir", "extract")} for f in files],
            "extracted": extracted,
        },
        sort_keys=True,
    )
    return {
        "target": catalog.hpc.beegfs.path(dataset.path),
        "dataset_class": src.dataset_class,
        "files": files,
        "extracted_md5": extracted,
        "plan_digest": hashlib.sha256(digest_input.encode()).hexdigest(),
        "rehash_after_s": rehash_after_s(catalog),
    }


def hub_plan(
    catalog: Catalog, repo_type: str, repo: str, revision: str, allow_patterns: list[str]
) -> dict[str, Any]:
    """What stage_hub.py does: one pinned revision into the hub cache on BeeGFS."""
    return {
        "repo": repo,
        "repo_type": repo_type,
        "revision": revision,
        "allow_patterns": list(allow_patterns),
        "cache_dir": catalog.hpc.beegfs.hub_cache(),
        "rehash_after_s": rehash_after_s(catalog),
    }


def staged_location(catalog: Catalog, plan: dict[str, Any]) -> tuple[str, str]:
    """(root of the staged files, its manifest) for a hub or torchvision plan, as the
    catalog's BeeGFS answers them."""
    b = catalog.hpc.beegfs
    if "repo" in plan:
        where = (plan["repo_type"], plan["repo"], plan["revision"])
        return b.hub_snapshot(*where), b.hub_manifest(*where)
    return plan["target"], b.manifest_path(plan["target"])


SIZE_FACTOR = 4.0


def manifest_outcome(verdict: dict[str, Any], what: str) -> Outcome:
    """The verdict of `mlops_manifest.py verify` as a check: names what is missing/extra/changed."""
    state = verdict.get("state")
    hint = (
        f"re-materialize {what}: staging re-hashes the whole copy and repairs it (only damaged "
        "files are fetched again)"
    )
    stamp = str(verdict.get("stamp") or "")
    if state == "different" and stamp.startswith(
        "kept"
    ):  # mlops_manifest.py could not invalidate it
        hint = (
            f"the stat stamp could not be removed ({stamp}): delete it, then re-materialize "
            f"{what}; until then staging trusts it (up to staging.rehash_after_hours)"
        )
    if state == "identical":
        return Outcome(
            True,
            0,
            0,
            "files differing from the manifest",
            hint,
            detail=f"{verdict.get('file_count')} files, digest {str(verdict.get('digest'))[:16]}",
        )
    if state == "different":
        parts = []
        for label in ("missing", "extra", "changed"):
            names = verdict.get(label) or []
            if names:
                shown = ", ".join(names[:5]) + (
                    f" (+{len(names) - 5} more)" if len(names) > 5 else ""
                )
                parts.append(f"{label}: {shown}")
        count = sum(len(verdict.get(k) or []) for k in ("missing", "extra", "changed"))
        return Outcome(
            False, count, 0, "files differing from the manifest", hint, detail="; ".join(parts)
        )
    if state == "no_manifest":
        return Outcome(
            False,
            "no manifest",
            "manifest",
            "files differing from the manifest",
            f"materialize {what}: it is not staged (or a staging run did not finish)",
            detail="no manifest: not staged"
            + (
                "; a directory without a manifest is an unfinished copy"
                if verdict.get("root_exists")
                else ""
            ),
        )
    return Outcome(
        False,
        "unreadable",
        "manifest",
        "files differing from the manifest",
        hint,
        detail=str(verdict.get("error", verdict))[:300],
    )


def size_outcome(total_bytes: int, approx_size_mb: float) -> Outcome:
    """Within a factor of SIZE_FACTOR of the catalog's approx_size_mb: catches empty, partial
    or wrong-repo copies without pinning exact sizes in the catalog."""
    mb = total_bytes / 1e6
    low, high = approx_size_mb / SIZE_FACTOR, approx_size_mb * SIZE_FACTOR
    return Outcome(
        low <= mb <= high,
        round(mb, 3),
        f"{low:g}..{high:g}",
        "MB staged",
        "update approx_size_mb in the catalog if the source really changed size, else re-stage",
    )


S3_SHA_META = "sha256"  # x-amz-meta-sha256, written by payloads/sync_s3.py


S3_DIGEST_META = "manifest-digest"  # on <prefix>_manifest.json


S3_MANIFEST_OBJECT = "_manifest.json"


def model_uri(name: str, model: Model) -> str:
    return f"s3://{model.bucket}/{model_prefix(name, model)}"


def sync_plan(catalog: Catalog, name: str, model: Model) -> dict[str, Any]:
    """What sync_s3.py does (credentials_file is added per run): the staged snapshot and its
    manifest on BeeGFS to s3://<bucket>/<name>/<revision>/ at the catalog's MinIO endpoint."""
    minio = catalog.cloud.services.minio
    root, mpath = staged_location(
        catalog, hub_plan(catalog, "model", model.repo, model.revision, model.allow_patterns)
    )
    return {
        "root": root,
        "manifest_path": mpath,
        "bucket": model.bucket,
        "prefix": model_prefix(name, model),
        "endpoint_url": minio.url,
        "region": minio.region,
        "what": catalog.model_key(name),
        "workers": 4,
        "multipart_threshold_mb": 8,
        "multipart_chunk_mb": 8,
    }


def s3_copy_outcome(
    man: Any, prefix: str, heads: dict[str, tuple[int, dict[str, str]] | None], uri: str, what: str
) -> Outcome:
    """Every manifest entry under `prefix` with the same size and sha256 metadata, and the
    `_manifest.json` written last with the same digest; names missing and changed keys."""
    missing: list[str] = []
    changed: list[str] = []
    for f in man.files:
        got = heads.get(prefix + f.path)
        if got is None:
            missing.append(f.path)
        elif got[0] != f.size or got[1].get(S3_SHA_META) != f.sha256:
            changed.append(f.path)
    mobj = heads.get(prefix + S3_MANIFEST_OBJECT)
    if mobj is None:
        missing.append(S3_MANIFEST_OBJECT)
    elif mobj[1].get(S3_DIGEST_META) != man.digest:
        changed.append(S3_MANIFEST_OBJECT)
    parts = []
    for label, names in (("missing", missing), ("changed", changed)):
        if names:
            shown = ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")
            parts.append(f"{label}: {shown}")
    bad = len(missing) + len(changed)
    detail = f"{uri}: " + (
        "; ".join(parts) if parts else f"{man.file_count} objects, digest {man.digest[:16]}"
    )
    return Outcome(
        bad == 0,
        bad,
        0,
        "objects differing from the manifest",
        f"materialize {what}_minio: it uploads only what differs",
        detail=detail,
    )


DATASETS_BUCKET = "datasets"


def dataset_version(catalog: Catalog, dataset: Dataset) -> str:
    """The pinned revision of a hub dataset; for torchvision, the digest of its plan (files
    and md5s), so a copy of other files never lands under the same prefix."""
    src = dataset.source
    if isinstance(src, TorchvisionSource):
        return "plan-" + torchvision_plan(catalog, dataset)["plan_digest"][:16]
    return src.revision


def dataset_sync_plan(catalog: Catalog, name: str, dataset: Dataset) -> dict[str, Any]:
    """sync_s3.py's extras for a dataset: s3://datasets/<name>/<version>/
    (catalog: sync_to_bucket)."""
    from mlops_assets.catalog.schema import HubSource

    src = dataset.source
    if isinstance(src, HubSource):
        plan = hub_plan(catalog, "dataset", src.repo, src.revision, src.allow_patterns)
    else:
        plan = torchvision_plan(catalog, dataset)
    root, mpath = staged_location(catalog, plan)
    minio = catalog.cloud.services.minio
    return {
        "root": root,
        "manifest_path": mpath,
        "bucket": DATASETS_BUCKET,
        "prefix": f"{name}/{dataset_version(catalog, dataset)}/",
        "endpoint_url": minio.url,
        "region": minio.region,
        "what": catalog.dataset_key(name),
        "workers": 4,
        "multipart_threshold_mb": 8,
        "multipart_chunk_mb": 8,
    }
