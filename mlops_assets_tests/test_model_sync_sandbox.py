"""The models' MinIO copy and MLflow registration end to end on the sandbox: the staged HF
snapshot on the BeeGFS stand-in -> sync_s3.py run by `mlops` over the SSH login node ->
SeaweedFS (standing in for MinIO) -> a registered version in the real MLflow server, driven
through the `mlops-assets` CLI and recorded in a DAGSTER_HOME.

Proves: `materialize --select models` exits 0 with every models check passing; an unchanged
re-run uploads 0 bytes and creates no MLflow version; a deleted object is named by the MinIO
check and re-materializing uploads only that object; the S3 secret appears in no report, log
or event; the keys' file on the HPC side is private and gone afterwards; multipart uploads
keep the sha256 metadata."""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.core import staging_plan
from mlops_assets.core.transport.hostexec import SshRunner, SshSettings
from mlops_assets_tests.conftest import sandbox_s3

pytestmark = pytest.mark.sandbox

CATALOG = load_catalog(profile="sandbox").catalog
MODELS = list(CATALOG.models)
MLFLOW = CATALOG.cloud.services.mlflow.url.rstrip("/")
MINIO = CATALOG.cloud.services.minio


def _mlflow(
    method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        MLFLOW + "/api/2.0/mlflow/" + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _versions(registered: str) -> list[dict[str, Any]]:
    status, doc = _mlflow(
        "GET", "model-versions/search?" + urllib.parse.urlencode({"filter": f"name='{registered}'"})
    )
    assert status == 200, doc
    return doc.get("model_versions", [])


def _login() -> SshRunner:
    login = CATALOG.hpc.access.login
    return SshRunner(
        SshSettings(login.host, login.port, login.user, login.key_path, login.known_hosts)
    )


@pytest.fixture(scope="module")
def synced(
    sandbox: Path, cli_session: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, dict, Any, float]]:
    """Both models' bucket prefixes and registered models removed, then `materialize --select
    models` once through the CLI: the first run moves every byte and creates every version."""
    s3 = sandbox_s3()
    for name, m in CATALOG.models.items():
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=m.bucket, Prefix=staging_plan.model_prefix(name, m)
        ):
            for obj in page.get("Contents", []) or []:
                s3.delete_object(Bucket=m.bucket, Key=obj["Key"])
        _mlflow("DELETE", "registered-models/delete", {"name": m.registered_name})
    st = cli_session(tmp_path_factory.mktemp("dagster_home"))
    start = time.monotonic()
    rows, res = st.run("materialize", "models")
    yield st, rows, res, time.monotonic() - start


def test_models_materialize_exits_0_and_every_models_check_passes(
    synced: tuple[Any, dict, Any, float],
) -> None:
    st, rows, res, took = synced
    failed = {k: (r["measured"], r.get("detail")) for k, r in rows.items() if not r["passed"]}
    assert res.returncode == 0 and not failed, (res.returncode, failed, res.stderr[-2000:])
    for name, m in CATALOG.models.items():
        for key, check in [
            (f"model_{name}_minio", f"model_{name}_minio_matches_manifest"),
            (f"model_{name}_mlflow", f"model_{name}_mlflow_version_registered"),
            (f"model_{name}_minio", "materialized"),
            (f"model_{name}_mlflow", "materialized"),
        ]:
            assert rows[(key, check)]["passed"], rows[(key, check)]
        md = st.metadata(f"model_{name}_minio")
        assert md["uri"] == f"s3://{m.bucket}/{name}/{m.revision}/"
        assert md["bytes_uploaded"] == md["bytes"] > 0 and md["bytes_skipped"] == 0, md
        assert md["objects_uploaded"] == md["objects"] > 0 and len(md["manifest_digest"]) == 64, md
        staged = st.metadata(f"model_{name}")
        assert md["manifest_digest"] == staged["manifest_digest"]
        reg = st.metadata(f"model_{name}_mlflow")
        assert reg["created"] is True and reg["source"] == md["uri"], reg
        (version,) = _versions(m.registered_name)
        tags = {t["key"]: t["value"] for t in version["tags"]}
        assert tags["manifest_digest"] == md["manifest_digest"] and tags["revision"] == m.revision
        assert (
            tags["source_repo"] == m.repo
            and tags["minio_uri"] == md["uri"]
            and version["source"] == md["uri"]
        )
        # the copy is byte-identical to BeeGFS: every object's bytes hash to the manifest
        obj = sandbox_s3().get_object(Bucket=m.bucket, Key=f"{name}/{m.revision}/_manifest.json")
        listed = json.loads(obj["Body"].read())
        assert listed["digest"] == md["manifest_digest"]
        for f in listed["files"]:
            body = (
                sandbox_s3()
                .get_object(Bucket=m.bucket, Key=f"{name}/{m.revision}/{f['path']}")["Body"]
                .read()
            )
            assert hashlib.sha256(body).hexdigest() == f["sha256"], f["path"]
    total = sum(st.metadata(f"model_{n}_minio")["bytes_uploaded"] for n in MODELS)
    print(
        f"first models materialization: {took:.1f}s for "
        f"the CLI run, {total} bytes uploaded to MinIO"
    )


def test_unchanged_rerun_uploads_zero_bytes_and_creates_no_version(
    synced: tuple[Any, dict, Any, float],
) -> None:
    st = synced[0]
    before = {m.registered_name: len(_versions(m.registered_name)) for m in CATALOG.models.values()}
    start = time.monotonic()
    rows, res = st.run("materialize", "models")
    took = time.monotonic() - start
    assert res.returncode == 0 and all(r["passed"] for r in rows.values()), res.stdout[-3000:]
    for name, m in CATALOG.models.items():
        md = st.metadata(f"model_{name}_minio")
        assert (
            md["bytes_uploaded"] == 0
            and md["bytes_transferred"] == 0
            and md["objects_uploaded"] == 0
        ), md
        assert md["bytes_skipped"] == md["bytes"] > 0
        reg = st.metadata(f"model_{name}_mlflow")
        assert reg["created"] is False, reg
        assert len(_versions(m.registered_name)) == before[m.registered_name]
    print(f"unchanged re-run: {took:.1f}s, 0 bytes, no new MLflow version")


def test_deleted_object_is_named_and_repaired_by_uploading_only_it(
    synced: tuple[Any, dict, Any, float],
) -> None:
    st = synced[0]
    name, m = "gpt2", CATALOG.models["gpt2"]
    prefix = staging_plan.model_prefix(name, m)
    s3 = sandbox_s3()
    victim = "tokenizer.json"
    size = s3.head_object(Bucket=m.bucket, Key=prefix + victim)["ContentLength"]
    s3.delete_object(Bucket=m.bucket, Key=prefix + victim)

    rows, res = st.run("validate", f"model_{name}_minio")
    row = rows[(f"model_{name}_minio", f"model_{name}_minio_matches_manifest")]
    assert res.returncode == 1 and not row["passed"], row
    assert row["measured"] == 1 and f"missing: {victim}" in row["detail"], row

    rows, res = st.run("materialize", f"model_{name}_minio")
    assert (
        res.returncode == 0
        and rows[(f"model_{name}_minio", f"model_{name}_minio_matches_manifest")]["passed"]
    ), res.stdout
    md = st.metadata(f"model_{name}_minio")
    assert md["objects_uploaded"] == 1 and md["bytes_uploaded"] == size, md
    assert s3.head_object(Bucket=m.bucket, Key=prefix + victim)["Metadata"]["sha256"]


def test_changed_object_is_named(synced: tuple[Any, dict, Any, float]) -> None:
    """Same key, other bytes (no sha256 metadata): named as changed, repaired by a re-run."""
    st = synced[0]
    name, m = "smollm_135m", CATALOG.models["smollm_135m"]
    key = staging_plan.model_prefix(name, m) + "config.json"
    sandbox_s3().put_object(Bucket=m.bucket, Key=key, Body=b"{}")
    rows, res = st.run("validate", f"model_{name}_minio")
    row = rows[(f"model_{name}_minio", f"model_{name}_minio_matches_manifest")]
    assert res.returncode == 1 and "changed: config.json" in row["detail"], row
    rows, res = st.run("materialize", f"model_{name}_minio", f"model_{name}_mlflow")
    assert res.returncode == 0, res.stdout[-2000:]
    assert st.metadata(f"model_{name}_minio")["objects_uploaded"] == 1
    assert st.metadata(f"model_{name}_mlflow")["created"] is False


def test_s3_secret_appears_in_no_report_log_or_event(synced: tuple[Any, dict, Any, float]) -> None:
    st = synced[0]
    secret = os.environ[MINIO.secret_key.env]
    assert len(secret) >= 8
    for text in st.outputs:
        assert secret not in text
    hits = [p for p in st.home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert not hits, hits
    # the keys' files are gone from the HPC side after every run
    runner = _login()
    try:
        res = runner.run(
            [
                "find",
                f"{CATALOG.hpc.beegfs.directory('jobs')}/pipes",
                "-maxdepth",
                "1",
                "-name",
                ".private-*",
            ]
        )
        assert res.ok and res.stdout.strip() == "", res.stdout
    finally:
        runner.close()


def test_private_file_is_0600_in_a_0700_dir_and_removed() -> None:
    from mlops_assets.resources.hpc_pipes import private_file

    runner = _login()
    try:
        with private_file(
            runner, f"{CATALOG.hpc.beegfs.directory('jobs')}/pipes", "k.json", b"not-a-secret"
        ) as path:
            res = runner.run(["stat", "-c", "%a %U", path, path.rsplit("/", 1)[0]])
            assert res.stdout.split("\n")[:2] == [
                f"600 {CATALOG.hpc.access.login.user}",
                f"700 {CATALOG.hpc.access.login.user}",
            ], res.stdout
            assert runner.run(["cat", path]).stdout == "not-a-secret"
        assert not runner.run(["test", "-e", path.rsplit("/", 1)[0]]).ok
    finally:
        runner.close()


def test_payload_multipart_keeps_sha256_and_skips_per_file(sandbox: Path, tmp_path: Path) -> None:
    """sync_s3.sync in-process against the sandbox S3 with a 5 MiB multipart threshold: a
    12 MiB file goes up in parts, keeps its sha256 metadata, the keys' file is deleted on read,
    a second sync uploads nothing, and a changed file alone goes up again."""
    from mlops_assets.core.manifest import build_manifest, write_manifest
    from mlops_assets.payloads import sync_s3

    root = tmp_path / "snap"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(12 * 1024 * 1024))
    (root / "sub" / "small.txt").write_text("hello")
    mpath = tmp_path / "manifest.json"
    write_manifest(mpath, build_manifest(root))
    prefix = f"_test/sync-{os.getpid()}-{int(time.time())}/"
    s3 = sandbox_s3()

    def run() -> dict[str, Any]:
        creds = tmp_path / "creds.json"
        creds.write_text(
            json.dumps(
                {
                    "access_key_id": os.environ[MINIO.access_key.env],
                    "secret_access_key": os.environ[MINIO.secret_key.env],
                }
            )
        )
        out = sync_s3.sync(
            {
                "root": str(root),
                "manifest_path": str(mpath),
                "bucket": "models",
                "prefix": prefix,
                "endpoint_url": MINIO.url,
                "region": MINIO.region,
                "credentials_file": str(creds),
                "multipart_threshold_mb": 5,
                "multipart_chunk_mb": 5,
                "workers": 2,
            },
            lambda _msg: None,
        )
        assert not creds.exists()
        return out

    try:
        first = run()
        assert first["bytes_uploaded"] == 12 * 1024 * 1024 + 5 and first["objects_uploaded"] == 2, (
            first
        )
        head = s3.head_object(Bucket="models", Key=prefix + "big.bin")
        assert head["ETag"].strip('"').endswith("-3"), head["ETag"]  # three 5 MiB parts
        assert (
            head["Metadata"]["sha256"]
            == hashlib.sha256((root / "big.bin").read_bytes()).hexdigest()
        )
        assert run()["bytes_uploaded"] == 0
        (root / "sub" / "small.txt").write_text("world")
        write_manifest(mpath, build_manifest(root))
        third = run()
        assert third["objects_uploaded"] == 1 and third["bytes_uploaded"] == 5, third
        got = s3.head_object(Bucket="models", Key=prefix + "_manifest.json")["Metadata"]
        assert got["manifest-digest"] == third["manifest_digest"]
    finally:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="models", Prefix=prefix):
            for obj in page.get("Contents", []) or []:
                s3.delete_object(Bucket="models", Key=obj["Key"])


def test_keys_are_on_no_command_line_nor_in_any_environment(
    sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command the orchestrator sends to the login node (what `ps` shows there to every
    user), with the Pipes bootstrap decoded, during a real sync: no key in any of them."""
    from dagster_pipes import decode_env_var

    from mlops_assets import headless
    from mlops_assets.core.transport.hostexec import command_line
    from mlops_assets.definitions import defs

    seen: list[str] = []
    original = SshRunner.run

    def recording(self: SshRunner, argv: Any, **kw: Any) -> Any:
        env = kw.get("env") or {}
        seen.append(command_line(argv, env))
        seen.extend(
            json.dumps(decode_env_var(v)) for k, v in env.items() if k.startswith("DAGSTER_PIPES_")
        )
        return original(self, argv, **kw)

    monkeypatch.setattr(SshRunner, "run", recording)
    m = CATALOG.models["gpt2"]
    sandbox_s3().delete_object(
        Bucket=m.bucket, Key=staging_plan.model_prefix("gpt2", m) + "vocab.json"
    )  # so bytes move
    d = defs()
    with dg.DagsterInstance.ephemeral() as inst:
        rows, _ = headless.execute(
            d, headless.select(d, ["model_gpt2_minio"]), materialize=True, inst=inst
        )
    assert all(r.passed for r in rows), [(r.check, r.detail) for r in rows]
    assert any("sync_s3.py" in line for line in seen) and any(
        "credentials_file" in line for line in seen
    )
    for name in (MINIO.secret_key.env, MINIO.access_key.env):
        assert not [line for line in seen if os.environ[name] in line], name
