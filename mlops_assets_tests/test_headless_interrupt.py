"""Ctrl-C during a headless run: Dagster stops the run, and the rows must say the run was
interrupted, not that "an upstream step failed" (the old reading sent people looking for a
failure that never happened); no later run starts. A real SIGINT to a real in-process run,
in a child process, sent once the slow check has started (a marker file says so)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from mlops_assets.core.report import EXIT_INTERRUPTED, Report, render_table

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import dagster as dg
    from mlops_assets import headless

    marker = Path(sys.argv[1])

    @dg.asset(group_name="storage")
    def staged() -> int:
        return 1

    @dg.asset_check(asset=staged)
    def waits() -> dg.AssetCheckResult:
        marker.write_text("started")
        time.sleep(120)
        return dg.AssetCheckResult(passed=True)

    defs = dg.Definitions(assets=[staged], asset_checks=[waits])
    try:
        headless.execute(defs, headless.select(defs, ["staged"]), materialize=True,
                         inst=dg.DagsterInstance.ephemeral())
        print(json.dumps({"interrupted": False}))
    except headless.Interrupted as exc:
        print(json.dumps({"interrupted": True, "run_id": exc.run_id,
                          "rows": [r.as_dict() for r in exc.rows]}))
    """
)


def test_a_run_interrupted_by_ctrl_c_reports_the_interrupt_as_the_cause(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DAGSTER_HOME": ""},
    )
    deadline = time.monotonic() + 120
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), child.communicate(timeout=30)
    started = time.monotonic()
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert time.monotonic() - started < 30, "the interrupt did not stop the run"
    got = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    assert got.get("interrupted") is True, (out, err[-3000:])
    assert got["run_id"]
    rows = {(r["asset"], r["check"]): r for r in got["rows"]}
    assert rows[("staged", "materialized")]["passed"] is True  # done before the interrupt
    waits = rows[("staged", "waits")]
    assert waits["passed"] is False and waits["measured"] == "not run", waits
    assert "interrupt" in waits["detail"].lower(), waits
    assert "upstream step failed" not in waits["detail"], waits


def test_an_interrupted_report_exits_130_and_says_why() -> None:
    from datetime import UTC, datetime

    from mlops_assets.core.checks import Evaluation, Severity

    row = Evaluation("staged", "waits", False, Severity.ERROR, "not run", None, "", "", 0.0)
    report = Report("validate", "sandbox", "c.yaml", [row], datetime.now(UTC), interrupted=True)
    assert report.exit_code == EXIT_INTERRUPTED == 130
    assert "Interrupted" in render_table(report).splitlines()[-1]
    same = Report("validate", "sandbox", "c.yaml", [row], datetime.now(UTC))
    assert same.exit_code == 1  # the same row without the interrupt: an ERROR
