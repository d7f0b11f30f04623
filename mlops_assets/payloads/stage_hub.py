"""Stage a pinned Hugging Face repo revision into the standard hub cache on the shared
filesystem (`$HF_HOME/hub/{models|datasets}--org--name/{blobs,snapshots/<rev>,refs/main}`), so
that `transformers`/`datasets` on any node find it with HF_HUB_OFFLINE=1.

Runs ON THE HPC SIDE through Dagster Pipes (extras: repo, repo_type, revision,
allow_patterns, cache_dir). Steps, under a lock per repo:

1. If a manifest for this revision exists and the snapshot still hashes to it: nothing moves
   (no network either), bytes_transferred=0. The stat stamp (`.mlops/<rev>.json.stat`) stands
   for a re-hash unless a check found damage or it is older than staging.rehash_after_hours.
2. Otherwise download into `.staging-<folder>-<rev12>/` next to the repo folder (a stable
   name: a killed run's `.incomplete` blobs are resumed by huggingface_hub). Blobs of the
   current copy that still hash right are hard-linked in first, so a repair downloads only
   what is broken.
3. Verify every file against the hub's tree listing (sha256 for LFS files, git blob sha1
   for the rest) and the set of paths; write the manifest. Hand-written on purpose, over
   huggingface_hub's own listing (`HfApi.list_repo_tree`): the pinned huggingface_hub's
   `HfApi.verify_repo_checksums` verifies the same way but the whole repo tree (this stages
   `allow_patterns` only, so every skipped file would be "missing"), and it reads each file
   once more just to compare, while the manifest needs the sha256 of every file anyway (git
   blob sha1 and sha256 come from one read here: a model of tens of GB on BeeGFS is read
   once, not twice).
4. Move blobs, then the snapshot directory (one rename), then the manifest, then refs/main.
   Until the manifest is there the revision does not count as staged.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stage_common import (
    OLD_PREFIX,
    STAGING_PREFIX,
    Log,
    StagingError,
    check_in_place,
    enospc_is_clear,
    manifest,
    remove_tree,
    run_payload,
    target_lock,
)


def repo_folder(repo_type: str, repo: str) -> str:
    return f"{repo_type}s--{repo.replace('/', '--')}"


def manifest_path(cache_dir: Path, repo_type: str, repo: str, revision: str) -> Path:
    return cache_dir / repo_folder(repo_type, repo) / ".mlops" / f"{revision}.json"


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def _why(exc: BaseException) -> str:
    """Short: the HTTP status if there is one, else the exception's type and first line."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    first = (str(exc).splitlines() or [""])[0][:200]
    return f"HTTP {status} ({type(exc).__name__})" if status else f"{type(exc).__name__}: {first}"


def _allowed(path: str, patterns: list[str]) -> bool:
    return not patterns or any(fnmatch.fnmatch(path, p) for p in patterns)


def _git_blob_sha1(size: int) -> Any:
    h = hashlib.sha1()  # noqa: S324 - git's object id, not a security hash
    h.update(f"blob {size}\0".encode())
    return h


def _source_listing(
    repo: str, repo_type: str, revision: str, patterns: list[str]
) -> dict[str, dict[str, Any]]:
    """path -> {size, etag, sha256 (LFS) | sha1 (git blob)} from the hub's tree API."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    out: dict[str, dict[str, Any]] = {}
    for item in HfApi().list_repo_tree(
        repo, revision=revision, repo_type=repo_type, recursive=True
    ):
        if not isinstance(item, RepoFile) or not _allowed(item.path, patterns):
            continue
        if item.lfs is not None:
            out[item.path] = {
                "size": item.lfs.size,
                "etag": item.lfs.sha256,
                "sha256": item.lfs.sha256,
            }
        else:
            out[item.path] = {"size": item.size, "etag": item.blob_id, "sha1": item.blob_id}
    if not out:
        raise StagingError(
            f"{repo_type} {repo}@{revision} has no files matching {patterns or ['*']}"
        )
    return out


def _verified_manifest(
    snapshot: Path, listing: dict[str, dict[str, Any]], meta: dict[str, str]
) -> manifest.Manifest:
    entries = []
    bad: list[str] = []
    for rel in manifest.iter_files(snapshot):
        want = listing.get(rel)
        if want is None:
            bad.append(f"{rel} (not in the source listing)")
            continue
        size = (snapshot / rel).stat().st_size
        sha1 = _git_blob_sha1(size)
        size, sha256 = manifest.hash_file(snapshot / rel, extra=[sha1] if "sha1" in want else [])
        if (
            size != want["size"]
            or ("sha256" in want and sha256 != want["sha256"])
            or ("sha1" in want and sha1.hexdigest() != want["sha1"])
        ):
            bad.append(f"{rel} (size or hash differs from the source)")
        entries.append(manifest.FileEntry(rel, size, sha256))
    got = {e.path for e in entries}
    bad += [f"{p} (not downloaded)" for p in sorted(set(listing) - got)]
    if bad:
        raise StagingError(
            "downloaded files do not match the hub's listing: " + "; ".join(bad[:10])
        )
    return manifest.Manifest.of(entries, meta)


def _seed_good_blobs(
    final: Path, staging_repo: Path, listing: dict[str, dict[str, Any]], log: Log
) -> int:
    """Hard-link blobs of the current copy that still hash right: they are not downloaded again."""
    reused = 0
    (staging_repo / "blobs").mkdir(parents=True, exist_ok=True)
    for rel, want in listing.items():
        src = final / "blobs" / str(want["etag"])
        dst = staging_repo / "blobs" / str(want["etag"])
        if dst.exists() or not src.is_file():
            continue
        sha1 = _git_blob_sha1(src.stat().st_size)
        size, sha256 = manifest.hash_file(src, extra=[sha1])
        good = size == want["size"] and (
            sha256 == want.get("sha256") or sha1.hexdigest() == want.get("sha1")
        )
        if good:
            os.link(src, dst)
            reused += size
        else:
            log(f"current copy of {rel} is damaged: downloading it again")
    return reused


def _place(staging_repo: Path, final: Path, revision: str, man: manifest.Manifest) -> None:
    (final / "blobs").mkdir(parents=True, exist_ok=True)
    (final / "snapshots").mkdir(parents=True, exist_ok=True)
    (final / "refs").mkdir(parents=True, exist_ok=True)
    (final / ".mlops").mkdir(parents=True, exist_ok=True)
    mpath = final / ".mlops" / f"{revision}.json"
    if mpath.exists():  # from here on the revision is not staged until the new manifest lands
        mpath.unlink()
    for blob in (staging_repo / "blobs").iterdir():
        if not blob.name.endswith(".incomplete"):
            os.replace(blob, final / "blobs" / blob.name)
    snapshot = final / "snapshots" / revision
    old = final / "snapshots" / f"{OLD_PREFIX}{revision}.{os.getpid()}"
    if snapshot.exists():
        os.rename(snapshot, old)
    os.rename(staging_repo / "snapshots" / revision, snapshot)
    remove_tree(old)
    manifest.write_manifest(mpath, man)
    manifest.write_stat_stamp(snapshot, man, mpath)
    ref_tmp = final / "refs" / f".main.tmp.{os.getpid()}"
    ref_tmp.write_text(revision)
    os.replace(ref_tmp, final / "refs" / "main")


def stage(params: dict[str, Any], log: Log) -> dict[str, Any]:
    repo, repo_type, revision = (
        str(params["repo"]),
        str(params["repo_type"]),
        str(params["revision"]),
    )
    patterns = [str(p) for p in params.get("allow_patterns") or []]
    cache_dir = Path(str(params["cache_dir"]))
    folder = repo_folder(repo_type, repo)
    final = cache_dir / folder
    snapshot = final / "snapshots" / revision
    mpath = manifest_path(cache_dir, repo_type, repo, revision)
    meta = {
        "repo": repo,
        "repo_type": repo_type,
        "revision": revision,
        "allow_patterns": ",".join(patterns),
    }
    cache_dir.mkdir(parents=True, exist_ok=True)

    def result(man: manifest.Manifest, transferred: int, reused: int) -> dict[str, Any]:
        return {
            "repo": repo,
            "repo_type": repo_type,
            "revision": revision,
            "path": str(snapshot),
            "manifest_path": str(mpath),
            "manifest_digest": man.digest,
            "file_count": man.file_count,
            "bytes": man.total_bytes,
            "bytes_transferred": transferred,
            "bytes_reused": reused,
        }

    with target_lock(cache_dir / f".{folder}.lock", log):
        existing, diff, checked = check_in_place(
            snapshot, mpath, params, log, lambda _: snapshot.is_dir()
        )
        how = checked or {
            "verified_by": "staged anew, every file checked against the hub's listing"
        }
        if diff is not None:
            if diff.ok:
                (final / "refs").mkdir(exist_ok=True)
                if (
                    not (final / "refs" / "main").is_file()
                    or (final / "refs" / "main").read_text() != revision
                ):
                    (final / "refs" / "main").write_text(revision)
                log(f"{repo}@{revision[:12]} already staged and verified: nothing to transfer")
                return {**result(existing, 0, existing.total_bytes), **how}
            log(
                f"staged copy of {repo}@{revision[:12]} differs from its manifest "
                f"({diff.describe()}): repairing"
            )

        staging = cache_dir / f"{STAGING_PREFIX}{folder}-{revision[:12]}"
        staging_repo = staging / folder
        with enospc_is_clear(cache_dir, cleanup=staging):
            try:
                listing = _source_listing(repo, repo_type, revision, patterns)
            except StagingError:
                raise
            except Exception as exc:
                raise StagingError(
                    f"cannot list {repo_type} {repo}@{revision[:12]} at {_endpoint()}: "
                    f"{_why(exc)}; the previous copy is untouched"
                ) from None
            reused = _seed_good_blobs(final, staging_repo, listing, log)
            # files of the snapshot directory are symlinks into blobs: rebuild them each time
            remove_tree(staging_repo / "snapshots")
            from huggingface_hub import snapshot_download

            total = sum(int(w["size"]) for w in listing.values())
            log(
                f"downloading {repo}@{revision[:12]}: {len(listing)} "
                f"files, {total} bytes ({reused} reused)"
            )
            try:
                snapshot_download(
                    repo,
                    repo_type=repo_type,
                    revision=revision,
                    cache_dir=str(staging),
                    allow_patterns=patterns or None,
                    max_workers=4,
                )
            except Exception as exc:
                raise StagingError(
                    f"download of {repo}@{revision[:12]} from {_endpoint()} failed: {_why(exc)}; "
                    "the previous copy is untouched and partial files are resumed next time"
                ) from None
            try:
                man = _verified_manifest(staging_repo / "snapshots" / revision, listing, meta)
            except StagingError:
                remove_tree(staging)  # bad bytes must not be "resumed" by the next run
                raise
            _place(staging_repo, final, revision, man)
        remove_tree(staging)
        log(
            f"staged {repo}@{revision[:12]}: {man.file_count} files, {man.total_bytes} bytes, "
            f"{man.total_bytes - reused} transferred"
        )
        return {**result(man, man.total_bytes - reused, reused), **how}


if __name__ == "__main__":
    run_payload(stage)
