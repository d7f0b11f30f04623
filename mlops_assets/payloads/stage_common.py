"""What the staging payloads share: a lock per target, the staging directory next to it, the
check of the current copy against its manifest, disk-full errors that say so, progress lines,
and the Pipes entry point. Locks and stamps sit beside a staged tree, never in it.

Runs ON THE HPC SIDE with a plain Python that has dagster-pipes (and huggingface_hub for the
hub payload): no mlops_assets import. The orchestrator ships this file next to the payloads,
together with core/manifest.py as `mlops_manifest.py`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:  # shipped next to the payloads on the HPC side
    import mlops_manifest as manifest
except ImportError:  # running from the package (tests, local mode with the package installed)
    from mlops_assets.core import manifest

Log = Callable[[str], None]

STAGING_PREFIX = ".staging-"
OLD_PREFIX = ".old-"
LOCK_WAIT_S = 3600.0


class StagingError(RuntimeError):
    """A staging run that cannot finish; the message says what and what to do. The previous
    good copy is untouched whenever this is raised."""


@contextmanager
def target_lock(lock_path: Path, log: Log, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """One stager per target at a time, across hosts sharing the filesystem (flock on BeeGFS
    needs the client's tuneUseGlobalFileLocks; Dagster's hub_downloads pool guards too)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_s
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    log(f"waiting for another run staging the same target ({lock_path})")
                    announced = True
                if time.monotonic() > deadline:
                    raise StagingError(
                        f"{lock_path} held by another run for {wait_s:.0f}s"
                    ) from None
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)


def read_existing(mpath: Path, log: Log) -> Any:
    """The manifest of the copy in place, or None: none yet, or one that does not parse (a
    damaged manifest must not stop a repair; the copy is then staged anew)."""
    try:
        return manifest.read_manifest(mpath)
    except manifest.ManifestError as exc:
        log(f"ignoring unreadable manifest {mpath}: {exc}")
        return None


def verify_current(
    root: Path, existing: Any, mpath: Path, params: dict[str, Any], log: Log
) -> tuple[Any, dict[str, Any]]:
    """Is the staged copy still what its manifest says? manifest.quick_verify with the
    catalog's `rehash_after_s`: the stat stamp is trusted unless a check removed it (it found
    damage), a file's stat changed, or the last full verification is too old; then the whole
    tree is re-hashed. Returns (difference, metadata saying how it was verified)."""
    age = params.get("rehash_after_s")
    diff, why = manifest.quick_verify(
        root, existing, mpath, max_age_s=None if age is None else float(age)
    )
    if why is None:
        return diff, {
            "verified_by": "stat stamp (no file changed since the last full verification)"
        }
    log(f"re-hashed {root}: {why}: {diff.describe()}")
    meta: dict[str, Any] = {"verified_by": f"re-hash: {why}"}
    if not diff.ok:
        meta["repaired"] = diff.describe(limit=20)
    return diff, meta


def check_in_place(
    root: Path, mpath: Path, params: dict[str, Any], log: Log, wanted: Callable[[Any], bool]
) -> tuple[Any, Any, dict[str, Any]]:
    """The copy in place, checked (verify_current) when its manifest is the `wanted` one:
    (manifest, difference, how it was verified). Otherwise (the manifest or None, None, {}):
    nothing there to keep, the target is staged anew."""
    existing = read_existing(mpath, log)
    if existing is None or not wanted(existing):
        return existing, None, {}
    diff, how = verify_current(root, existing, mpath, params, log)
    return existing, diff, how


def disk_full(exc: OSError, where: Path) -> StagingError:
    usage = shutil.disk_usage(where if where.exists() else where.parent)
    return StagingError(
        f"disk full while staging into {where} (free {usage.free} of {usage.total} bytes); "
        "the previous copy is untouched: free space on the shared filesystem and run again"
    )


@contextmanager
def enospc_is_clear(where: Path, cleanup: Path | None = None) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
        raise disk_full(exc, where) from None


def remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def swap_into_place(staging: Path, target: Path) -> None:
    """The verified staging directory becomes the target: the old copy is moved aside first
    and removed only after the rename, so a reader never sees a half-built target."""
    old = target.with_name(f"{OLD_PREFIX}{target.name}.{os.getpid()}")
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    remove_tree(old)


class DirTarget:
    """A target directory that holds its own manifest, with its lock, stat stamp and staging
    directory beside it (stage_files, stage_torchvision): the layout and the steps in one
    place, so both stage alike."""

    def __init__(self, path: Path, log: Log) -> None:
        self.path, self.log = path, log
        self.mpath = path / manifest.MANIFEST_NAME
        self.staging = path.with_name(f"{STAGING_PREFIX}{path.name}")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The target's lock (target_lock), its parent directory made first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with target_lock(self.path.with_name(f".{self.path.name}.lock"), self.log):
            yield

    def in_place(
        self, params: dict[str, Any], wanted: Callable[[Any], bool]
    ) -> tuple[Any, Any, dict[str, Any]]:
        """check_in_place on the target."""
        return check_in_place(self.path, self.mpath, params, self.log, wanted)

    @contextmanager
    def building(self, resume: bool) -> Iterator[Path]:
        """The staging directory the new copy is built in: a killed run's files are kept when
        `resume`, else removed first; disk full is a clear error (enospc_is_clear)."""
        if resume:
            self.staging.mkdir(exist_ok=True)
        else:
            remove_tree(self.staging)
        with enospc_is_clear(self.path.parent, cleanup=self.staging):
            yield self.staging

    def install(self, man: Any) -> None:
        """The built copy, given its manifest, swapped into place (swap_into_place) and
        stamped: a target without its manifest never counts as staged."""
        manifest.write_manifest(self.staging / manifest.MANIFEST_NAME, man)
        swap_into_place(self.staging, self.path)
        manifest.write_stat_stamp(self.path, man, self.mpath)


class Progress:
    """Logs bytes, rate and ETA at most every `interval_s`."""

    def __init__(self, log: Log, what: str, total: int | None, interval_s: float = 5.0) -> None:
        self.log, self.what, self.total, self.interval_s = log, what, total, interval_s
        self.done = 0
        self.start = self.last = time.monotonic()

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval_s:
            self.last = now
            self.log(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.start, 1e-6)
        rate = self.done / elapsed
        text = f"{self.what}: {self.done} bytes in {elapsed:.1f}s ({rate / 1e6:.2f} MB/s)"
        if self.total:
            left = max(self.total - self.done, 0)
            text += (
                f", {100 * self.done / self.total:.0f}% of {self.total}, ETA "
                f"{left / rate if rate else 0:.0f}s"
            )
        return text


def run_payload(stage: Callable[[dict[str, Any], Log], dict[str, Any]]) -> None:
    """The Pipes entry point: extras in, one materialization (metadata + data version) out."""
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        extras = dict(pipes.extras)
        started = time.monotonic()
        result = stage(extras, pipes.log.info)
        result["duration_s"] = round(time.monotonic() - started, 3)
        digest = str(result.get("manifest_digest") or result.get("sha256") or "")
        pipes.report_asset_materialization(metadata=result, data_version=digest or None)
