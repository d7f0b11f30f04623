"""Check plumbing and reports: probes that raise become failed checks; secrets never leak."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from mlops_assets.core.checks import CheckSpec, Outcome, ProbeFailed, Severity, run_check
from mlops_assets.core.report import Report, render
from mlops_assets.core.transport.hostexec import LocalRunner, command_line


def spec(probe, sev=Severity.ERROR) -> CheckSpec:
    return CheckSpec("a", "c", sev, "why", probe, hint="default hint")


def test_probe_failed_becomes_a_failed_evaluation_with_its_hint() -> None:
    def probe(ctx):
        raise ProbeFailed("host down", "start it")

    ev = run_check(spec(probe), None)
    assert (
        not ev.passed
        and ev.detail == "host down"
        and ev.hint == "start it"
        and ev.measured == "unmeasured"
    )


def test_unexpected_exception_is_contained_and_secrets_redacted() -> None:
    def probe(ctx):
        raise RuntimeError("auth with s3cr3tvalue at http://u:pw@host failed")

    ev = run_check(spec(probe), None, secrets=["s3cr3tvalue"])
    assert "s3cr3tvalue" not in ev.detail and "pw@" not in ev.detail and "RuntimeError" in ev.detail


def test_exit_code_depends_on_error_failures_only() -> None:
    ok = run_check(spec(lambda c: Outcome(True, 1, 1, "x")), None)
    warn = run_check(spec(lambda c: Outcome(False, 0, 1, "x"), Severity.WARN), None)
    err = run_check(spec(lambda c: Outcome(False, 0, 1, "x")), None)
    now = datetime.now(UTC)
    assert Report("validate", "p", "f", [ok, warn], now).exit_code == 0
    assert Report("validate", "p", "f", [ok, warn, err], now).exit_code == 1
    r = Report("validate", "p", "f", [ok, warn, err], now)
    assert json.loads(render(r, "json"))["summary"] == {
        "total": 3,
        "passed": 1,
        "failed_error": 1,
        "failed_warn": 1,
    }
    suite = ET.fromstring(render(r, "junit").split("\n", 1)[1])
    assert suite.get("failures") == "2"
    assert [f.get("type") for f in suite.iter("failure")] == ["WARN", "ERROR"]
    table = render(r, "table")
    assert "FAIL" in table and "WARN" in table and "next: default hint" in table


def test_command_line_quotes_hostile_values() -> None:
    line = command_line(["ls", "a b; rm -rf /", "$(id)"], env={"HF_HOME": "/x y"})
    assert line == "env HF_HOME='/x y' ls 'a b; rm -rf /' '$(id)'"


def test_local_runner_reports_missing_command_and_timeout() -> None:
    r = LocalRunner()
    assert r.run(["definitely-not-a-command-xyz"]).returncode == 127
    res = r.run(["sleep", "5"], timeout_s=0.2)
    assert res.returncode == 124 and "timed out" in res.stderr
    assert r.run(["printf", "%s", "a;b"]).stdout == "a;b"
