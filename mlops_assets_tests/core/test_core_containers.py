"""core/parse/apptainer.py and core/probes/containers.py on recorded real outputs:
Apptainer 1.4.5 in the sandbox (fixtures/apptainer/*_1.4.5.*) and `apptainer exec --nv` on a
real H200 (fixtures/apptainer/nv_probe_h200_*.txt, from h200_device_session.txt)."""

from __future__ import annotations

import copy
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_assets.catalog.loader import DEFAULT_CATALOG, CatalogError, load_catalog
from mlops_assets.core.parse import apptainer as cli
from mlops_assets.core.probes.containers import packages_outcome, parse_nv_probe, plan

FIX = Path(__file__).parent / "fixtures" / "apptainer"
HOSTILE = ["x; rm -rf /", "$(id)", "`id`", "a b", "new\nline", "'quoted'", "--force"]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("apptainer version 1.4.5\n", "1.4.5"),
        ("apptainer version 1.3.4-1.el9", "1.3.4-1.el9"),
        ("singularity-ce version 4.1.0-jammy", "4.1.0-jammy"),
        ("apptainer version 1.1.0-rc.3", "1.1.0-rc.3"),
    ],
)
def test_parse_version(text: str, version: str) -> None:
    assert cli.parse_version(text) == version


def test_parse_version_rejects_other_output() -> None:
    with pytest.raises(ValueError, match="apptainer --version"):
        cli.parse_version("bash: apptainer: command not found")


def test_labels_from_recorded_inspect_json() -> None:
    labels = cli.parse_labels((FIX / "inspect_json_oumi_standin_1.4.5.json").read_text())
    assert labels["org.label-schema.usage.apptainer.version"] == "1.4.5"
    assert labels["org.label-schema.usage.singularity.deffile.bootstrap"] == "localimage"
    assert labels["org.mlops-assets.image"] == "oumi-standin"


def test_labels_null_and_garbage() -> None:
    assert cli.parse_labels('{"data": {"attributes": {"labels": null}}, "type": "container"}') == {}
    with pytest.raises(ValueError, match="no JSON"):
        cli.parse_labels((FIX / "inspect_truncated_sif_1.4.5.txt").read_text())


@pytest.mark.parametrize(
    ("fixture", "message", "hint"),
    [
        ("pull_unreachable_registry_1.4.5.txt", "connection refused", "registry is unreachable"),
        (
            "inspect_truncated_sif_1.4.5.txt",
            "image format not recognized",
            "previous image is untouched",
        ),
        (
            "build_fakeroot_no_subuid_1.4.5.txt",
            "no mapping entry found in /etc/subuid",
            "/etc/subuid",
        ),
    ],
)
def test_fatal_lines_and_hints(fixture: str, message: str, hint: str) -> None:
    text = "INFO:    Converting SIF file to temporary sandbox...\n" + (FIX / fixture).read_text()
    got = cli.fatal_message(text)
    assert message in got and not got.startswith("FATAL")
    assert hint in cli.hint_for_failure(got)


def test_fatal_message_strips_colour_and_falls_back_to_last_line() -> None:
    assert cli.fatal_message("\x1b[91mFATAL:   disk quota exceeded\n") == "disk quota exceeded"
    assert cli.fatal_message("something\nlast words\n") == "last words"
    assert "free space" in cli.hint_for_failure("write /tmp/x: no space left on device")


def test_versions_output_ignores_apptainer_chatter() -> None:
    out = (
        "INFO:    Converting SIF file...\ntorch 2.4.0a0+3bcc3cddb5\noumi missing\ntorch.cuda "
        "12.5\nWARNING: x y\n"
    )
    assert cli.parse_versions(out) == {
        "torch": "2.4.0a0+3bcc3cddb5",
        "oumi": "missing",
        "torch.cuda": "12.5",
    }


def test_packages_outcome_names_what_is_missing_or_old() -> None:
    found = cli.parse_versions(
        "torch 2.4.0a0+3bcc3cddb5\ntransformers 3.9\noumi missing\ntorch.cuda 12.5\n"
    )
    out = packages_outcome(found, {"torch": "2.0", "transformers": "4.0", "oumi": "0.1"})
    assert (
        not out.passed
        and "transformers 3.9 < 4.0" in out.detail
        and "oumi missing < 0.1" in out.detail
    )
    assert out.extra["torch_cuda"] == "12.5"
    assert packages_outcome(found, {"torch": "2.0"}).passed


@pytest.mark.parametrize(
    ("found", "minimum", "ok"),
    [
        ("2.4.0a0+f70bd71", "2.0", True),
        ("0.15.2", "0.15", True),
        ("1.13.1", "2.0", False),
        ("missing", "0.1", False),
    ],
)
def test_release_at_least(found: str, minimum: str, ok: bool) -> None:
    assert cli.release_at_least(found, minimum) is ok


def test_nv_probe_on_a_real_h200_with_the_driver_bound() -> None:
    outside, inside, _ = parse_nv_probe((FIX / "nv_probe_h200_bound.txt").read_text())
    assert (outside, inside) == (1, 1)


def test_nv_probe_on_a_real_h200_where_nv_binds_a_wrapper_only() -> None:
    """That host's /usr/bin/nvidia-smi is a script into /usr/local/nvidia, which --nv does not
    bind: inside sees no GPU although the device files are there."""
    outside, inside, words = parse_nv_probe(
        (FIX / "nv_probe_h200_wrapper_not_bound.txt").read_text()
    )
    assert (outside, inside) == (1, 0)
    assert "/usr/local/nvidia/bin/nvidia-smi: not found" in words


def test_nv_probe_exit_code_is_not_trusted() -> None:
    """--nv without a driver exits 0: the count, not the status, decides."""
    text = "== outside\nNVIDIA-SMI has failed\n== inside\nNo devices were found\n== exit 0\n"
    assert parse_nv_probe(text)[:2] == (0, 0)


@pytest.mark.parametrize("value", HOSTILE)
def test_commands_keep_hostile_values_as_single_arguments(value: str) -> None:
    pull = cli.image_commands("pull", f"docker://reg/{value}", f"/c/{value}.tmp", packages=[value])
    assert pull.fetch == [
        "apptainer",
        "pull",
        "--force",
        f"/c/{value}.tmp",
        f"docker://reg/{value}",
    ]
    assert pull.versions[-1] == value and pull.inspect == [
        "apptainer",
        "inspect",
        "--json",
        f"/c/{value}.tmp",
    ]
    assert shlex.split(cli.shell_line(pull.fetch)) == pull.fetch


def test_build_command_and_fakeroot_switch() -> None:
    cmd = cli.image_commands(
        "build", "oumi.def", "/c/.oumi.sif.tmp-1", definition_path="/c/.oumi.sif.def-1"
    )
    assert cmd.fetch == [
        "apptainer",
        "build",
        "--force",
        "--fakeroot",
        "/c/.oumi.sif.tmp-1",
        "/c/.oumi.sif.def-1",
    ]
    no_fr = cli.image_commands("build", "oumi.def", "/t", definition_path="/d", fakeroot=False)
    assert "--fakeroot" not in no_fr.fetch
    with pytest.raises(ValueError, match="definition file"):
        cli.image_commands("build", "oumi.def", "/t")
    with pytest.raises(ValueError, match="pull or build"):
        cli.image_commands("copy", "x", "/t")


def test_render_definition() -> None:
    text = (
        "Bootstrap: localimage\nFrom: {{ base_image }}\n%post\n    pip install "
        "oumi=={{oumi_version}}\n"
    )
    out = cli.render_definition(text, {"base_image": "/c/pytorch.sif", "oumi_version": "0.9"})
    assert "From: /c/pytorch.sif" in out and "oumi==0.9" in out and "{{" not in out
    with pytest.raises(ValueError, match="oumi_version"):
        cli.render_definition(text, {"base_image": "/c/p.sif"})
    with pytest.raises(ValueError, match="newline"):
        cli.render_definition(
            text, {"base_image": "/c/p.sif\n%post\nrm -rf /", "oumi_version": "0.9"}
        )


def test_shipped_definitions_render_from_the_catalog() -> None:
    for profile in ("production", "sandbox"):
        catalog = load_catalog(DEFAULT_CATALOG, profile, env={"MLOPS_SANDBOX_HOME": "/x"}).catalog
        extras = plan(catalog, "oumi")
        assert extras["kind"] == "build" and "{{" not in extras["definition"]
        assert f"From: {extras['base_image']}" in extras["definition"] and extras[
            "base_image"
        ].endswith("pytorch_24.07-py3.sif")
        assert plan(catalog, "pytorch_24_07")["kind"] == "pull"


def test_source_digest_moves_with_every_input() -> None:
    base = cli.source_digest("build", "oumi.def", "def text", "aa")
    assert (
        len(
            {
                base,
                cli.source_digest("build", "oumi.def", "def text2", "aa"),
                cli.source_digest("build", "oumi.def", "def text", "bb"),
                cli.source_digest("pull", "oumi.def", "def text", "aa"),
            }
        )
        == 4
    )
    assert cli.source_digest("build", "oumi.def", "def text", "aa") == base


def test_sidecar_path() -> None:
    assert (
        cli.sidecar_path("/mnt/beegfs/containers/oumi_latest.sif")
        == "/mnt/beegfs/containers/.oumi_latest.sif.mlops.json"
    )


BASE = yaml.safe_load(DEFAULT_CATALOG.read_text())


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda c: c["containers"]["pytorch_24_07"]["source"].update(pull="docker://x;rm -rf /"),
            "containers.pytorch_24_07.source",
        ),
        (
            lambda c: c["containers"]["pytorch_24_07"]["source"].update(pull="docker://$(id)"),
            "containers.pytorch_24_07.source",
        ),
        (
            lambda c: c["containers"]["oumi"]["source"].update(build="../../etc/passwd.def"),
            "containers.oumi.source",
        ),
        (lambda c: c["containers"]["oumi"].update(file="../oumi.sif"), "containers.oumi.file"),
        (
            lambda c: c["containers"]["oumi"].update(expect_python_packages=["torch; rm -rf /"]),
            "containers.oumi.expect_python_packages",
        ),
        (
            lambda c: c["containers"]["oumi"]["source"].update(bootstrap_from="nope"),
            "bootstrap_from 'nope'",
        ),
        (lambda c: c["containers"]["oumi"].pop("build_partition"), "needs build_partition"),
        (
            lambda c: c["containers"]["oumi"].update(build_partition="cpu"),
            "containers.oumi.build_partition 'cpu'",
        ),
    ],
)
def test_catalog_rejects_bad_container_entries(
    tmp_path: Path, edit: Callable[[dict[str, Any]], object], named: str
) -> None:
    data = copy.deepcopy(BASE)
    edit(data)
    path = tmp_path / "platform.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(CatalogError) as err:
        load_catalog(path, "production", env={})
    assert named in str(err.value)


def test_catalog_accepts_local_oci_sources_and_requirements(tmp_path: Path) -> None:
    catalog = load_catalog(DEFAULT_CATALOG, "sandbox", env={"MLOPS_SANDBOX_HOME": "/x"}).catalog
    pull = catalog.containers["pytorch_24_07"].source.pull  # type: ignore[union-attr]
    assert pull.startswith("oci:/")
    assert catalog.containers["oumi"].expected_packages == {"dagster-pipes": "1.9"}
    prod = load_catalog(DEFAULT_CATALOG, "production", env={}).catalog
    assert prod.containers["oumi"].expected_packages == {
        "torch": "2.0",
        "oumi": "0.1",
        "mlflow": "2.0",
    }
    assert prod.hpc.apptainer.tmpdir == "/tmp"
