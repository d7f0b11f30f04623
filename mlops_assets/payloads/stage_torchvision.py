"""Stage a torchvision dataset (MNIST, CIFAR-10, ...) from the catalog's mirrors into the
layout torchvision expects (`<root>/MNIST/raw/...`, `<root>/cifar-10-batches-py/...`), verified
against the catalog's md5s, with the standard library only (torch is not needed here).

Runs ON THE HPC SIDE through Dagster Pipes. Extras (built by core.probes.staging.torchvision_plan):
`target` (the dataset directory), `files` (name, urls, md5, dir, extract: gunzip|untar|""),
`extracted_md5` (relative path -> md5 of files that come out of archives) and `plan_digest`.

Under a lock per target (beside it, as is the stat stamp): if the target's manifest verifies
and was made from the same plan, nothing moves (the stat stamp stands for a re-hash unless a
check found damage or it is older than the catalog's staging.rehash_after_hours). Otherwise
everything is built in `.staging-<name>/` next to the target (a
stable name, so a killed run's partial download is resumed with an HTTP Range request),
files of the current copy whose md5 still matches are copied locally instead of downloaded,
each download is hashed while it is written (md5 against the catalog, sha256 for the
manifest), archives are extracted safely, then the manifest is written and the directory is
swapped into place with renames. A target without a manifest never counts as staged.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stage_common import DirTarget, Log, Progress, StagingError, manifest, remove_tree, run_payload

TIMEOUT_S = 30
Hashes = dict[str, tuple[int, str]]


def _md5(path: Path) -> str:
    h = hashlib.md5()  # noqa: S324 - torchvision's integrity check
    manifest.hash_file(path, extra=[h])
    return h.hexdigest()


def _download(url: str, dest: Path, log: Log) -> tuple[int, str, str]:
    """Download url to dest, resuming `dest.part` with a Range request where the server
    allows it. Returns (bytes transferred now, md5, sha256) of the whole file."""
    part = dest.with_name(dest.name + ".part")
    md5 = hashlib.md5()  # noqa: S324
    sha = hashlib.sha256()
    have = 0
    if part.exists():
        with open(part, "rb") as fh:
            have, _ = manifest.copy_hashing(fh, None, extra=[md5], sha=sha)
    ranged = {"Range": f"bytes={have}-"} if have else {}
    req = urllib.request.Request(url, headers=ranged)  # noqa: S310
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)  # noqa: S310 - catalog mirrors
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file is already complete
            part.rename(dest)
            return 0, md5.hexdigest(), sha.hexdigest()
        raise
    with resp:
        if have and resp.status != 206:
            log(f"{url}: server ignored the Range request, starting over")
            md5, sha, have = hashlib.md5(), hashlib.sha256(), 0  # noqa: S324
        elif have:
            log(f"{url}: resuming at byte {have}")
        total = resp.headers.get("Content-Length")
        progress = Progress(log, f"download {dest.name}", int(total) + have if total else None)
        with open(part, "ab" if have else "wb") as out:
            size, _ = manifest.copy_hashing(resp, out, extra=[md5], sha=sha, progress=progress)
            out.flush()
            os.fsync(out.fileno())
    part.rename(dest)
    return size, md5.hexdigest(), sha.hexdigest()


def _fetch(spec: dict[str, Any], dest: Path, current: Path | None, log: Log) -> tuple[int, str]:
    """Place one file at dest with the md5 the catalog names; returns (bytes downloaded, sha256)."""
    want = str(spec["md5"])
    if dest.is_file():
        if _md5(dest) == want:
            return 0, manifest.hash_file(dest)[1]
        dest.unlink()
    if current is not None and current.is_file() and _md5(current) == want:
        shutil.copyfile(current, dest)
        return 0, manifest.hash_file(dest)[1]
    errors = []
    for base in spec["urls"]:
        url = base if base.endswith(spec["name"]) else base.rstrip("/") + "/" + spec["name"]
        try:
            transferred, md5, sha = _download(url, dest, log)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
                raise
            errors.append(f"{url}: {exc}")
            continue
        if md5 == want:
            return transferred, sha
        dest.unlink()
        errors.append(f"{url}: md5 {md5} is not the catalog's {want}")
    raise StagingError(
        f"no mirror served {spec['name']} intact: "
        + "; ".join(errors)
        + "; the previous copy is untouched"
    )


def _gunzip(src: Path, dest: Path) -> tuple[int, str]:
    with gzip.open(src, "rb") as fh, open(dest, "wb") as out:
        return manifest.copy_hashing(fh, out)


def _untar(src: Path, into: Path) -> None:
    """Extract regular files and directories only, each path checked to stay inside `into`
    (tarfile's `filter="data"` is missing from Python < 3.11.4, e.g. Debian 12's 3.11.2);
    members are streamed out, never with extractall."""
    base = into.resolve()
    with tarfile.open(src, "r:gz") as tar:
        for member in tar:
            dest = (into / member.name).resolve()
            if not dest.is_relative_to(base) or (dest == base and not member.isdir()):
                raise StagingError(
                    f"{src.name}: refusing member {member.name!r} outside the target"
                )
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                dest.parent.mkdir(parents=True, exist_ok=True)
                fh = tar.extractfile(member)
                assert fh is not None
                with fh, open(dest, "wb") as out:
                    manifest.copy_hashing(fh, out)
            else:
                raise StagingError(
                    f"{src.name}: refusing member {member.name!r} (links and devices are not data)"
                )


def stage(params: dict[str, Any], log: Log) -> dict[str, Any]:
    target = Path(str(params["target"]))
    plan_digest = str(params["plan_digest"])
    files: list[dict[str, Any]] = list(params["files"])
    extracted_md5: dict[str, str] = dict(params.get("extracted_md5") or {})
    place = DirTarget(target, log)

    def result(man: manifest.Manifest, transferred: int) -> dict[str, Any]:
        return {
            "path": str(target),
            "manifest_path": str(place.mpath),
            "manifest_digest": man.digest,
            "file_count": man.file_count,
            "bytes": man.total_bytes,
            "bytes_transferred": transferred,
        }

    with place.locked():
        existing, diff, checked = place.in_place(
            params, lambda m: m.meta.get("plan_digest") == plan_digest
        )
        how = checked or {"verified_by": "staged anew, every file hashed as written"}
        if diff is not None:
            if diff.ok:
                log(f"{target} already staged and verified: nothing to transfer")
                return {**result(existing, 0), **how}
            log(f"staged copy in {target} differs from its manifest ({diff.describe()}): repairing")

        transferred = 0
        with place.building(resume=True) as staging:
            for spec in files:
                rel = f"{spec['dir']}/{spec['name']}" if spec.get("dir") else str(spec["name"])
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                n, _ = _fetch(spec, dest, target / rel, log)
                transferred += n
                if spec.get("extract") == "gunzip":
                    _gunzip(dest, dest.with_name(dest.name.removesuffix(".gz")))
                elif spec.get("extract") == "untar":
                    _untar(dest, dest.parent)
            bad = []
            for rel, want in sorted(extracted_md5.items()):
                path = staging / rel
                if not path.is_file():
                    bad.append(f"{rel} missing from the archive")
                elif _md5(path) != want:
                    bad.append(f"{rel} md5 differs from the catalog's {want}")
            if bad:
                remove_tree(staging)
                raise StagingError(
                    "extracted files do not verify: "
                    + "; ".join(bad)
                    + "; the previous copy is untouched"
                )
            man = manifest.build_manifest(staging, meta={"plan_digest": plan_digest})
            place.install(man)
        log(
            f"staged {target}: {man.file_count} files, "
            f"{man.total_bytes} bytes, {transferred} transferred"
        )
        return {**result(man, transferred), **how}


if __name__ == "__main__":
    run_payload(stage)
