"""Manifests of staged data: every file's relative path, size and sha256, as stable JSON with
a digest, and the comparison of two manifests that names what is missing, extra or changed.

Pure standard library and no imports from mlops_assets: the payloads that run on the HPC side
ship this very file next to themselves (as `mlops_manifest.py`) and import it there, so the
orchestrator and the HPC side agree byte for byte on what a manifest is.

Hashing happens while bytes are copied (`copy_hashing`), never in a second pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # an alias only: the HPC side's python may be older than 3.10
    StrPath = str | os.PathLike[str]

MANIFEST_NAME = ".mlops-manifest.json"
# The stat stamp: each file's (size, mtime_ns, inode) when the tree last verified in full, so
# that an unchanged re-materialization need not re-hash (checks always re-hash; see
# quick_verify). It lives beside the tree, never in it (see sidecar).
STAT_SUFFIX = ".stat"
# Where the stamp lived before it moved out of the tree (inside it, beside an inner manifest):
# trees staged by older versions still carry one until their next materialization removes it.
LEGACY_STAMP = MANIFEST_NAME + STAT_SUFFIX
# The one list of names inside a verified tree that are not its data: the manifest itself
# (it travels with the tree in the atomic swap) and the legacy stamp. Everything else a
# payload writes (locks, stamps, .part and temp files) sits outside every verified tree.
RESERVED = (MANIFEST_NAME, LEGACY_STAMP)
FORMAT = "mlops-manifest/1"
CHUNK = 1024 * 1024


class ManifestError(ValueError):
    """A manifest file that cannot be read as one (truncated, edited, other format)."""


@dataclass(frozen=True, order=True)
class FileEntry:
    path: str
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    """Files sorted by path; `digest` is the sha256 of the canonical JSON of the files."""

    files: tuple[FileEntry, ...]
    meta: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, entries: Iterable[FileEntry], meta: dict[str, str] | None = None) -> Manifest:
        files = tuple(sorted(entries))
        counts = Counter(f.path for f in files)
        dupes = sorted(p for p, n in counts.items() if n > 1)
        if dupes:
            raise ManifestError(f"duplicate paths in manifest: {', '.join(dupes)}")
        for f in files:
            check_relpath(f.path)
        return cls(files, dict(meta or {}))

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def file_count(self) -> int:
        return len(self.files)

    def by_path(self) -> dict[str, FileEntry]:
        return {f.path: f for f in self.files}

    def canonical_files(self) -> str:
        return json.dumps([f.as_dict() for f in self.files], sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        """Only the files count: the same bytes at the same paths give the same digest."""
        return hashlib.sha256(self.canonical_files().encode()).hexdigest()

    def to_json(self) -> str:
        doc = {
            "format": FORMAT,
            "digest": self.digest,
            "file_count": self.file_count,
            "total_bytes": self.total_bytes,
            "meta": dict(sorted(self.meta.items())),
            "files": [f.as_dict() for f in self.files],
        }
        return json.dumps(doc, sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            doc = json.loads(text)
            if doc.get("format") != FORMAT:
                raise ManifestError(f"not a {FORMAT} document (format {doc.get('format')!r})")
            files = [
                FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in doc["files"]
            ]
            meta = {str(k): str(v) for k, v in (doc.get("meta") or {}).items()}
        except ManifestError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"unreadable manifest: {type(exc).__name__}: {exc}") from None
        manifest = cls.of(files, meta)
        if doc.get("digest") != manifest.digest:
            raise ManifestError(
                "manifest digest does not match its file list (edited or truncated)"
            )
        return manifest


def check_relpath(path: str) -> str:
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or "\x00" in path
    ):
        raise ManifestError(f"{path!r} is not a clean relative path")
    return path


@dataclass(frozen=True)
class Difference:
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    @property
    def count(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.changed)

    def describe(self, limit: int = 5) -> str:
        if self.ok:
            return "identical"
        parts = []
        for label, names in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("changed", self.changed),
        ):
            if names:
                shown = ", ".join(names[:limit]) + (
                    f" (+{len(names) - limit} more)" if len(names) > limit else ""
                )
                parts.append(f"{label}: {shown}")
        return "; ".join(parts)


def compare(expected: Manifest, actual: Manifest) -> Difference:
    """Name every path that is missing from `actual`, extra in it, or different in size/hash."""
    want, have = expected.by_path(), actual.by_path()
    return Difference(
        missing=tuple(sorted(set(want) - set(have))),
        extra=tuple(sorted(set(have) - set(want))),
        changed=tuple(sorted(p for p in set(want) & set(have) if want[p] != have[p])),
    )


# ------------------------------------------------------------------ hashing and walking


Progress = Callable[[int], None]


def copy_hashing(
    src: IO[bytes],
    dst: IO[bytes] | None,
    *,
    extra: Iterable[Any] = (),
    chunk: int = CHUNK,
    progress: Progress | None = None,
    sha: Any = None,
) -> tuple[int, str]:
    """Stream src into dst (None: just read), hashing on the way. `extra` are more hashlib
    objects fed the same bytes (md5 for torchvision, sha1 for git blobs); they run in a helper
    thread beside the sha256 and the write (hashlib drops the GIL on large blocks), so a second
    hash costs the slower one's time, not the sum. `sha` continues a sha256 already fed (a
    resumed download). Returns (size, sha256)."""
    sha = sha if sha is not None else hashlib.sha256()
    others = list(extra)
    size = 0
    pool = ThreadPoolExecutor(max_workers=1) if others else None

    def feed(block: bytes) -> None:
        for h in others:
            h.update(block)

    try:
        while True:
            block = src.read(chunk)
            if not block:
                break
            pending = pool.submit(feed, block) if pool is not None else None
            sha.update(block)
            if dst is not None:
                dst.write(block)
            if pending is not None:
                pending.result()
            size += len(block)
            if progress is not None:
                progress(len(block))
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return size, sha.hexdigest()


def hash_file(path: StrPath, *, extra: Iterable[Any] = ()) -> tuple[int, str]:
    with open(path, "rb") as fh:
        return copy_hashing(fh, None, extra=extra)


def iter_files(root: StrPath, exclude: Iterable[str] = RESERVED) -> Iterator[str]:
    """Relative POSIX paths of regular files under root (symlinks to files are followed, as
    in the Hugging Face cache's snapshots), sorted; `exclude` names top-level entries."""
    base = Path(root)
    skip = set(exclude)
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = Path(dirpath).relative_to(base)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in skip]
            filenames = [f for f in filenames if f not in skip]
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            if full.is_file():
                yield (rel_dir / name).as_posix()


def build_manifest(
    root: StrPath,
    *,
    exclude: Iterable[str] = RESERVED,
    meta: dict[str, str] | None = None,
) -> Manifest:
    base = Path(root)
    if not base.is_dir():
        raise FileNotFoundError(f"{base} is not a directory")
    entries = []
    for rel in iter_files(base, exclude):
        size, sha = hash_file(base / rel)
        entries.append(FileEntry(rel, size, sha))
    return Manifest.of(entries, meta)


def verify_tree(
    root: StrPath, expected: Manifest, *, exclude: Iterable[str] = RESERVED
) -> Difference:
    """Re-hash the tree and compare it with `expected`. A missing root is all files missing."""
    if not Path(root).is_dir():
        return Difference(missing=tuple(f.path for f in expected.files))
    return compare(expected, build_manifest(root, exclude=exclude))


def sidecar(root: StrPath, manifest_path: StrPath, suffix: str) -> Path:
    """Where a file that belongs to a staged tree but is not its data lives (the stat stamp,
    the S3 sync lock): beside the manifest when the manifest sits outside the tree (the hub
    cache's `.mlops/<rev>.json`), else beside the tree as `.<name><suffix>` in its parent.
    Never inside the tree, where the verifier would count it as an extra file."""
    base, mpath = Path(root), Path(manifest_path)
    if base in mpath.parents:
        return base.with_name(f".{base.name}{suffix}")
    return mpath.with_name(mpath.name + suffix)


def stamp_path(root: StrPath, manifest_path: StrPath) -> Path:
    return sidecar(root, manifest_path, STAT_SUFFIX)


def _stat_of(root: Path, expected: Manifest) -> dict[str, list[int]] | None:
    out: dict[str, list[int]] = {}
    for entry in expected.files:
        try:
            st = (root / entry.path).stat()
        except OSError:
            return None
        out[entry.path] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


def write_stat_stamp(
    root: StrPath, expected: Manifest, manifest_path: StrPath, *, now: float | None = None
) -> None:
    """Record, beside the tree, the stat of every file just verified against the manifest and
    when (`verified_at`, epoch seconds: quick_verify's max_age_s counts from it)."""
    base = Path(root)
    stat = _stat_of(base, expected)
    if stat is None:
        return
    stamp = stamp_path(base, manifest_path)
    tmp = stamp.with_name(f".{stamp.name}.tmp.{os.getpid()}")
    doc = {
        "digest": expected.digest,
        "files": stat,
        "verified_at": time.time() if now is None else now,
    }
    tmp.write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
    os.replace(tmp, stamp)
    (base / LEGACY_STAMP).unlink(missing_ok=True)


def invalidate_stamp(root: StrPath, manifest_path: StrPath) -> str:
    """Forget the last verification: the next quick_verify re-hashes the whole tree. Called by
    the verifying check when it finds damage, so that the state that makes the next
    materialization repair lives next to the data. Returns "removed", "none" or why not."""
    result = "none"
    for stamp in (stamp_path(root, manifest_path), Path(root) / LEGACY_STAMP):
        try:
            stamp.unlink()
            result = "removed"
        except FileNotFoundError:
            continue
        except OSError as exc:
            return f"kept {stamp} ({type(exc).__name__}: {exc.strerror or exc})"
    return result


def _stamp_distrust(
    base: Path, expected: Manifest, stamp: Any, max_age_s: float | None, now: float
) -> str | None:
    """Why the stamp does not stand for a verification (None: it does)."""
    if not isinstance(stamp, dict):
        return "no stat stamp (never verified, or a check found damage)"
    if stamp.get("digest") != expected.digest:
        return "stat stamp of another manifest"
    if max_age_s is not None:
        at = stamp.get("verified_at")
        if not isinstance(at, (int, float)):
            return "stat stamp without a verification time"
        if now - at >= max_age_s:
            return (
                f"last full verification {(now - at) / 3600:.1f} h ago "
                f"(staging.rehash_after_hours {max_age_s / 3600:g})"
            )
    if stamp.get("files") != _stat_of(base, expected):
        return "size, mtime or inode changed since the last verification"
    if sum(1 for _ in iter_files(base)) != expected.file_count:
        return "files added since the last verification"
    return None


def quick_verify(
    root: StrPath,
    expected: Manifest,
    manifest_path: StrPath,
    *,
    max_age_s: float | None = None,
    now: float | None = None,
) -> tuple[Difference, str | None]:
    """For re-materialization only. When every file has the size, mtime and inode it had when
    the tree last verified in full, no file was added, and that verification is younger than
    `max_age_s` (None: any age), the tree is taken as verified without re-hashing: returns
    (identical, None). Otherwise a full verify_tree, stamped when it passes: returns
    (difference, why it re-hashed). Anything that rewrote a file through the filesystem changes
    its mtime; bit rot does not, hence the age limit and the checks' invalidate_stamp."""
    base = Path(root)
    now = time.time() if now is None else now
    try:
        stamp = json.loads(stamp_path(base, manifest_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stamp = None
    why = _stamp_distrust(base, expected, stamp, max_age_s, now)
    if why is None:
        return Difference(), None
    diff = verify_tree(base, expected)
    if diff.ok:
        write_stat_stamp(base, expected, manifest_path, now=now)
    return diff, why


def write_manifest(path: StrPath, manifest: Manifest) -> None:
    """Atomically: a reader sees the old manifest or the new one, never half of one."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(manifest.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def read_manifest(path: StrPath) -> Manifest | None:
    """None if there is none; ManifestError if there is one that is not valid."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return Manifest.from_json(text)


def main(argv: list[str] | None = None) -> int:
    """`python mlops_manifest.py verify ROOT MANIFEST`: one JSON line with the verdict, for
    checks that run on the HPC side (exit 0 when identical, 1 when not, 2 when unreadable).
    When the tree differs, the stat stamp is removed (`stamp` in the verdict says whether), so
    the next materialization re-hashes everything and repairs what this found."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "verify":
        print("usage: mlops_manifest.py verify ROOT MANIFEST", file=sys.stderr)
        return 2
    root, path = args[1], args[2]
    try:
        expected = read_manifest(path)
    except ManifestError as exc:
        print(json.dumps({"state": "unreadable", "error": str(exc)}))
        return 2
    if expected is None:
        print(json.dumps({"state": "no_manifest", "root_exists": Path(root).is_dir()}))
        return 1
    diff = verify_tree(root, expected)
    # damage found: the next materialization must re-hash instead of trusting the stat stamp
    stamp = "untouched" if diff.ok else invalidate_stamp(root, path)
    print(
        json.dumps(
            {
                "state": "identical" if diff.ok else "different",
                "digest": expected.digest,
                "file_count": expected.file_count,
                "total_bytes": expected.total_bytes,
                "missing": list(diff.missing),
                "extra": list(diff.extra),
                "changed": list(diff.changed),
                "meta": expected.meta,
                "stamp": stamp,
            },
            sort_keys=True,
        )
    )
    return 0 if diff.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
