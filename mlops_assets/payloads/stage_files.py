"""Stage trees of shipped files (training scripts, configs) from their upload mirror on BeeGFS
into their targets (`scripts/training/`, `configs/training/`), atomically.

Runs ON THE HPC SIDE through Dagster Pipes. Extras: `trees` (a list of {source, target,
digest}: `digest` is the manifest digest of the package's files, computed by the
orchestrator) and `bytes_uploaded` (what the orchestrator sent to the mirrors this run).

Per target, under a lock: when its manifest has the expected digest and the files still hash
to it, nothing moves. Otherwise the mirror is copied into `.staging-<name>` next to the
target, hashed, checked against the expected digest (a mirror changed by a concurrent run
fails clearly instead of staging a mix), given its manifest, and swapped into place with
renames. A target without a manifest never counts as staged.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stage_common import DirTarget, Log, StagingError, manifest, remove_tree, run_payload


def stage_tree(
    source: Path, target: Path, digest: str, log: Log, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    place = DirTarget(target, log)
    with place.locked():
        existing, diff, _ = place.in_place(params or {}, lambda m: m.digest == digest)
        if diff is not None:
            if diff.ok:
                log(f"{target} already staged and verified")
                return {
                    "path": str(target),
                    "digest": digest,
                    "files": existing.file_count,
                    "bytes": existing.total_bytes,
                    "changed": False,
                }
            log(f"{target} differs from its manifest ({diff.describe()}): staging again")
        if not source.is_dir():
            raise StagingError(f"the upload mirror {source} is missing: run the asset again")
        with place.building(resume=False) as staging:
            shutil.copytree(source, staging, ignore=shutil.ignore_patterns(".*.tmp", "__pycache__"))
            man = manifest.build_manifest(staging, meta={"source": str(source)})
            if man.digest != digest:
                remove_tree(staging)
                raise StagingError(
                    f"{source} does not hold the package's files (digest "
                    f"{man.digest[:16]}, expected {digest[:16]}): another run "
                    "is uploading; run again. The previous copy is untouched"
                )
            place.install(man)
        log(f"staged {target}: {man.file_count} files, {man.total_bytes} bytes")
        return {
            "path": str(target),
            "digest": digest,
            "files": man.file_count,
            "bytes": man.total_bytes,
            "changed": True,
        }


def stage(params: dict[str, Any], log: Log) -> dict[str, Any]:
    import hashlib

    done = [
        stage_tree(Path(str(t["source"])), Path(str(t["target"])), str(t["digest"]), log, params)
        for t in params["trees"]
    ]
    combined = hashlib.sha256("".join(d["digest"] for d in done).encode()).hexdigest()
    return {
        "targets": ", ".join(d["path"] for d in done),
        "file_count": sum(d["files"] for d in done),
        "bytes": sum(d["bytes"] for d in done),
        "bytes_transferred": int(params.get("bytes_uploaded", 0)),
        "targets_changed": sum(1 for d in done if d["changed"]),
        "manifest_digest": combined,
    }


if __name__ == "__main__":
    run_payload(stage)
