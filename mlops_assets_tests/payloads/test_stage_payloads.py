"""The staging payloads on their own (run as the HPC side would, in a fresh Python): resume
of a killed download, nothing complete-looking while staging, md5 mismatch named, unsafe
archives refused, a broken mirror's weights caught against the hub's listing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.core import manifest, staging_plan

PAYLOADS = Path(__file__).resolve().parents[2] / "mlops_assets" / "payloads"
CATALOG = load_catalog(profile="sandbox").catalog
MIRROR = "http://127.0.0.1:8088"


def _stage(module: str, params: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    code = (
        f"import json, sys, {module} as m; print(json.dumps(m.stage(json.loads(sys.argv[1]), "
        "lambda s: print(s, file=sys.stderr))))"
    )
    env = {
        **os.environ,
        "HF_ENDPOINT": MIRROR,
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    env.pop("HF_HUB_OFFLINE", None)
    return subprocess.run(
        [sys.executable, "-c", code, json.dumps(params)],
        cwd=PAYLOADS,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _ok(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert res.returncode == 0, res.stderr[-2000:]
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


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


@pytest.mark.sandbox
def test_killed_download_is_resumed_and_never_looks_complete(sandbox: Path, tmp_path: Path) -> None:
    plan = staging_plan.torchvision_plan(CATALOG, CATALOG.datasets["mnist"])
    plan["target"] = str(tmp_path / "mnist")
    name = "train-images-idx3-ubyte.gz"
    with urllib.request.urlopen(plan["files"][0]["urls"][0] + name, timeout=10) as resp:
        whole = resp.read()
    # what a run killed half-way through this file leaves behind
    part = tmp_path / ".staging-mnist" / "MNIST" / "raw" / f"{name}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(whole[: len(whole) // 2])
    assert not (tmp_path / "mnist").exists()  # nothing at the target, so nothing looks staged

    out = _ok(_stage("stage_torchvision", plan))
    others = sum(
        len(urllib.request.urlopen(f["urls"][0] + f["name"], timeout=10).read())
        for f in plan["files"]
        if f["name"] != name
    )
    assert (
        out["bytes_transferred"] == others + len(whole) - len(whole) // 2
    )  # only the missing half came again
    assert not (tmp_path / ".staging-mnist").exists()
    assert manifest.verify_tree(
        tmp_path / "mnist", manifest.read_manifest(tmp_path / "mnist" / manifest.MANIFEST_NAME)
    ).ok  # type: ignore[arg-type]


@pytest.mark.sandbox
def test_md5_mismatch_is_named_and_the_previous_copy_stays(sandbox: Path, tmp_path: Path) -> None:
    plan = staging_plan.torchvision_plan(CATALOG, CATALOG.datasets["mnist"])
    plan["target"] = str(tmp_path / "mnist")
    _ok(_stage("stage_torchvision", plan))
    before = (tmp_path / "mnist" / manifest.MANIFEST_NAME).read_text()
    plan["files"][1]["md5"] = "0" * 32
    plan["plan_digest"] = "changed"
    res = _stage("stage_torchvision", plan)
    assert res.returncode != 0
    assert (
        f"no mirror served {plan['files'][1]['name']} intact" in res.stderr
        and "0" * 32 in res.stderr
    )
    assert (tmp_path / "mnist" / manifest.MANIFEST_NAME).read_text() == before


def test_archive_members_outside_the_target_are_refused(tmp_path: Path) -> None:
    sys.path.insert(0, str(PAYLOADS))
    try:
        import stage_torchvision
    finally:
        sys.path.remove(str(PAYLOADS))
    for evil in ("../escape", "/abs/path"):
        archive = tmp_path / "evil.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo(evil)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        with pytest.raises(stage_torchvision.StagingError, match="refusing"):
            stage_torchvision._untar(archive, tmp_path / "into")
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        info = tarfile.TarInfo("a")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(stage_torchvision.StagingError, match="links"):
        stage_torchvision._untar(link, tmp_path / "into")
    assert not (tmp_path / "escape").exists()


@pytest.mark.sandbox
def test_broken_mirror_weights_are_caught_against_the_hub_listing(
    sandbox: Path, tmp_path: Path
) -> None:
    m = CATALOG.models["gpt2"]
    plan = staging_plan.hub_plan(CATALOG, "model", m.repo, m.revision, m.allow_patterns)
    plan["cache_dir"] = str(tmp_path / "hub")
    try:
        _scenario("corrupt_weights")
        res = _stage("stage_hub", plan)
    finally:
        _scenario(None)
    assert res.returncode != 0
    assert "model.safetensors (size or hash differs from the source)" in res.stderr
    assert not (tmp_path / "hub" / "models--openai-community--gpt2" / "snapshots").exists()

    out = _ok(_stage("stage_hub", plan))  # the mirror is healthy again
    assert out["bytes_transferred"] == out["bytes"]
    again = _ok(_stage("stage_hub", plan))
    assert again["bytes_transferred"] == 0 and again["manifest_digest"] == out["manifest_digest"]


def _rot_keeping_mtime(path: Path) -> None:
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(path, "r+b") as fh:
        fh.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_stage_files_trusts_the_stamp_until_a_check_removes_it_or_it_ages(tmp_path: Path) -> None:
    """stage_files.py as the HPC side runs it: bit rot under an unchanged stat is left alone
    while the stamp stands, repaired once the verifying check (mlops_manifest.py verify) has
    removed the stamp, and repaired at once with rehash_after_s 0. Nothing but the manifest
    ever sits in the target."""
    source, target = tmp_path / ".training.upload", tmp_path / "training"
    source.mkdir()
    (source / "train.py").write_text("print('train')\n" * 200)
    (source / "run.sbatch").write_text("#!/bin/bash\nsrun python train.py\n")
    digest = manifest.build_manifest(source).digest
    params = {
        "trees": [{"source": str(source), "target": str(target), "digest": digest}],
        "rehash_after_s": 168 * 3600.0,
    }
    assert _ok(_stage("stage_files", params))["targets_changed"] == 1
    good = (target / "train.py").read_bytes()

    _rot_keeping_mtime(target / "train.py")
    assert _ok(_stage("stage_files", params))["targets_changed"] == 0, (
        "the stamp stands for a re-hash"
    )
    assert (target / "train.py").read_bytes() != good
    check = subprocess.run(
        [
            sys.executable,
            str(PAYLOADS.parent / "core" / "manifest.py"),
            "verify",
            str(target),
            str(target / manifest.MANIFEST_NAME),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    verdict = json.loads(check.stdout)
    assert (
        check.returncode == 1
        and verdict["changed"] == ["train.py"]
        and verdict["stamp"] == "removed"
    ), verdict
    res = _stage("stage_files", params)
    assert _ok(res)["targets_changed"] == 1 and (target / "train.py").read_bytes() == good
    assert "re-hashed" in res.stderr and "no stat stamp" in res.stderr, res.stderr

    _rot_keeping_mtime(target / "run.sbatch")
    res = _stage("stage_files", {**params, "rehash_after_s": 0})
    assert _ok(res)["targets_changed"] == 1 and "staging.rehash_after_hours 0" in res.stderr, (
        res.stderr
    )
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["train.py", "run.sbatch", manifest.MANIFEST_NAME]
    )
    assert (tmp_path / ".training.stat").is_file()


def test_unreadable_manifest_is_named_and_the_copy_staged_anew(tmp_path: Path) -> None:
    """stage_common.read_existing, as every staging payload reads the copy in place: a
    manifest that does not parse never stops a repair, and the log says why it was ignored."""
    source, target = tmp_path / ".configs.upload", tmp_path / "configs"
    source.mkdir()
    (source / "train.yaml").write_text("lr: 0.1\n")
    digest = manifest.build_manifest(source).digest
    params = {"trees": [{"source": str(source), "target": str(target), "digest": digest}]}
    assert _ok(_stage("stage_files", params))["targets_changed"] == 1
    (target / manifest.MANIFEST_NAME).write_text("{not json")
    res = _stage("stage_files", params)
    assert _ok(res)["targets_changed"] == 1
    assert "ignoring unreadable manifest" in res.stderr, res.stderr
    assert manifest.read_manifest(target / manifest.MANIFEST_NAME).digest == digest
