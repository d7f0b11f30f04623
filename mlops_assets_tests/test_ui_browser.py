"""The Dagster UI in a real browser (Debian's headless Chromium, driven by Playwright) against
`dagster dev` serving this project on the sandbox. The test starts and stops the webserver
and daemon itself and checks that no process of theirs is left. Screenshots go to
docs/screenshots/ and the README shows them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.defs import GROUPS as DOMAIN_GROUPS
from mlops_assets_tests.conftest import dagster_dev, graphql

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GROUPS = list(DOMAIN_GROUPS)  # the registry, mlops_assets/defs/__init__.py


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "mlops_assets.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def ui(sandbox: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    # History for the UI to show: a few validate runs give the check plots several points.
    for _ in range(3):
        _cli(home, "validate", "--select", "slurm", "beegfs", "apptainer", "--format", "json")
    # The layout upstream of the datasets is materialized, as it would be on a running platform.
    _cli(home, "materialize", "--select", "beegfs_layout", "--format", "json")
    # quiet: no schedule or sensor may launch runs under the browser's feet
    with dagster_dev(home, {"MLOPS_AUTOMATION_RUNNING": "false"}) as url:
        yield url, home


@pytest.fixture(scope="module")
def page(ui: tuple[str, Path]) -> Iterator[Any]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1600, "height": 1000})
        pg.goto(f"{ui[0]}/asset-groups")
        pg.get_by_text("Global asset lineage").first.wait_for(timeout=60000)
        skip = pg.get_by_role("button", name="Skip")
        try:  # the community sign-up dialog, shown once per fresh instance
            skip.wait_for(timeout=10000)
            skip.click()
        except PlaywrightTimeout:
            pass
        yield pg
        browser.close()


def test_asset_graph_shows_the_groups_and_lineage(ui: tuple[str, Path], page: Any) -> None:
    url, _ = ui
    page.goto(f"{url}/asset-groups")
    for group in GROUPS:
        page.get_by_text(group, exact=True).first.wait_for(timeout=30000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "asset-graph.png"))
    page.goto(f"{url}/assets/beegfs_layout?view=lineage")
    page.get_by_text("dataset_mnist").first.wait_for(timeout=30000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "lineage-beegfs-layout.png"))
    nodes = graphql(url, "{ assetNodes { assetKey { path } groupName dependencyKeys { path } } }")[
        "assetNodes"
    ]
    deps = {n["assetKey"]["path"][0]: {d["path"][0] for d in n["dependencyKeys"]} for n in nodes}
    assert {n["groupName"] for n in nodes} == set(GROUPS)
    assert "beegfs" in deps["beegfs_layout"]  # infrastructure -> layout
    assert "beegfs_layout" in deps["dataset_mnist"]  # layout -> staged data
    assert "dataset_mnist" in deps["smoke_mnist_training"]  # staged data -> smoke result
    assert "model_gpt2_minio" in deps["model_gpt2_mlflow"]


def test_the_served_model_lineage_runs_from_staged_data_and_container(
    ui: tuple[str, Path], page: Any
) -> None:
    """Issue 19's one lineage: staged dataset and container -> trained model -> registered
    version -> copy in the models bucket -> served endpoint, as the UI draws it."""
    url, _ = ui
    page.goto(f"{url}/assets/model_mnist_served?view=lineage&lineageScope=upstream&lineageDepth=4")
    for key in ("model_mnist_minio", "model_mnist_served", "dataset_mnist"):  # shown whole
        page.get_by_text(key).first.wait_for(timeout=30000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "lineage-served-model.png"))
    nodes = graphql(url, "{ assetNodes { assetKey { path } dependencyKeys { path } } }")[
        "assetNodes"
    ]
    deps = {n["assetKey"]["path"][0]: {d["path"][0] for d in n["dependencyKeys"]} for n in nodes}
    assert {"model_mnist_minio", "dataset_mnist_minio"} <= deps["model_mnist_served"]
    assert "model_mnist_registered" in deps["model_mnist_minio"]
    assert "smoke_mnist_training" in deps["model_mnist_registered"]
    assert "dataset_mnist" in deps["smoke_mnist_training"]
    assert any(d.startswith("container_") for d in deps["smoke_mnist_training"]), deps[
        "smoke_mnist_training"
    ]


def test_materialize_from_the_ui_runs_and_its_checks_show(ui: tuple[str, Path], page: Any) -> None:
    url, _ = ui
    asset = "dataset_mnist"
    page.goto(f"{url}/assets/{asset}")
    page.get_by_role("button", name="Materialize").first.click(timeout=30000)
    deadline = time.monotonic() + 180
    status = None
    while time.monotonic() < deadline:
        runs = graphql(
            url,
            "{ runsOrError(limit: 5) { ... on Runs { results { "
            "runId status assetSelection { path } } } } }",
        )
        mine = [
            r
            for r in runs["runsOrError"]["results"]
            if [asset] in [k["path"] for k in (r["assetSelection"] or [])]
        ]
        status = mine[0]["status"] if mine else None
        if status in {"SUCCESS", "FAILURE", "CANCELED"}:
            break
        time.sleep(2)
    assert status == "SUCCESS", f"UI-launched run ended {status}"
    page.goto(f"{url}/assets/{asset}?view=checks")
    page.get_by_title("dataset_mnist_manifest_verifies").first.click(timeout=30000)
    page.get_by_text("Metadata").first.wait_for(timeout=30000)
    page.get_by_text("Succeeded").first.wait_for(timeout=30000)
    page.screenshot(path=str(SHOTS / "check-passed.png"))


def test_a_failing_check_shows_failed_with_its_hint(ui: tuple[str, Path], page: Any) -> None:
    url, home = ui
    # every node with GPUs drained (names from sinfo: one node or the multi-node sandbox)
    listed = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N %G"], capture_output=True, text=True, check=True
    ).stdout
    gpu_nodes = sorted({ln.split()[0] for ln in listed.splitlines() if "gpu:" in ln})
    assert gpu_nodes, listed
    hosts = ",".join(gpu_nodes)
    subprocess.run(
        ["scontrol", "update", f"nodename={hosts}", "state=drain", "reason=ui-test: bad GPU"],
        check=True,
    )
    try:
        res = _cli(home, "validate", "--select", "gpu_nodes", "--format", "json")
        assert res.returncode == 1, res.stdout + res.stderr
    finally:
        subprocess.run(["scontrol", "update", f"nodename={hosts}", "state=resume"], check=False)
    page.goto(f"{url}/assets/gpu_nodes?view=checks")
    page.get_by_title("gpu_count_at_least_minimum").first.click(timeout=30000)
    page.get_by_text("Failed").first.wait_for(timeout=30000)
    page.get_by_text("resume drained GPU nodes").first.wait_for(timeout=30000)
    page.screenshot(path=str(SHOTS / "check-failed-with-hint.png"))


def test_check_history_plot(ui: tuple[str, Path], page: Any) -> None:
    url, _ = ui
    page.goto(f"{url}/assets/slurm?view=checks")
    page.get_by_title("slurm_controller_responds").first.click(timeout=30000)
    page.get_by_text("Plots").first.wait_for(timeout=30000)
    page.get_by_text("measured").first.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(SHOTS / "check-history-plot.png"), full_page=True)


def test_fleet_view_names_the_slowed_node_and_shows_the_dry_run_quarantine(
    ui: tuple[str, Path], page: Any
) -> None:
    """Issue 16: the fleet view as a user sees it. Real per-node smokes on the multi-node
    sandbox with one node slowed by a CPU quota, the baseline judged with the fleet rules, and
    one dry-run tick of the quarantine loop, written to the instance the UI serves (the tick's
    observations reported as the sensor reports them)."""
    import dagster as dg

    from mlops_assets.defs.fleet import definitions as fleet_defs
    from mlops_assets.defs.smoke.definitions import GPU_NODES_NAME
    from mlops_assets_tests import test_fleet_sandbox as fleet
    from mlops_assets_tests.sandbox_nodes import skip_or_fail

    url, home = ui
    nodes = fleet.gpu_nodes()
    if len(nodes) < 3:
        skip_or_fail(f"sinfo shows {len(nodes)} GPU node(s); the fleet view needs 3")
    slow = next(n for n in fleet.gpu_nodes(min_gpus=2) if n in nodes)
    cat = fleet.fleet_catalog(max_drained_fraction=0.5)
    assert cat.fleet.quarantine.dry_run
    with dg.DagsterInstance.from_config(str(home)) as inst:
        inst.add_dynamic_partitions(GPU_NODES_NAME, nodes)
        with fleet.slowed(fleet.slurmd_pid(slow)) as how:
            assert fleet.smoke(inst, slow), f"smoke on {slow} failed while slowed ({how})"
        for n in nodes:
            if n != slow:
                assert fleet.smoke(inst, n), f"smoke on {n} failed"
        peers = fleet.baseline(inst, cat)[fleet_defs.PEERS_CHECK]
        assert peers.metadata["nodes"].value == [slow], peers.metadata
        dry = fleet.tick(inst, cat, None)
        (action,) = [a for a in dry.actions if a.node == slow]
        assert action.dry_run and not action.executed, action
        for obs in dry.observations:
            inst.report_runless_asset_event(obs)

    page.goto(f"{url}/assets/{fleet_defs.ASSET}")
    page.get_by_placeholder("Filter metadata keys").first.fill("@")  # the per-node figures
    page.get_by_text(f"named@{slow}").first.wait_for(timeout=60000)
    page.get_by_text("Metadata").first.scroll_into_view_if_needed()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "fleet-view.png"), full_page=True)
    page.goto(f"{url}/assets/{fleet_defs.QUARANTINE_ASSET}?view=events")
    page.get_by_text(f"would drain {slow}").first.wait_for(timeout=60000)
    page.wait_for_timeout(1500)
    page.screenshot(path=str(SHOTS / "quarantine-dry-run.png"), full_page=True)
