"""Issue 14, items 3 and 4, for real on the sandbox (SSH login node, BeeGFS stand-in, S3):

- `validate` right after a materialization that also copies the dataset to the bucket
  passes: the S3 sync lock and the stat stamp sit beside the staged tree, not in it;
- a byte flipped mid-file with its mtime put back (bit rot; copy tools that keep mtimes) is
  named by the manifest check, which removes the stat stamp, so the next materialization
  re-hashes and repairs just that file;
- past `staging.rehash_after_hours` (or at 0) a materialization re-hashes on its own and
  repairs such damage with no check having run first; within it, the stamp is trusted.

Each test stages into its own BeeGFS path under its own dataset name (so its own
`s3://datasets/<name>/` prefix) through a catalog copy, with its own DAGSTER_HOME: the shared
staged copies and shipped payloads are never touched."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.core import manifest, staging_plan

pytestmark = pytest.mark.sandbox

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "mlops_assets" / "catalog" / "platform.yaml"
BEEGFS = Path("/mnt/sandbox-beegfs")


def _scripts(rel: str) -> str:
    """A private scripts dir inside the shared one (the BeeGFS root is not the login user's)."""
    return f"scripts/{rel.replace('/', '-')}"


def _catalog(
    tmp: Path, dataset: str, name: str, rel: str, rehash_after_hours: float | None = None
) -> Path:
    """The shipped catalog with `dataset` renamed to `name` (base and sandbox profile, and the
    smoke tasks that name it) and staged into `rel`; `rehash_after_hours` set when given."""
    doc = yaml.safe_load(SHIPPED.read_text())
    for datasets in (doc["datasets"], doc["profiles"]["sandbox"]["datasets"]):
        datasets[name] = datasets.pop(dataset)
    for task in doc["smoke"].values():  # the training tasks that name it follow the rename
        if isinstance(task, dict) and task.get("dataset") == dataset:
            task["dataset"] = name
    doc["datasets"][name]["path"] = rel
    # payloads shipped to a private scripts dir: this branch's never replace the shared ones
    doc["hpc"]["beegfs"].setdefault("directories", {})["scripts"] = _scripts(rel)
    if rehash_after_hours is not None:
        doc["staging"] = {"rehash_after_hours": rehash_after_hours}
    out = tmp / f"platform-{name}-{rehash_after_hours}.yaml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


@pytest.fixture()
def private(sandbox: Path) -> Iterator[tuple[str, str, Path]]:
    """(dataset name, BeeGFS relative path, target): removed afterwards with every sidecar
    beside it and its prefix in the datasets bucket."""
    tag = uuid.uuid4().hex[:8]
    name, rel = f"repair_{tag}", f"datasets/repair-{tag}"
    target = BEEGFS / rel
    try:
        yield name, rel, target
    finally:
        shutil.rmtree(BEEGFS / _scripts(rel), ignore_errors=True)
        for p in target.parent.glob(f"*{target.name}*"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
        _delete_prefix(f"{name}/")


def _s3() -> Any:
    import boto3

    minio = load_catalog(profile="sandbox").catalog.cloud.services.minio
    return boto3.client(
        "s3",
        endpoint_url=minio.url,
        region_name=minio.region,
        aws_access_key_id=os.environ[minio.access_key.env],
        aws_secret_access_key=os.environ[minio.secret_key.env],
    )


def _delete_prefix(prefix: str) -> None:
    s3 = _s3()
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=staging_plan.DATASETS_BUCKET, Prefix=prefix
    ):
        for obj in page.get("Contents", []) or []:
            s3.delete_object(Bucket=staging_plan.DATASETS_BUCKET, Key=obj["Key"])


def _failed(rows: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """The failing rows, short enough to read in an assertion message."""
    return [f"{c}: {r['detail']}" for (_, c), r in rows.items() if not r["passed"]]


def _home(tmp: Path) -> Path:
    home = tmp / "home"
    home.mkdir()
    return home


def _rot(path: Path) -> bytes:
    """Flip one byte in the middle, in place, and put the mtime back. Returns the old bytes."""
    before = path.read_bytes()
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(len(before) // 2)
        fh.write(bytes([before[len(before) // 2] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )
    return before


def _not_data(target: Path) -> list[str]:
    """Files in the staged tree that are neither in its manifest nor the manifest itself."""
    man = manifest.read_manifest(target / manifest.MANIFEST_NAME)
    assert man is not None
    named = {f.path for f in man.files} | {manifest.MANIFEST_NAME}
    return sorted(
        str(p.relative_to(target))
        for p in target.rglob("*")
        if p.is_file() and str(p.relative_to(target)) not in named
    )


def test_validate_right_after_materializing_mnist_and_its_bucket_copy_passes(
    private: tuple[str, str, Path], cli_session: Any, tmp_path: Path
) -> None:
    name, rel, target = private
    catalog = _catalog(tmp_path, "mnist", name, rel)
    key, copy = f"dataset_{name}", f"dataset_{name}_minio"
    st = cli_session(_home(tmp_path))
    rows, res = st.run("materialize", key, copy, catalog=catalog)
    assert res.returncode == 0, (_failed(rows), res.stderr[-2000:])
    assert st.metadata(copy)["objects_uploaded"] > 0  # the copy really ran, under its lock
    assert _not_data(target) == [], "a lock, stamp or temp file inside the verified tree"
    assert (target.parent / f".{target.name}.s3sync.lock").is_file() and (
        target.parent / f".{target.name}.stat"
    ).is_file()

    rows, res = st.run("validate", key, copy, catalog=catalog)
    assert res.returncode == 0, rows
    row = rows[(key, f"{key}_manifest_verifies")]
    assert row["passed"] and row["measured"] == 0, row
    assert rows[(copy, f"{copy}_matches_manifest")]["passed"], rows


def test_bit_rot_named_by_the_check_is_repaired_by_the_next_materialization(
    private: tuple[str, str, Path], cli_session: Any, tmp_path: Path
) -> None:
    name, rel, target = private
    catalog = _catalog(tmp_path, "cifar10", name, rel)
    key = f"dataset_{name}"
    st = cli_session(_home(tmp_path))
    rows, res = st.run("materialize", key, catalog=catalog)
    assert res.returncode == 0, (_failed(rows), res.stderr[-2000:])
    damaged = "cifar-10-batches-py/data_batch_1"
    good = _rot(target / damaged)

    rows, res = st.run("validate", key, catalog=catalog)
    row = rows[(key, f"{key}_manifest_verifies")]
    assert res.returncode == 1 and not row["passed"] and row["detail"] == f"changed: {damaged}", row
    assert "re-hashes the whole copy and repairs it" in row["hint"], row
    assert not (target.parent / f".{target.name}.stat").exists(), (
        "the check left the stamp that hides the damage"
    )

    t0 = time.monotonic()
    rows, res = st.run("materialize", key, catalog=catalog)
    took = time.monotonic() - t0
    assert res.returncode == 0 and rows[(key, f"{key}_manifest_verifies")]["passed"], rows
    md = st.metadata(key)
    assert md["verified_by"].startswith("re-hash: no stat stamp"), md
    assert md["repaired"] == f"changed: {damaged}", md
    # data_batch_1 comes out of the archive, which is intact on BeeGFS: it is extracted
    # again locally and nothing crosses the network
    assert md["bytes_transferred"] == 0, md
    assert (target / damaged).read_bytes() == good
    print(
        f"repair of {damaged} ({len(good)} bytes): {took:.1f}s, "
        f"{md['bytes_transferred']} bytes fetched"
    )


def test_past_the_interval_materialization_rehashes_and_repairs_without_a_check(
    private: tuple[str, str, Path], cli_session: Any, tmp_path: Path
) -> None:
    name, rel, target = private
    catalog = _catalog(tmp_path, "mnist", name, rel)  # the shipped staging.rehash_after_hours (168)
    assert load_catalog(catalog, "sandbox").catalog.staging.rehash_after_hours == 168
    key = f"dataset_{name}"
    st = cli_session(_home(tmp_path))
    rows, res = st.run("materialize", key, catalog=catalog)
    assert res.returncode == 0, (_failed(rows), res.stderr[-2000:])
    stamp = target.parent / f".{target.name}.stat"
    raw = target / "MNIST" / "raw"

    # within the interval the stamp stands: nothing is re-hashed, the damage stays (the
    # check in the same run still finds it)
    first = "t10k-labels-idx1-ubyte.gz"
    good = _rot(raw / first)
    rows, res = st.run("materialize", key, catalog=catalog)
    md = st.metadata(key)
    assert md["verified_by"].startswith("stat stamp") and md["bytes_transferred"] == 0, md
    assert (raw / first).read_bytes() != good
    assert (
        res.returncode == 1
        and rows[(key, f"{key}_manifest_verifies")]["detail"] == f"changed: MNIST/raw/{first}"
    ), rows
    rows, res = st.run("materialize", key, catalog=catalog)  # no stamp now: repaired
    assert res.returncode == 0 and (raw / first).read_bytes() == good, rows
    assert st.metadata(key)["bytes_transferred"] == len(good)

    # a stamp older than the interval: re-hashed and repaired with no check failing first
    doc = json.loads(stamp.read_text())
    doc["verified_at"] -= 169 * 3600
    stamp.write_text(json.dumps(doc))
    second = "train-labels-idx1-ubyte.gz"
    good = _rot(raw / second)
    rows, res = st.run("materialize", key, catalog=catalog)
    md = st.metadata(key)
    assert res.returncode == 0 and rows[(key, f"{key}_manifest_verifies")]["passed"], rows
    assert md["verified_by"].startswith(
        "re-hash: last full verification 169.0 h ago (staging.rehash_after_hours 168)"
    ), md
    assert md["repaired"] == f"changed: MNIST/raw/{second}", md
    assert md["bytes_transferred"] == len(good), md  # only the damaged file came again
    assert (raw / second).read_bytes() == good
    assert time.time() - json.loads(stamp.read_text())["verified_at"] < 600, (
        "a fresh stamp after the re-hash"
    )

    # rehash_after_hours: 0 re-hashes on every materialization
    zero = _catalog(tmp_path, "mnist", name, rel, rehash_after_hours=0)
    third = "train-images-idx3-ubyte.gz"
    good = _rot(raw / third)
    rows, res = st.run("materialize", key, catalog=zero)
    md = st.metadata(key)
    assert res.returncode == 0 and rows[(key, f"{key}_manifest_verifies")]["passed"], rows
    assert (
        "(staging.rehash_after_hours 0)" in md["verified_by"]
        and md["repaired"] == f"changed: MNIST/raw/{third}"
    ), md
    assert md["bytes_transferred"] == len(good), md
    assert _not_data(target) == []
