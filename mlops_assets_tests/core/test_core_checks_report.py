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
    table = render(r, "table")
    assert "FAIL" in table and "WARN" in table and "next: default hint" in table


def _cases(report: Report) -> tuple[ET.Element, dict[str, ET.Element]]:
    suite = ET.fromstring(render(report, "junit").split("\n", 1)[1])
    verdict = {}
    for case in suite.iter("testcase"):
        prop = case.find("properties/property[@name='verdict']")
        assert prop is not None
        verdict[prop.get("value", "")] = case
    return suite, verdict


def test_junit_agrees_with_the_exit_status_a_warn_is_a_passed_case_that_says_so() -> None:
    """CI reads JUnit and the exit status together: exit 0 with a WARN must not show a
    failed test. The WARN case carries its verdict as a property and its measurement and
    hint in system-out; --fail-on-warn turns it into a failure and exit 1."""
    ok = run_check(spec(lambda c: Outcome(True, 1, 1, "x")), None)
    warn = run_check(spec(lambda c: Outcome(False, 0, 1, "x"), Severity.WARN), None)
    err = run_check(spec(lambda c: Outcome(False, 0, 1, "x")), None)
    now = datetime.now(UTC)
    suite, by = _cases(Report("validate", "p", "f", [ok, warn], now))
    assert suite.get("failures") == "0" and suite.get("tests") == "2"
    assert by["WARN"].find("failure") is None
    out = by["WARN"].findtext("system-out") or ""
    assert out.startswith("WARN: measured 0 x, threshold 1") and "next: default hint" in out
    suite, by = _cases(Report("validate", "p", "f", [ok, warn, err], now))
    assert suite.get("failures") == "1"
    assert [f.get("type") for f in suite.iter("failure")] == ["ERROR"]
    assert by["PASS"].find("failure") is None and by["PASS"].find("system-out") is None
    strict = Report("validate", "p", "f", [ok, warn], now, fail_on_warn=True)
    suite, by = _cases(strict)
    assert strict.exit_code == 1 and suite.get("failures") == "1"
    assert by["WARN"].find("failure").get("type") == "WARN"  # type: ignore[union-attr]


def test_command_line_quotes_hostile_values() -> None:
    line = command_line(["ls", "a b; rm -rf /", "$(id)"], env={"HF_HOME": "/x y"})
    assert line == "env HF_HOME='/x y' ls 'a b; rm -rf /' '$(id)'"


def test_local_runner_reports_missing_command_and_timeout() -> None:
    r = LocalRunner()
    assert r.run(["definitely-not-a-command-xyz"]).returncode == 127
    res = r.run(["sleep", "5"], timeout_s=0.2)
    assert res.returncode == 124 and "timed out" in res.stderr
    assert r.run(["printf", "%s", "a;b"]).stdout == "a;b"
