"""Files shipped in the package (training scripts, configs) onto the HPC side: the only bytes
that start on the orchestrator. A mirror directory on BeeGFS receives only the files whose
sha256 differs (each as temp file + rename, so a killed upload leaves no half file under a
real name); the staging payload then builds the target from it atomically. No Dagster."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mlops_assets.core import manifest
from mlops_assets.core.checks import ProbeFailed
from mlops_assets.core.transport.hostexec import Runner, SshRunner

# BeeGFS layout directory -> package directory whose files are staged into <dir>/training/
TRAINING_TREES = {"scripts": "training/scripts", "configs": "training/configs"}
TARGET_SUBDIR = "training"


@dataclass(frozen=True)
class Tree:
    """One package directory and the manifest of its files."""

    local: Path
    manifest: manifest.Manifest


def package_tree(rel: str) -> Tree:
    local = Path(str(resources.files("mlops_assets").joinpath(rel)))
    files = [p for p in manifest.iter_files(local) if "__pycache__" not in p.split("/")]
    entries = [manifest.FileEntry(p, *manifest.hash_file(local / p)) for p in files]
    return Tree(local, manifest.Manifest.of(entries, {"source": f"mlops_assets/{rel}"}))


def remote_hashes(runner: Runner, directory: str) -> dict[str, str]:
    """relative path -> sha256 of the files already in `directory` (none if it is absent)."""
    res = runner.run(
        [
            "sh",
            "-c",
            'cd -- "$1" 2>/dev/null || exit 0; find . -type f ! -name ".*.tmp" -exec sha256sum '
            "{} +",
            "sh",
            directory,
        ],
        timeout_s=300,
    )
    if not res.ok:
        raise ProbeFailed(
            f"cannot list {directory} on {runner.where}: {res.tail(2)}",
            "check the BeeGFS layout (materialize beegfs_layout)",
        )
    out = {}
    for line in res.stdout.splitlines():
        digest, _, path = line.partition("  ")
        if path.startswith("./"):
            out[path[2:]] = digest
    return out


def upload_tree(runner: Runner, tree: Tree, dest: str) -> int:
    """Make `dest` hold exactly the tree's files; returns the bytes sent (0 when unchanged)."""
    have = remote_hashes(runner, dest)
    sent = 0
    for f in tree.manifest.files:
        if have.get(f.path) == f.sha256:
            continue
        target = f"{dest}/{f.path}"
        parent = target.rsplit("/", 1)[0]
        tmp = f"{parent}/.{f.path.rsplit('/', 1)[-1]}.{uuid.uuid4().hex[:8]}.tmp"
        res = runner.run(["mkdir", "-p", "--", parent])
        if not res.ok:
            raise ProbeFailed(
                f"mkdir {parent} on {runner.where} failed: {res.tail(2)}",
                "the scripts/configs directories must be writable",
            )
        if isinstance(runner, SshRunner):
            runner.put(str(tree.local / f.path), tmp)
        else:
            shutil.copyfile(tree.local / f.path, tmp)
        res = runner.run(["mv", "-f", "--", tmp, target])
        if not res.ok:
            raise ProbeFailed(
                f"installing {target} on {runner.where} failed: {res.tail(2)}",
                "check free space and permissions on BeeGFS",
            )
        sent += f.size
    extra = sorted(set(have) - {f.path for f in tree.manifest.files})
    if extra:
        runner.run(["rm", "-f", "--", *(f"{dest}/{p}" for p in extra)])
    return sent
