"""Progress comes from the run's event log while the run is going, not from the result."""

from __future__ import annotations

import dagster as dg

from mlops_assets import headless
from mlops_assets.checking import to_check_result
from mlops_assets.core.checks import Evaluation, Severity

seen: list[tuple[str, str]] = []


@dg.asset(group_name="storage")
def staged() -> int:
    return 1


@dg.asset(group_name="storage")
def broken() -> int:
    raise RuntimeError("disk full on /mnt/beegfs")


@dg.asset_check(asset=staged)
def staged_size() -> dg.AssetCheckResult:
    # Evaluated after `staged` materialized, in the same run: its DONE line is already out.
    ev = Evaluation(
        asset="staged",
        check="staged_size",
        passed=("DONE", "staged") in seen,
        severity=Severity.WARN,
        measured=len(seen),
        threshold=1,
        unit="lines",
        hint="the listener did not run during the run",
        duration_s=0.25,
    )
    return to_check_result(ev)


def test_progress_lines_arrive_while_the_run_goes_on() -> None:
    defs = dg.Definitions(assets=[staged, broken], asset_checks=[staged_size])
    sel = headless.select(defs, ["staged", "broken"])
    seen.clear()
    got: list[tuple[str, str, float]] = []

    def on_progress(status: str, what: str, seconds: float) -> None:
        seen.append((status, what))
        got.append((status, what, seconds))

    rows, _ = headless.execute(
        defs,
        sel,
        materialize=True,
        inst=dg.DagsterInstance.ephemeral(),
        on_progress=on_progress,
    )
    check_row = next(r for r in rows if r.check == "staged_size")
    assert check_row.passed, got
    statuses = {what: (status, s) for status, what, s in got}
    assert statuses["staged"][0] == "DONE"
    assert statuses["staged staged_size"] == ("PASS", 0.25)
    failed = [what for status, what, _ in got if status == "FAIL"]
    assert failed and "broken" in failed[0] and "disk full on /mnt/beegfs" in failed[0], got
