"""Staging end to end on the sandbox: hub/torchvision mirror -> payloads run by `mlops` over
the SSH login node -> BeeGFS stand-in, driven through the `mlops-assets` CLI and recorded in a
DAGSTER_HOME. Fault scenarios: a corrupted staged file is named by its check and repaired; an
unchanged re-run moves zero bytes; the mirror offline gives a clear error and leaves the
previous copy as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.core.manifest import Manifest
from mlops_assets.core.staging_plan import (
    dataset_sync_plan,
    hub_plan,
    staged_location,
    torchvision_plan,
)
from mlops_assets.core.transport.hostexec import SshRunner, SshSettings

pytestmark = pytest.mark.sandbox

CATALOG = load_catalog(profile="sandbox").catalog
MIRROR = "http://127.0.0.1:8088"
DATASETS = [f"dataset_{n}" for n in CATALOG.datasets]
MODELS = [f"model_{n}" for n in CATALOG.models]


def _plan(key: str) -> dict[str, Any]:
    kind, _, name = key.partition("_")
    if kind == "dataset":
        d = CATALOG.datasets[name]
        src = d.source
        if getattr(src, "kind", "") == "huggingface":
            return hub_plan(CATALOG, "dataset", src.repo, src.revision, src.allow_patterns)  # type: ignore[union-attr]
        return torchvision_plan(CATALOG, d)
    m = CATALOG.models[name]
    return hub_plan(CATALOG, "model", m.repo, m.revision, m.allow_patterns)


def _root(key: str) -> Path:
    return Path(staged_location(CATALOG, _plan(key))[0])


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))  # follows the snapshot symlink into the blob, as a bad disk would


def _scenario(name: str | None) -> None:
    path, body = (
        ("/_standin/reset", b"{}")
        if name is None
        else ("/_standin/scenario", json.dumps({"name": name}).encode())
    )
    req = urllib.request.Request(
        MIRROR + path, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


@pytest.fixture(scope="module")
def staging(
    sandbox: Path, cli_session: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Every dataset and model staged from scratch once, through the CLI."""
    for key in DATASETS + MODELS:  # start from nothing so the first run moves every byte
        root = _root(key)
        target = (
            root if key.startswith("dataset_") and "repo" not in _plan(key) else root.parent.parent
        )
        shutil.rmtree(target, ignore_errors=True)
    st = cli_session(tmp_path_factory.mktemp("dagster_home"))
    start = time.monotonic()
    st.first_rows, _ = st.run("materialize", "datasets", "models")
    st.first_s = time.monotonic() - start
    yield st


def test_every_dataset_and_model_is_staged_verified_and_loadable_offline(
    staging: Any, sandbox: Path
) -> None:
    rows = staging.first_rows
    for key in DATASETS + MODELS:
        assert rows[(key, "materialized")]["passed"], rows[(key, "materialized")]
        assert rows[(key, f"{key}_manifest_verifies")]["passed"], rows[
            (key, f"{key}_manifest_verifies")
        ]
        assert rows[(key, f"{key}_size_within_bounds")]["passed"], rows[
            (key, f"{key}_size_within_bounds")
        ]
        loads = rows[(key, f"{key}_loads")]
        assert loads["passed"] and loads["measured"] == 0, loads
        kind, _, name = key.partition("_")
        if kind == "dataset":  # the splits pinned in the sandbox profile, counted on the HPC side
            assert json.loads(loads["extra"]["rows_per_split"]) == CATALOG.datasets[name].splits, (
                loads
            )
        else:
            assert loads["extra"]["parameters"] == CATALOG.models[name].parameters, loads
        md = staging.metadata(key)
        if "repo" in _plan(key):
            assert md["bytes_transferred"] == md["bytes"] > 0, md
        else:  # archives come over the network; what is extracted from them does not
            assert 0 < md["bytes_transferred"] < md["bytes"], md
        assert md["file_count"] > 0 and len(md["manifest_digest"]) == 64 and md["duration_s"] >= 0
    print(
        f"first materialization of {len(DATASETS + MODELS)} assets: {staging.first_s:.1f}s, "
        f"{sum(staging.metadata(k)['bytes_transferred'] for k in DATASETS + MODELS)} bytes"
    )
    # torchvision's layout
    mnist, cifar = _root("dataset_mnist"), _root("dataset_cifar10")
    assert {p.name for p in (mnist / "MNIST" / "raw").iterdir()} >= {
        "train-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert (cifar / "cifar-10-batches-py" / "test_batch").is_file()
    # the staged files belong to the training user, who wrote them over SSH
    assert (
        mnist / "MNIST" / "raw" / "train-images-idx3-ubyte"
    ).owner() == CATALOG.hpc.beegfs.training_user
    # the HF cache layout: huggingface_hub resolves the pinned revision offline, as `mlops`
    login = CATALOG.hpc.access.login
    runner = SshRunner(
        SshSettings(login.host, login.port, login.user, login.key_path, login.known_hosts)
    )
    try:
        for repo, rev, repo_type in [
            (m.repo, m.revision, "model") for m in CATALOG.models.values()
        ] + [
            ("HuggingFaceH4/no_robots", CATALOG.datasets["no_robots"].source.revision, "dataset")  # type: ignore[union-attr]
        ]:
            res = runner.run(
                [
                    CATALOG.hpc.python,
                    "-c",
                    "import sys; from huggingface_hub import snapshot_download as s; "
                    "print(s(sys.argv[1], repo_type=sys.argv[2]))",
                    repo,
                    repo_type,
                ],
                env={"HF_HOME": CATALOG.hpc.env["HF_HOME"], "HF_HUB_OFFLINE": "1"},
            )
            assert res.ok, res.stderr
            assert res.stdout.strip().endswith(f"/snapshots/{rev}"), res.stdout
    finally:
        runner.close()


def test_unchanged_rerun_moves_zero_bytes(staging: Any) -> None:
    start = time.monotonic()
    rows, _ = staging.run("materialize", "datasets", "models")
    took = time.monotonic() - start
    payload_s = 0.0
    for key in DATASETS + MODELS:
        assert rows[(key, "materialized")]["passed"]
        assert rows[(key, f"{key}_manifest_verifies")]["passed"]
        md = staging.metadata(key)
        assert md["bytes_transferred"] == 0, (key, md)
        payload_s += md["duration_s"]
    print(
        f"unchanged re-run: {took:.1f}s for the CLI run, {payload_s:.2f}s in the payloads, 0 bytes "
        f"(first run {staging.first_s:.1f}s)"
    )


def test_corrupted_file_is_named_by_its_check_then_repaired(staging: Any) -> None:
    snap = _root("model_gpt2")
    _flip_last_byte(snap / "model.safetensors")
    rows, res = staging.run("validate", "model_gpt2")
    row = rows[("model_gpt2", "model_gpt2_manifest_verifies")]
    assert not row["passed"] and "changed: model.safetensors" in row["detail"], row
    assert res.returncode == 1

    rows, _ = staging.run("materialize", "model_gpt2")
    assert rows[("model_gpt2", "model_gpt2_manifest_verifies")]["passed"], rows
    md = staging.metadata("model_gpt2")
    # only the damaged file came over the network again
    assert md["bytes_transferred"] == (snap / "model.safetensors").stat().st_size, md


@pytest.mark.parametrize(
    ("key", "damaged", "error"),
    [
        (
            "dataset_mnist",
            "MNIST/raw/t10k-labels-idx1-ubyte.gz",
            "no mirror served t10k-labels-idx1-ubyte.gz intact",
        ),
        ("model_smollm_135m", "config.json", "cannot list model HuggingFaceTB/SmolLM-135M"),
    ],
)
def test_mirror_offline_gives_a_clear_error_and_keeps_the_previous_copy(
    staging: Any, key: str, damaged: str, error: str
) -> None:
    root = _root(key)
    _flip_last_byte(root / damaged)  # so that the run has to fetch again
    before = _tree(root)
    try:
        _scenario("offline")
        rows, res = staging.run("materialize", key)
        row = rows[(key, "materialized")]
        assert not row["passed"] and res.returncode == 1
        assert (
            error in row["detail"]
            and "503" in row["detail"]
            and "previous copy is untouched" in row["detail"]
        ), row
        assert _tree(root) == before, "the previous copy changed"
    finally:
        _scenario(None)
    rows, _ = staging.run("materialize", key)
    assert rows[(key, f"{key}_manifest_verifies")]["passed"], rows
    assert _tree(root) != before  # repaired


@pytest.mark.parametrize(
    ("key", "damaged"),
    [
        ("dataset_wikitext", "wikitext-2-raw-v1/train-00000-of-00001.parquet"),
        ("dataset_mnist", "MNIST/raw/train-images-idx3-ubyte"),
        ("dataset_cifar10", "cifar-10-batches-py/data_batch_3"),
        ("model_smollm_135m", "model.safetensors"),
    ],
)
def test_truncated_file_fails_the_load_check_naming_it_then_is_repaired(
    staging: Any, key: str, damaged: str
) -> None:
    path = _root(key) / damaged
    size = path.stat().st_size
    with open(
        path, "r+b"
    ) as fh:  # through the snapshot symlink into the blob, as a short write would
        fh.truncate(size - 100)
    rows, res = staging.run("validate", key)
    row = rows[(key, f"{key}_loads")]
    assert not row["passed"] and res.returncode == 1, row
    assert row["detail"].startswith(f"{damaged}: "), row
    assert rows[(key, f"{key}_manifest_verifies")]["detail"] == f"changed: {damaged}"

    rows, _ = staging.run("materialize", key)
    assert (
        rows[(key, f"{key}_loads")]["passed"] and rows[(key, f"{key}_manifest_verifies")]["passed"]
    ), rows
    assert path.stat().st_size == size


def test_dataset_copies_in_the_datasets_bucket_match_the_manifest(staging: Any) -> None:
    """Where the catalog says sync_to_bucket: byte-identical objects, 0 bytes on an unchanged
    re-run, a deleted object named by the check and re-uploaded alone."""
    import os

    import boto3

    minio = CATALOG.cloud.services.minio
    s3 = boto3.client(
        "s3",
        endpoint_url=minio.url,
        region_name=minio.region,
        aws_access_key_id=os.environ[minio.access_key.env],
        aws_secret_access_key=os.environ[minio.secret_key.env],
    )
    synced = [n for n, d in CATALOG.datasets.items() if d.sync_to_bucket]
    keys = [f"dataset_{n}_minio" for n in synced]
    assert keys, "the sandbox catalog syncs no dataset"
    for _ in range(2):  # the second run finds everything in place
        rows, res = staging.run("materialize", *keys)
        assert res.returncode == 0, rows
    for name in synced:
        key = f"dataset_{name}_minio"
        assert rows[(key, f"{key}_matches_manifest")]["passed"], rows
        md = staging.metadata(key)
        assert md["bytes_uploaded"] == 0 and md["objects_uploaded"] == 0, md
        plan = dataset_sync_plan(CATALOG, name, CATALOG.datasets[name])
        man = Manifest.from_json(Path(plan["manifest_path"]).read_text())
        for f in man.files:
            body = s3.get_object(Bucket=plan["bucket"], Key=plan["prefix"] + f.path)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == f.sha256, f.path

    name = synced[0]
    key = f"dataset_{name}_minio"
    plan = dataset_sync_plan(CATALOG, name, CATALOG.datasets[name])
    victim = Manifest.from_json(Path(plan["manifest_path"]).read_text()).files[0]
    s3.delete_object(Bucket=plan["bucket"], Key=plan["prefix"] + victim.path)
    rows, res = staging.run("validate", key)
    row = rows[(key, f"{key}_matches_manifest")]
    assert (
        not row["passed"] and f"missing: {victim.path}" in row["detail"] and res.returncode == 1
    ), row
    rows, _ = staging.run("materialize", key)
    md = staging.metadata(key)
    assert (
        rows[(key, f"{key}_matches_manifest")]["passed"]
        and md["objects_uploaded"] == 1
        and md["bytes_uploaded"] == victim.size
    ), md
