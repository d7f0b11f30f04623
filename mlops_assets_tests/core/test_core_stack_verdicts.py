"""Issue 15's wrong verdicts on the stack side, one test each (each failed before its fix):
class 1 (another product passes the Apptainer check), 4 (older inspect --json read as 0 labels),
6 (a target not scraped yet counted as down), 9 (KServe's not-Ready reason lost), 11 (an
Apptainer that did not start reported as a container without GPUs). Plus the one-parser rule:
probes/hpc.py reads df, findmnt and beegfs-ctl through core/parse/storage.py."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.parse import apptainer as cli
from mlops_assets.core.probes import cloud as cr
from mlops_assets.core.probes import hpc
from mlops_assets.core.probes.containers import nv_exposes_gpus
from mlops_assets.core.transport.hostexec import CommandResult
from mlops_assets.core.transport.http import HttpAnswer

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(profile="sandbox").catalog


# node probes read the partition first (core.probes.node_step): one idle GPU node in partition gpu
SINFO_IDLE_GPU_NODE = (0, "n1|gpu|idle|8|64000|gpu:1|none\n")


class Host:
    """Answers per program name (argv[0], or the program srun runs): (returncode, stdout)."""

    where = "login"

    def __init__(self, answers: Mapping[str, tuple[int, str]]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self.calls.append(list(argv))
        prog = next((a for a in argv if a in self.answers), argv[0])
        rc, out = self.answers.get(prog, SINFO_IDLE_GPU_NODE if prog == "sinfo" else (127, ""))
        return CommandResult(
            tuple(argv), rc, out, "" if rc != 127 else f"{prog}: command not found", 0.01
        )

    def close(self) -> None:
        pass


# ------------------------------------------------------------------- class 1


def test_legacy_singularity_does_not_pass_the_apptainer_check(catalog: Catalog) -> None:
    host = Host({"apptainer": (127, ""), "singularity": (0, "singularity version 3.7.0\n")})
    out = hpc.apptainer_version(host, catalog)
    assert not out.passed
    assert (
        out.detail == "Singularity 3.7.0 found (legacy Singularity), Apptainer >= "
        f"{catalog.hpc.apptainer.min_version} needed"
    )
    assert "`apptainer`" in out.hint


def test_singularity_ce_is_named_as_such(catalog: Catalog) -> None:
    host = Host(
        {"apptainer": (127, ""), "singularity": (0, "singularity-ce version 4.1.0-jammy\n")}
    )
    out = hpc.apptainer_version(host, catalog)
    assert not out.passed and out.detail.startswith(
        "SingularityCE 4.1.0-jammy found, Apptainer >= "
    )


def test_apptainer_passes_and_its_singularity_link_counts_as_apptainer(catalog: Catalog) -> None:
    assert hpc.apptainer_version(
        Host({"apptainer": (0, "apptainer version 1.4.5\n")}), catalog
    ).passed
    # Apptainer's `singularity` compatibility link prints `apptainer version`
    linked = hpc.apptainer_version(
        Host({"apptainer": (127, ""), "singularity": (0, "apptainer version 1.3.6-1.el9\n")}),
        catalog,
    )
    assert linked.passed and linked.measured == "1.3.6"


def test_compute_node_check_names_the_product_too(catalog: Catalog) -> None:
    out = hpc.apptainer_on_compute(Host({"srun": (0, "singularity-ce version 3.11.4\n")}), catalog)
    assert not out.passed and "SingularityCE 3.11.4 found" in out.detail


# ------------------------------------------------------------------- class 4


def test_inspect_json_without_data_wrapper_keeps_its_labels() -> None:
    old = {
        "attributes": {"labels": {"org.label-schema.schema-version": "1.0", "a": "b"}},
        "type": "container",
    }
    assert cli.parse_labels(json.dumps(old)) == {"org.label-schema.schema-version": "1.0", "a": "b"}


@pytest.mark.parametrize(
    "text", ['{"org.label-schema.schema-version": "1.0"}', "[]", '{"data": {"labels": {}}}', "null"]
)
def test_inspect_json_of_an_unknown_shape_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="unknown output shape"):
        cli.parse_labels(text)


# ------------------------------------------------------------------- class 6


class Answers:
    url = "http://prometheus"

    def __init__(self, body: Any) -> None:
        self.body = json.dumps(body).encode()

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> HttpAnswer:
        return HttpAnswer(self.url + path, 200, self.body, {}, 0.001)


def _targets(*health: str) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "activeTargets": [
                {"labels": {"job": f"j{i}", "instance": f"h{i}:9100"}, "health": h, "lastError": ""}
                for i, h in enumerate(health)
            ]
        },
    }


def test_target_not_scraped_yet_is_not_down(catalog: Catalog) -> None:
    http = Answers(_targets("up", "unknown"))
    up = cr.prometheus_targets_up(http, catalog)
    assert up.passed and up.measured == 1.0 and up.nodes == ()
    assert "1 not scraped yet" in up.detail and up.extra["targets_not_scraped"] == 1
    scraped = cr.prometheus_targets_scraped(http, catalog)
    assert (
        not scraped.passed
        and scraped.nodes == ("j1@h1:9100",)
        and "not scraped yet" in scraped.detail
    )


def test_all_targets_waiting_for_their_first_scrape(catalog: Catalog) -> None:
    up = cr.prometheus_targets_up(Answers(_targets("unknown", "unknown")), catalog)
    assert up.passed and up.measured == "not scraped yet"
    assert not cr.prometheus_targets_scraped(
        Answers(_targets("unknown", "unknown")), catalog
    ).passed
    down = cr.prometheus_targets_up(Answers(_targets("down", "unknown")), catalog)
    assert not down.passed and down.nodes == ("j0@h0:9100",)


def test_the_scraped_check_is_a_warning_in_the_definitions(catalog: Catalog) -> None:
    from mlops_assets.core.checks import Severity
    from mlops_assets.defs.cloud.definitions import specs

    spec = next(s for s in specs(catalog) if s.name == "prometheus_targets_scraped")
    assert spec.severity == Severity.WARN


# ------------------------------------------------------------------- class 9


class Kube:
    def __init__(self, isvcs: list[dict[str, Any]]) -> None:
        self.isvcs = isvcs

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        return {"items": self.isvcs if path.endswith("/default/inferenceservices") else []}


def test_kserve_not_ready_keeps_reason_message_and_failing_parts(catalog: Catalog) -> None:
    isvc = {
        "metadata": {"name": "llm"},
        "status": {
            "conditions": [
                {"type": "IngressReady", "status": "True"},
                {
                    "type": "PredictorReady",
                    "status": "False",
                    "reason": "RuntimeUnhealthy",
                    "message": "Waiting for runtime to become available",
                },
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "RuntimeUnhealthy",
                    "message": "Waiting for runtime to become available",
                },
            ]
        },
    }
    out = cr.kserve_isvcs_ready(Kube([isvc]), catalog)
    assert not out.passed and "NoReadyCondition" not in out.detail
    assert out.detail.startswith(
        "default/llm: RuntimeUnhealthy Waiting for runtime to become available"
    )
    assert (
        "PredictorReady=False RuntimeUnhealthy" in out.detail and "IngressReady" not in out.detail
    )


def test_kserve_without_any_ready_condition_says_so(catalog: Catalog) -> None:
    out = cr.kserve_isvcs_ready(Kube([{"metadata": {"name": "new"}, "status": {}}]), catalog)
    assert not out.passed and "no Ready condition" in out.detail


# ------------------------------------------------------------------ class 11


def test_apptainer_refusing_to_start_is_not_no_gpu() -> None:
    """Recorded on a real H200 as root in a restricted capability set (h200_device_session.txt)."""
    probe = (FIX / "apptainer" / "nv_probe_h200_root_capability.txt").read_text()
    out = nv_exposes_gpus(Host({"srun": (0, probe)}), "/c/x.sif", "gpu", 1)
    assert not out.passed and out.measured == "container did not start"
    assert "the container did not start: Requesting capability set 0x000001ffffffffff" in out.detail
    assert "no GPU" not in out.hint and "capabilit" in out.hint


def test_a_started_container_without_gpus_is_still_no_gpu() -> None:
    probe = (FIX / "apptainer" / "nv_probe_h200_wrapper_not_bound.txt").read_text()
    out = nv_exposes_gpus(Host({"srun": (0, probe)}), "/c/x.sif", "gpu", 1)
    assert not out.passed and out.measured == 0 and "no GPU inside the container" in out.hint
    missing = (
        '== outside\nGPU 0: X (UUID: GPU-1)\n== inside\nFATAL:   "nvidia-smi": executable file '
        "not found in $PATH\n== exit 255\n"
    )
    assert nv_exposes_gpus(Host({"srun": (0, missing)}), "/c/x.sif", "gpu", 1).measured == 0


# ------------------------------------------------------- one parser per output


def test_beegfs_mount_read_only_fails_and_df_is_read_by_the_storage_parser(
    catalog: Catalog,
) -> None:
    root = catalog.hpc.beegfs.root
    fs = catalog.hpc.beegfs.fs_type
    ro = Host({"findmnt": (0, f"{root} {fs} /dev/loop0 ro,relatime\n")})
    out = hpc.mount_matches(ro, catalog)
    assert not out.passed and "read-only" in out.detail
    assert ro.calls[0][:4] == ["findmnt", "-n", "-o", "TARGET,FSTYPE,SOURCE,OPTIONS"]
    assert hpc.mount_matches(
        Host({"findmnt": (0, f"{root} {fs} /dev/loop0 rw,relatime\n")}), catalog
    ).passed
    df = (FIX / "df_P_B1_h200_ubuntu24.04.txt").read_text()
    text = "".join(ln for ln in df.splitlines(keepends=True) if not ln.startswith("#@"))
    free = hpc.free_space(Host({"df": (0, text)}), catalog)
    last = [ln for ln in text.splitlines() if ln.strip()][-1]
    assert free.measured == round(int(last.split()[3]) / 1e9, 2)


def test_beegfs_targets_reads_meta_and_storage(catalog: Catalog) -> None:
    good = (
        "TargetID     Reachability  Consistency   NodeID\n========     ============  =========== "
        "  ======\n       1           Online         Good        1\n"
    )
    resync = good.replace("Online         Good", "Online Needs-resync")
    host = Host({"beegfs-ctl": (0, resync)})
    out = hpc.beegfs_targets(host, catalog)
    assert (
        not out.passed
        and "meta target 1: Needs-resync" in out.detail
        and "storage target 1" in out.detail
    )
    assert [c[2] for c in host.calls] == ["--nodetype=meta", "--nodetype=storage"]


def test_missing_beegfs_ctl_passes_only_where_the_filesystem_is_not_beegfs(
    catalog: Catalog,
) -> None:
    assert hpc.beegfs_targets(Host({}), catalog).passed  # sandbox: ext4 stand-in
    b = catalog.hpc.beegfs.model_copy(update={"fs_type": "beegfs"})
    real = catalog.model_copy(update={"hpc": catalog.hpc.model_copy(update={"beegfs": b})})
    out = hpc.beegfs_targets(Host({}), real)
    assert not out.passed and out.measured == "unmeasured"
