"""core.manifest: stable JSON and digest, named differences, hashing while copying."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core import manifest as mf


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_build_manifest_paths_sizes_hashes_and_excludes_itself(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.txt": b"alpha", "sub/b.bin": b"\x00" * 10, mf.MANIFEST_NAME: b"{}"})
    m = mf.build_manifest(tmp_path)
    assert [f.path for f in m.files] == ["a.txt", "sub/b.bin"]
    assert m.by_path()["a.txt"] == mf.FileEntry("a.txt", 5, hashlib.sha256(b"alpha").hexdigest())
    assert m.total_bytes == 15 and m.file_count == 2


def test_symlinked_files_are_hashed_through_the_link(tmp_path: Path) -> None:
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "x").write_bytes(b"weights")
    snap = tmp_path / "snap"
    snap.mkdir()
    os.symlink("../blobs/x", snap / "model.safetensors")
    m = mf.build_manifest(snap)
    assert m.files == (
        mf.FileEntry("model.safetensors", 7, hashlib.sha256(b"weights").hexdigest()),
    )


def test_json_round_trip_is_stable_and_digest_ignores_meta(tmp_path: Path) -> None:
    _tree(tmp_path, {"z": b"1", "a": b"2"})
    m = mf.build_manifest(tmp_path, meta={"revision": "abc"})
    text = m.to_json()
    again = mf.Manifest.from_json(text)
    assert again == m and again.meta == {"revision": "abc"}
    assert again.to_json() == text
    assert mf.Manifest.of(m.files).digest == m.digest


def test_edited_manifest_is_refused() -> None:
    m = mf.Manifest.of([mf.FileEntry("a", 1, "0" * 64)])
    with pytest.raises(mf.ManifestError, match="digest"):
        mf.Manifest.from_json(m.to_json().replace('"size": 1', '"size": 2'))
    with pytest.raises(mf.ManifestError):
        mf.Manifest.from_json(m.to_json()[:40])
    with pytest.raises(mf.ManifestError, match="relative"):
        mf.Manifest.of([mf.FileEntry("../etc/passwd", 1, "0" * 64)])
    with pytest.raises(mf.ManifestError, match="duplicate"):
        mf.Manifest.of([mf.FileEntry("a", 1, "0" * 64), mf.FileEntry("a", 2, "1" * 64)])


def test_compare_names_missing_extra_and_changed(tmp_path: Path) -> None:
    _tree(tmp_path, {"keep": b"k", "gone": b"g", "edit": b"e1"})
    before = mf.build_manifest(tmp_path)
    (tmp_path / "gone").unlink()
    (tmp_path / "edit").write_bytes(b"e2")
    (tmp_path / "new").write_bytes(b"n")
    diff = mf.verify_tree(tmp_path, before)
    assert (diff.missing, diff.extra, diff.changed) == (("gone",), ("new",), ("edit",))
    assert diff.describe() == "missing: gone; extra: new; changed: edit"
    assert not diff.ok and diff.count == 3
    assert mf.verify_tree(tmp_path / "nope", before).missing == ("edit", "gone", "keep")


def test_write_and_read_manifest_atomically(tmp_path: Path) -> None:
    assert mf.read_manifest(tmp_path / "m.json") is None
    m = mf.Manifest.of([mf.FileEntry("a", 1, "0" * 64)])
    mf.write_manifest(tmp_path / "m.json", m)
    assert mf.read_manifest(tmp_path / "m.json") == m
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_copy_hashing_streams_with_extra_hashes_and_progress() -> None:
    data = os.urandom(3 * 1024 + 7)
    out = io.BytesIO()
    md5 = hashlib.md5()
    seen: list[int] = []
    size, sha = mf.copy_hashing(
        io.BytesIO(data), out, extra=[md5], chunk=1024, progress=seen.append
    )
    assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    assert out.getvalue() == data and md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert seen == [1024, 1024, 1024, 7]


_names = st.text(alphabet="abcxyz019_-.", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)
_paths = st.lists(_names, min_size=1, max_size=3).map("/".join)
_entries = st.dictionaries(
    _paths, st.tuples(st.integers(0, 2**40), st.binary(min_size=1, max_size=4)), max_size=12
)


def _manifest(d: dict[str, tuple[int, bytes]]) -> mf.Manifest:
    return mf.Manifest.of(
        mf.FileEntry(p, s, hashlib.sha256(h).hexdigest()) for p, (s, h) in d.items()
    )


@given(_entries)
def test_json_round_trip_property(d: dict[str, tuple[int, bytes]]) -> None:
    m = _manifest(d)
    assert mf.Manifest.from_json(m.to_json()) == m
    assert mf.compare(m, m).ok


@given(_entries, _entries)
def test_compare_property(a: dict[str, tuple[int, bytes]], b: dict[str, tuple[int, bytes]]) -> None:
    ma, mb = _manifest(a), _manifest(b)
    diff = mf.compare(ma, mb)
    assert set(diff.missing) == set(a) - set(b)
    assert set(diff.extra) == set(b) - set(a)
    assert set(diff.changed) == {p for p in set(a) & set(b) if a[p] != b[p]}
    assert diff.ok == (ma.digest == mb.digest)


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=5000), st.integers(1, 700))
def test_copy_hashing_property(data: bytes, chunk: int) -> None:
    out = io.BytesIO()
    assert mf.copy_hashing(io.BytesIO(data), out, chunk=chunk) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert out.getvalue() == data


def _verified_tree(tmp_path: Path) -> tuple[Path, mf.Manifest, Path]:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "a.bin").write_bytes(b"a" * 5000)
    (root / "sub" / "b.txt").write_text("hello")
    man = mf.build_manifest(root)
    mpath = root / mf.MANIFEST_NAME
    mf.write_manifest(mpath, man)
    return root, man, mpath


def test_quick_verify_skips_hashing_only_for_files_untouched_since_verified(tmp_path: Path) -> None:
    root, man, mpath = _verified_tree(tmp_path)
    diff, why = mf.quick_verify(root, man, mpath)
    assert diff.ok and why is not None and "no stat stamp" in why, (
        "no stamp yet: a full verify, which then stamps"
    )
    stamp = mf.stamp_path(root, mpath)
    assert stamp == tmp_path / ".data.stat" and stamp.is_file(), "beside the tree, not in it"
    assert sorted(p.name for p in root.iterdir()) == sorted(["a.bin", mf.MANIFEST_NAME, "sub"])
    assert mf.verify_tree(root, man).ok
    diff, why = mf.quick_verify(root, man, mpath)
    assert diff.ok and why is None
    (root / "a.bin").write_bytes(b"b" * 5000)  # same size, new content: mtime moves
    diff, why = mf.quick_verify(root, man, mpath)
    assert why is not None and "mtime" in why and diff.changed == ("a.bin",)


def test_quick_verify_sees_added_files_and_a_foreign_stamp(tmp_path: Path) -> None:
    root, man, mpath = _verified_tree(tmp_path)
    mf.write_stat_stamp(root, man, mpath)
    (root / "sub" / "new.txt").write_text("x")
    diff, why = mf.quick_verify(root, man, mpath)
    assert why == "files added since the last verification" and diff.extra == ("sub/new.txt",)
    (root / "sub" / "new.txt").unlink()
    other = mf.Manifest.of(list(man.files)[:1])
    mf.write_stat_stamp(root, other, mpath)  # a stamp of another manifest
    diff, why = mf.quick_verify(root, man, mpath)
    assert diff.ok and why == "stat stamp of another manifest"


def _rot(path: Path, offset: int) -> None:
    """Flip one byte in place and put the mtime back: bit rot, or a copy tool keeping mtimes."""
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_bit_rot_under_a_stamp_is_trusted_until_a_check_invalidates_it(tmp_path: Path) -> None:
    root, man, mpath = _verified_tree(tmp_path)
    mf.write_stat_stamp(root, man, mpath)
    _rot(root / "a.bin", 2500)
    diff, why = mf.quick_verify(root, man, mpath)
    assert diff.ok and why is None, (
        "same size, mtime and inode: the stamp stands (this is why checks re-hash)"
    )
    # the check's command (mlops_manifest.py verify) finds it and removes the stamp
    assert mf.main(["verify", str(root), str(mpath)]) == 1
    assert not mf.stamp_path(root, mpath).exists()
    diff, why = mf.quick_verify(root, man, mpath)
    assert why is not None and "no stat stamp" in why and diff.changed == ("a.bin",)
    assert not mf.stamp_path(root, mpath).exists(), "a failed verification writes no stamp"


def test_verify_command_reports_the_stamp_and_leaves_it_when_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    root, man, mpath = _verified_tree(tmp_path)
    mf.write_stat_stamp(root, man, mpath)
    assert mf.main(["verify", str(root), str(mpath)]) == 0
    assert (
        json.loads(capsys.readouterr().out)["stamp"] == "untouched"
        and mf.stamp_path(root, mpath).is_file()
    )
    (root / "sub" / "b.txt").unlink()
    assert mf.main(["verify", str(root), str(mpath)]) == 1
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["stamp"] == "removed" and verdict["missing"] == ["sub/b.txt"]
    assert mf.main(["verify", str(root), str(mpath)]) == 1
    assert json.loads(capsys.readouterr().out)["stamp"] == "none"


def test_an_old_stamp_is_not_trusted(tmp_path: Path) -> None:
    root, man, mpath = _verified_tree(tmp_path)
    mf.write_stat_stamp(root, man, mpath, now=1_000_000.0)
    _rot(root / "sub" / "b.txt", 1)
    day = 86400.0
    diff, why = mf.quick_verify(root, man, mpath, max_age_s=7 * day, now=1_000_000.0 + 6 * day)
    assert diff.ok and why is None, "younger than the limit: trusted"
    diff, why = mf.quick_verify(root, man, mpath, now=1_000_000.0 + 60 * day)
    assert diff.ok and why is None, "no limit given: any age"
    diff, why = mf.quick_verify(root, man, mpath, max_age_s=7 * day, now=1_000_000.0 + 8 * day)
    assert (
        why == "last full verification 192.0 h ago (staging.rehash_after_hours 168)"
        and diff.changed == ("sub/b.txt",)
    )
    # 0 re-hashes every time, even right after a verification
    (root / "sub" / "b.txt").write_text("hello")
    diff, why = mf.quick_verify(root, man, mpath, max_age_s=0)
    assert diff.ok and why is not None and mf.stamp_path(root, mpath).is_file()
    diff, why = mf.quick_verify(root, man, mpath, max_age_s=0)
    assert diff.ok and why is not None and "0 h ago" in why


def test_a_stamp_without_a_time_is_trusted_only_without_an_age_limit(tmp_path: Path) -> None:
    import json

    root, man, mpath = _verified_tree(tmp_path)
    mf.write_stat_stamp(root, man, mpath)
    stamp = mf.stamp_path(root, mpath)
    doc = json.loads(stamp.read_text())
    del doc["verified_at"]  # written by a version before staging.rehash_after_hours
    stamp.write_text(json.dumps(doc))
    assert mf.quick_verify(root, man, mpath)[1] is None
    assert (
        mf.quick_verify(root, man, mpath, max_age_s=3600)[1]
        == "stat stamp without a verification time"
    )


def test_sidecars_sit_beside_the_tree_or_beside_an_outside_manifest(tmp_path: Path) -> None:
    ds = tmp_path / "datasets" / "mnist"
    assert (
        mf.sidecar(ds, ds / mf.MANIFEST_NAME, ".s3sync.lock")
        == tmp_path / "datasets" / ".mnist.s3sync.lock"
    )
    assert (
        mf.stamp_path(str(ds) + "/", f"{ds}/{mf.MANIFEST_NAME}")
        == tmp_path / "datasets" / ".mnist.stat"
    )
    repo = tmp_path / "hub" / "models--org--m"
    snap, mpath = repo / "snapshots" / "abc", repo / ".mlops" / "abc.json"
    assert mf.stamp_path(snap, mpath) == repo / ".mlops" / "abc.json.stat"
    assert mf.sidecar(snap, mpath, ".s3sync.lock") == repo / ".mlops" / "abc.json.s3sync.lock"
    for side in (mf.stamp_path(ds, ds / mf.MANIFEST_NAME), mf.stamp_path(snap, mpath)):
        assert ds not in side.parents and snap not in side.parents


def test_a_legacy_stamp_inside_the_tree_is_not_data_and_is_removed(tmp_path: Path) -> None:
    root, man, mpath = _verified_tree(tmp_path)
    (root / mf.LEGACY_STAMP).write_text("{}")  # where versions before the move kept it
    assert mf.verify_tree(root, man).ok
    diff, _ = mf.quick_verify(root, man, mpath)
    assert (
        diff.ok and not (root / mf.LEGACY_STAMP).exists() and mf.stamp_path(root, mpath).is_file()
    )


def test_copy_hashing_extra_hashes_and_resumed_sha(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000
    md5 = hashlib.md5()
    sha = hashlib.sha256(data[:1000])
    out = io.BytesIO()
    size, digest = mf.copy_hashing(io.BytesIO(data[1000:]), out, extra=[md5], sha=sha, chunk=4096)
    assert size == len(data) - 1000 and out.getvalue() == data[1000:]
    assert digest == hashlib.sha256(data).hexdigest()
    assert md5.hexdigest() == hashlib.md5(data[1000:]).hexdigest()
