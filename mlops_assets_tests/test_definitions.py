"""The code location loads, fast and light, with the groups the UI and CLI select by."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mlops_assets.definitions import defs, domain_modules
from mlops_assets.defs import AUTOMATION, DOMAINS, GROUPS, module


def test_definitions_validate_loadable() -> None:
    dg.Definitions.validate_loadable(defs())


def test_every_asset_is_in_a_known_group_and_every_group_is_used() -> None:
    graph = defs().resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == set(GROUPS)


def test_lineage_runs_from_infrastructure_to_smoke() -> None:
    graph = defs().resolve_asset_graph()

    def parents(key: str) -> set[str]:
        return {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys}

    assert "beegfs" in parents("beegfs_layout")
    assert "beegfs_layout" in parents("dataset_mnist")
    assert {"model_gpt2", "bucket_models"} <= parents("model_gpt2_minio")
    assert "model_gpt2_minio" in parents("model_gpt2_mlflow")
    assert "dataset_mnist" in parents("smoke_mnist_training")


def test_blocking_checks_and_freshness() -> None:
    d = defs()
    graph = d.resolve_asset_graph()
    assert graph.get(dg.AssetKey("dataset_mnist")).freshness_policy is not None
    checks = {ck.name for ck in graph.asset_check_keys}
    assert {
        "beegfs_mounted",
        "slurm_gres_matches_catalog",
        "k8s_version_at_least_minimum",
    } <= checks


def test_heavy_libraries_stay_unimported_and_load_warns_nothing() -> None:
    """-W error: a deprecation or beta warning at load fails here instead of in every log."""
    code = (
        "import sys; from mlops_assets.definitions import defs; "
        "defs().resolve_asset_graph();heavy=[m for m in "
        "('torch','mlflow','kubernetes','boto3','fabric','paramiko','huggingface_hub') if m in "
        "sys.modules];print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "", f"imported at load: {out.stdout}"


def test_outcome_severity_reaches_the_dagster_result() -> None:
    """A check with warn and error levels says which one it crossed (issue 15, class 10)."""
    from mlops_assets.checking import to_check_result
    from mlops_assets.core.checks import CheckSpec, Outcome, Severity, run_check

    spec = CheckSpec(
        "slurm",
        "slurm_unavailable_nodes_within_limit",
        Severity.ERROR,
        "why",
        lambda ctx: Outcome(False, 0.08, 0.05, "share", severity=Severity.WARN),
    )
    result = to_check_result(run_check(spec, None))
    assert result.severity == dg.AssetCheckSeverity.WARN and not result.passed
    assert result.metadata["severity"].value == "WARN"
    spec_error = CheckSpec(
        "slurm",
        "c",
        Severity.WARN,
        "why",
        lambda ctx: Outcome(False, 0.5, 0.1, "share", severity=Severity.ERROR),
    )
    assert to_check_result(run_check(spec_error, None)).severity == dg.AssetCheckSeverity.ERROR


def test_one_loader_configuration() -> None:
    """[tool.dg.project] is the configuration; workspace.yaml (for `dagster dev -w`) and the
    package agree with it, and every folder under defs/ is a loaded domain."""
    root = Path(__file__).parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["tool"]
    assert "dagster" not in project, "[tool.dagster] would shadow [tool.dg] for `dagster dev`"
    dg_project = project["dg"]["project"]
    entry = yaml.safe_load((root / "workspace.yaml").read_text())["load_from"]
    assert entry == [
        {
            "python_module": {
                "module_name": dg_project["code_location_target_module"],
                "location_name": dg_project["code_location_name"],
            }
        }
    ]
    assert not list((root / "mlops_assets").rglob("dg.toml"))
    folders = sorted(
        p.parent.name for p in (root / "mlops_assets" / "defs").glob("*/definitions.py")
    )
    assert sorted([*(m.split(".")[2] for m in domain_modules()), AUTOMATION]) == folders


def test_folder_is_group() -> None:
    """Every asset a domain folder defines is in the group of that folder's name, and a
    folder without assets is not offered as a group."""
    import importlib

    for name in DOMAINS:
        groups: set[str | None] = set()
        for a in importlib.import_module(module(name)).defs.assets or []:
            if isinstance(a, dg.AssetsDefinition):
                groups |= set(a.group_names_by_key.values())
            else:
                assert isinstance(a, dg.AssetSpec), type(a)
                groups.add(a.group_name)
        assert groups == ({name} if name in GROUPS else set()), (
            f"defs/{name}/ declares groups {groups}"
        )


def test_cli_help_names_every_group(capsys: pytest.CaptureFixture[str]) -> None:
    from mlops_assets.cli import main

    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    assert f"groups ({' '.join(GROUPS)})" in " ".join(capsys.readouterr().out.split())


def test_dg_check_defs_from_the_repository_root() -> None:
    """`dg` (dagster-dg-cli, dev extra) finds the project from the root and loads it."""
    root = Path(__file__).parents[1]
    dg_bin = Path(sys.executable).with_name("dg")
    assert dg_bin.exists(), "dagster-dg-cli is missing: bash deploy/setup.sh installs the dev extra"
    out = subprocess.run(
        [str(dg_bin), "check", "defs"], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert (
        out.returncode == 0 and "All definitions loaded successfully" in out.stdout + out.stderr
    ), out.stderr[-3000:]
