"""The one codec between an Evaluation and Dagster's check-result metadata: what a check
writes is what the CLI report and the metrics export read back, through a real run and the
instance's event log, field for field."""

from __future__ import annotations

import dagster as dg
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.checking import decode, encode, from_check_evaluation, to_check_result
from mlops_assets.core.checks import CheckSpec, Evaluation, Outcome, Severity, run_check

EVALUATIONS = [
    Evaluation(
        asset="slurm_cluster",
        check="gpu_nodes_usable",
        passed=False,
        severity=Severity.ERROR,
        measured=3,
        threshold=4,
        unit="nodes",
        hint="resume the drained node: scontrol update nodename=gpu04 state=resume",
        duration_s=0.25,
        # commas and spaces inside a name must not split it
        nodes=("gpu01", "gpu 02", "gpu03,drained", "10.0.0.4:9100"),
        detail="gpu03 drained: Kill task failed",
        extra={
            "ratio": 0.75,
            "count": 7,
            "fake_gpus": True,
            "driver": "550.54.15",
            "missing": None,
        },
    ),
    Evaluation(
        asset="mlflow",
        check="mlflow_health_endpoint",
        passed=True,
        severity=Severity.WARN,
        measured=None,
        threshold=None,
        unit="",
        hint="",
        duration_s=0.0,
    ),
    Evaluation(
        asset="minio",
        check="minio_write_quorum",
        passed=False,
        severity=Severity.WARN,
        measured="unmeasured",
        threshold=True,
        unit="quorum",
        hint="start MinIO",
        duration_s=1.5,
        # an extra named like a standard key keeps both
        extra={"unit": "MiB", "hint": 3, "severity": "x"},
    ),
]


def _run(evaluations: list[Evaluation]) -> tuple[list[Evaluation], list[Evaluation]]:
    """Each evaluation yielded by a real multi-check; read back from the run's result and
    from the instance's event log, as headless.collect and the metrics sensor read them."""
    specs = [dg.AssetCheckSpec(ev.check, asset=ev.asset) for ev in evaluations]

    @dg.multi_asset_check(specs=specs)
    def checks():
        for ev in evaluations:
            yield to_check_result(ev)

    assets = [dg.AssetSpec(a) for a in dict.fromkeys(ev.asset for ev in evaluations)]
    defs = dg.Definitions(assets=assets, asset_checks=[checks])
    with dg.DagsterInstance.ephemeral() as instance:
        job = dg.Definitions.merge(
            defs,
            dg.Definitions(
                jobs=[dg.define_asset_job("j", selection=dg.AssetSelection.all_asset_checks())]
            ),
        ).resolve_job_def("j")
        result = job.execute_in_process(instance=instance)
        from_result = [from_check_evaluation(e) for e in result.get_asset_check_evaluations()]
        keys = [dg.AssetCheckKey(dg.AssetKey(ev.asset), ev.check) for ev in evaluations]
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
        from_log = [from_check_evaluation(latest[k].evaluation) for k in keys]
    order = {(ev.asset, ev.check): i for i, ev in enumerate(evaluations)}
    return sorted(from_result, key=lambda e: order[(e.asset, e.check)]), from_log


def test_every_field_survives_a_real_run_and_the_event_log() -> None:
    from_result, from_log = _run(EVALUATIONS)
    assert from_result == EVALUATIONS
    assert from_log == EVALUATIONS
    # types, not only equal values: 3 stays an int, True a bool
    assert type(from_log[0].measured) is int and type(from_log[0].extra["count"]) is int
    assert from_log[0].extra["fake_gpus"] is True and from_log[2].threshold is True


def test_probe_severity_override_reaches_dagster_and_comes_back() -> None:
    """A figure that cannot be judged is a WARN even on an ERROR check (Outcome.severity)."""
    spec = CheckSpec(
        "a",
        "c",
        Severity.ERROR,
        "why",
        lambda ctx: Outcome(False, None, 1.0, "x", severity=Severity.WARN),
    )
    ev = run_check(spec, None)
    result = to_check_result(ev)
    assert ev.severity == Severity.WARN and result.severity == dg.AssetCheckSeverity.WARN
    assert _run([ev])[1][0].severity == Severity.WARN


def test_old_results_with_comma_joined_nodes_still_read() -> None:
    ev = decode(
        asset="a",
        check="c",
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"nodes": dg.MetadataValue.text("gpu01, gpu02"), "measured": 1},
    )
    assert ev.nodes == ("gpu01", "gpu02") and ev.severity == Severity.ERROR and ev.measured == 1


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)


@settings(max_examples=200, deadline=None)
@given(
    passed=st.booleans(),
    severity=st.sampled_from(list(Severity)),
    measured=scalars,
    threshold=scalars,
    unit=st.text(),
    hint=st.text(),
    duration_ms=st.integers(min_value=0, max_value=10**7),
    nodes=st.lists(st.text(min_size=1), max_size=5).map(tuple),
    detail=st.text(),
    extra=st.dictionaries(
        st.text(min_size=1).filter(lambda k: not k.startswith(("extra/", "dagster/"))),
        scalars,
        max_size=5,
    ),
)
def test_encode_decode_round_trip(
    passed, severity, measured, threshold, unit, hint, duration_ms, nodes, detail, extra
) -> None:
    ev = Evaluation(
        "a",
        "c",
        passed,
        severity,
        measured,
        threshold,
        unit,
        hint,
        duration_ms / 1000,
        nodes,
        detail,
        extra,
    )
    dagster_severity = to_check_result(ev).severity
    back = decode(
        asset="a", check="c", passed=passed, severity=dagster_severity, metadata=encode(ev)
    )
    assert back == ev
    assert [type(v) for v in back.extra.values()] == [type(v) for v in ev.extra.values()]
