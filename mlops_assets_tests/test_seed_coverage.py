"""Every prerequisite of the seed is an asset or a check, and every catalog entry became one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.definitions import defs

COVERAGE = (
    Path(__file__).resolve().parent.parent / "mlops_assets" / "catalog" / "seed_coverage.yaml"
)
SEED_CANDIDATES = [
    Path(__file__).resolve().parent.parent.parent / "shared" / "seed" / "prerequisites.md",
    Path(__file__).resolve().parent / "fixtures" / "prerequisites.md",
]


def seed_bullets(text: str) -> list[str]:
    bullets = []
    for line in text.split("## Estimated Resource Usage")[0].splitlines():
        m = re.match(r"^\s*- (.+?)\s*$", line)
        if m:
            bullets.append(m.group(1))
    return bullets


@pytest.fixture(scope="module")
def names() -> set[str]:
    d = defs()
    graph = d.resolve_asset_graph()
    out = {k.to_user_string() for k in graph.get_all_asset_keys()}
    out |= {ck.name for ck in graph.asset_check_keys}
    return out


def test_every_seed_bullet_is_mapped_to_existing_assets_or_checks(names: set[str]) -> None:
    seed = next(p for p in SEED_CANDIDATES if p.is_file())
    bullets = seed_bullets(seed.read_text())
    coverage = yaml.safe_load(COVERAGE.read_text())
    assert len(bullets) > 80, "the seed parser found too few requirement bullets"
    unmapped = [b for b in bullets if b not in coverage]
    assert not unmapped, f"seed requirements with no asset or check: {unmapped}"
    dangling = {
        b: [n for n in v if n not in names]
        for b, v in coverage.items()
        if any(n not in names for n in v)
    }
    assert not dangling, f"coverage names that are not in the definitions: {dangling}"
    stale = [b for b in coverage if b not in bullets]
    assert not stale, f"coverage entries for text the seed no longer has: {stale}"


@pytest.mark.parametrize("profile", ["sandbox", "production"])
def test_every_catalog_entry_became_an_asset(profile: str, names: set[str]) -> None:
    c = load_catalog(profile=profile).catalog
    expected = (
        {f"dataset_{n}" for n in c.datasets}
        | {f"model_{n}" for n in c.models}
        | {f"model_{n}_minio" for n in c.models}
        | {f"model_{n}_mlflow" for n in c.models}
        | {f"container_{n}" for n in c.containers}
        | {f"bucket_{b.name}" for b in c.cloud.buckets}
        | {
            "slurm",
            "gpu_nodes",
            "beegfs",
            "apptainer",
            "beegfs_layout",
            "kubernetes",
            "gpu_operator",
            "kserve",
            "mlflow",
            "minio",
            "prometheus",
            "grafana",
            "hpc_to_cloud",
            "cloud_to_hpc",
            "internet_reachability",
        }
    )
    assert expected <= names, sorted(expected - names)


def test_seed_thresholds_are_in_the_catalog() -> None:
    c = load_catalog(profile="production").catalog
    assert c.hpc.beegfs.min_free_gb == 500
    assert c.hpc.apptainer.min_version == "1.1.0"
    assert c.hpc.gpus.min_count == 2
    assert c.network.min_bandwidth_mbps == 10 and c.network.recommended_bandwidth_mbps == 100
    assert (
        c.cloud.kubernetes.min_version == "1.27" and c.cloud.components.kserve.min_version == "0.11"
    )
    assert c.cloud.kubernetes.namespaces == ["default", "production", "mlops", "monitoring"]
    assert (
        c.network.hpc_controller == "192.168.100.10"
        and c.network.cloud_control_plane == "192.168.200.10"
    )
    assert c.hpc.beegfs.root == "/mnt/beegfs"
    assert sorted(c.hpc.beegfs.directories.model_dump()) == sorted(
        ["datasets", "models", "scripts", "configs", "containers", "jobs", "huggingface"]
    )
    assert {m.repo for m in c.models.values()} == {
        "HuggingFaceTB/SmolLM-135M",
        "openai-community/gpt2",
    }
    assert {ct.file for ct in c.containers.values()} == {"pytorch_24.07-py3.sif", "oumi_latest.sif"}
