"""The CLI's contract: exit 0/1/2, formats, output files, clear errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_help_lists_commands(cli) -> None:
    res = cli("validate", "--help")
    assert res.returncode == 0 and "--select" in res.stdout and "junit" in res.stdout


def test_catalog_validate_ok_for_every_profile(cli) -> None:
    for args in ((), ("--all-profiles",)):
        res = cli("catalog", "validate", *args)
        assert res.returncode == 0, res.stderr
        assert "profile production" in res.stdout and "profile sandbox" in res.stdout


def test_catalog_validate_checks_every_profile_and_reports_each_failing_one(
    cli, tmp_path: Path
) -> None:
    """A bad base value fails every profile that does not override it: each is reported,
    at the base line, and the exit status is 2; --profile narrows to one."""
    text = (REPO / "mlops_assets/catalog/platform.yaml").read_text()
    bad = tmp_path / "platform.yaml"
    bad.write_text(text.replace('min_version: "1.1.0"', "min_version: lots", 1))
    line = next(
        i + 1 for i, x in enumerate(bad.read_text().splitlines()) if "min_version: lots" in x
    )
    res = cli("catalog", "validate", str(bad))
    assert res.returncode == 2, res
    assert "(profile 'production')" in res.stderr and "(profile 'sandbox')" in res.stderr
    assert res.stderr.count(f"hpc.apptainer.min_version ({bad}:{line})") == 2, res.stderr
    assert "2 of 2 profiles have problems (production, sandbox)" in res.stderr
    one = cli("catalog", "validate", str(bad), "--profile", "production")
    assert one.returncode == 2 and "'sandbox'" not in one.stderr


def test_catalog_validate_bad_file_exits_2_with_every_problem(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\nplatform: x\nprofiles: {sandbox: {}}\n")
    res = cli("catalog", "validate", str(bad))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "version" in res.stderr and "fix:" in res.stderr
    assert res.stderr.count("  - ") >= 5


def test_unknown_profile_exits_2(cli) -> None:
    res = cli("validate", "--profile", "nope", "--select", "workstation")
    assert res.returncode == 2 and "unknown profile 'nope'" in res.stderr


def test_unknown_selection_exits_2_with_suggestion(cli) -> None:
    res = cli("validate", "--select", "clod")
    assert res.returncode == 2 and "Did you mean: cloud" in res.stderr


def test_catalog_show_masks_and_resolves(cli) -> None:
    res = cli(
        "catalog",
        "show",
        "--profile",
        "production",
        "--format",
        "json",
        env={"MLOPS_HPC_USER": "opsuser"},
    )
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)  # stdout is the JSON alone; the header is on stderr
    assert res.stderr.startswith("# ") and "(profile production)" in res.stderr
    assert data["hpc"]["access"]["login"]["user"] == "opsuser"
    assert data["cloud"]["services"]["minio"]["secret_key"] == {"env": "MLOPS_S3_SECRET_ACCESS_KEY"}


def test_validate_json_and_junit_reports(cli, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = cli("validate", "--select", "workstation", "--format", "json", "--output", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(out.read_text())
    assert doc["summary"]["total"] == 3 and doc["exit_code"] == 0
    row = next(r for r in doc["results"] if r["check"] == "workstation_python_version")
    assert set(row) >= {
        "asset",
        "check",
        "passed",
        "severity",
        "measured",
        "threshold",
        "unit",
        "hint",
        "duration_s",
    }
    assert row["passed"] is True and row["threshold"] == "3.11"
    res = cli("validate", "--select", "workstation", "--format", "junit")
    suite = ET.fromstring(res.stdout.split("\n", 1)[1])
    assert suite.get("tests") == "3" and len(suite.findall("testcase")) == 3
    # progress: one plain stderr line per finished check (stderr is a pipe here)
    done = [x for x in res.stderr.splitlines() if x.startswith("[") and "  PASS  " in x]
    assert len(done) == 3 and all(x.endswith("s)") for x in done), res.stderr
    assert {x.split("  PASS  ")[1].split("  (")[0] for x in done} == {
        f"workstation {r['check']}" for r in doc["results"]
    }


def test_version_and_list(cli) -> None:
    res = cli("--version")
    assert (
        res.returncode == 0
        and res.stdout.startswith("mlops-assets 0.")
        and "dagster 1.13" in (res.stdout)
    )
    listed = cli("list", "--format", "json")
    rows = json.loads(listed.stdout)
    by = {r["asset"]: r for r in rows}
    assert by["workstation"]["group"] == "network" and by["smoke_gpu"]["group"] == "smoke"
    assert "workstation_python_version" in by["workstation"]["checks"]
    bad = cli("validate", "--select", "workstaton")
    assert "`mlops-assets list`" in bad.stderr and "Did you mean: workstation" in bad.stderr


def test_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    """`catalog show | head`: the reader leaves early; no traceback, the shell's 141."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops_assets.cli", "catalog", "show", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the child writes: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_error_failure_exits_1_and_names_the_fix(cli, tmp_path: Path) -> None:
    """An unreachable HPC login (a closed loopback port) is an ERROR failure, not a crash."""
    text = (
        Path(__file__).resolve().parent.parent / "mlops_assets/catalog/platform.yaml"
    ).read_text()
    cat = tmp_path / "platform.yaml"
    cat.write_text(text.replace("port: 2222", "port: 1"))
    res = cli("validate", "--catalog", str(cat), "--select", "cloud_to_hpc", "--format", "json")
    assert res.returncode == 1, res.stdout + res.stderr
    row = json.loads(res.stdout)["results"][0]
    assert row["passed"] is False and row["severity"] == "ERROR" and "route" in row["hint"]


CORPUS = Path(__file__).resolve().parent / "corpus"


def test_judge_reads_a_sites_own_outputs_by_the_catalogs_rules(cli, tmp_path: Path) -> None:
    """`judge` runs the check rules on saved real outputs (the corpus): an unjudgeable
    bandwidth is a WARN that says why (exit 0), a failing GPU is a FAIL naming the figure
    (exit 1), an nvidia-smi error names its cause, and text that is not the tool's output
    exits 2 saying so."""
    warn = cli(
        "judge",
        "all-reduce-perf",
        str(CORPUS / "nccl_tests" / "a100_40gb_8gpu_8gib_no_validation_superbench.txt"),
    )
    assert (
        warn.returncode == 0
        and warn.stdout.startswith("WARN")
        and "no allreduce_busbw_gbps" in warn.stdout
    ), warn
    old = cli(
        "judge",
        "nvidia-smi-q",
        str(CORPUS / "nvidia_smi_q" / "gtx960m_410_netdata4892.txt"),
        "--format",
        "json",
    )
    doc = json.loads(old.stdout)
    assert (
        old.returncode == 1
        and doc["verdict"] == "FAIL"
        and any("driver 410.72 <" in m for m in doc["messages"])
    ), old
    mismatch = next((CORPUS / "nvidia_smi_error").glob("*mismatch*.txt"))
    bad = cli("judge", "nvidia-smi-q", str(mismatch))
    assert bad.returncode == 1 and "mismatch" in bad.stdout.lower(), bad
    notes = tmp_path / "notes.txt"
    notes.write_text("nothing like nccl-tests here\n")
    garbage = cli("judge", "all-reduce-perf", str(notes))
    assert garbage.returncode == 2 and "not readable as all-reduce-perf output" in garbage.stderr, (
        garbage
    )
    missing = cli("judge", "all-reduce-perf", str(tmp_path / "absent.txt"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr, missing
