"""core.metrics: stable names and labels, exposition escaping, Pushgateway grouping paths,
secrets never exported."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_assets.core.checks import Evaluation, Severity
from mlops_assets.core.metrics import (
    Sample,
    check_samples,
    escape_label_value,
    exposition,
    figure_metric,
    grouping_path,
    known_metric,
    materialization_samples,
    numeric,
    push_groups,
)


def _ev(**kw: object) -> Evaluation:
    base: dict[str, object] = dict(
        asset="gpu_nodes",
        check="gpu_count_at_least_minimum",
        passed=False,
        severity=Severity.ERROR,
        measured=1,
        threshold=2,
        unit="GPUs",
        hint="add GPUs",
        duration_s=0.25,
        nodes=("gpu-01", "gpu-02"),
        detail="gpu-02 has 0",
        extra={"latency_s": 0.5, "version": "1.2"},
    )
    base.update(kw)
    return Evaluation(**base)  # type: ignore[arg-type]


def _parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """A strict reader of the exposition lines we write (for round-trip tests)."""
    out = []
    line_re = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$")
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = line_re.match(line)
        assert m, line
        labels = {
            k: v.encode().decode("unicode_escape") if "\\" in v else v
            for k, v in label_re.findall(m.group(2))
        }
        out.append((m.group(1), labels, float(m.group(3))))
    return out


def test_check_series_and_labels() -> None:
    samples = check_samples(_ev(), timestamp=1700000000.5, group="hpc")
    names = {s.name for s in samples}
    assert names == {
        "mlops_check_passed",
        "mlops_check_duration_seconds",
        "mlops_check_last_run_timestamp_seconds",
        "mlops_check_measured",  # "GPUs": a dimensionless count
        "mlops_check_threshold",
        "mlops_check_node_passed",
        "mlops_check_figure_latency_seconds",
    }
    passed = next(s for s in samples if s.name == "mlops_check_passed")
    assert dict(passed.labels) == {
        "asset": "gpu_nodes",
        "check": "gpu_count_at_least_minimum",
        "severity": "ERROR",
        "group": "hpc",
    }
    assert passed.value == 0
    nodes = sorted(s.label("node") for s in samples if s.name == "mlops_check_node_passed")
    assert nodes == ["gpu-01", "gpu-02"]
    latency = next(s for s in samples if s.name == "mlops_check_figure_latency_seconds")
    assert latency.value == 0.5 and "key" not in dict(latency.labels)  # texts are never values
    measured = next(s for s in samples if s.name == "mlops_check_measured")
    assert measured.value == 1 and "unit" not in dict(measured.labels)


@pytest.mark.parametrize(
    ("unit", "measured", "name", "value"),
    [
        # unit texts as the checks write them (a sandbox `validate --format json`)
        ("GB free", 12.5, "mlops_check_measured_bytes", 12.5e9),
        ("MB staged", 11.6, "mlops_check_measured_bytes", 11.6e6),
        ("Mbps", 800.0, "mlops_check_measured_bytes_per_second", 1e8),
        ("s to connect and run `true`", 0.21, "mlops_check_measured_seconds", 0.21),
        ("share of scraped targets up", 0.75, "mlops_check_measured_ratio", 0.75),
        ("nodes with gpu GRES >= 2", 3, "mlops_check_measured", 3),
        ("files differing from the manifest", 0, "mlops_check_measured", 0),
    ],
)
def test_measured_values_carry_their_base_unit_in_the_name(
    unit: str, measured: float, name: str, value: float
) -> None:
    samples = check_samples(_ev(unit=unit, measured=measured, threshold=None), timestamp=0)
    got = [s for s in samples if s.name.startswith("mlops_check_measured")]
    assert [s.name for s in got] == [name]
    assert got[0].value == pytest.approx(value)


@pytest.mark.parametrize(
    ("unit", "measured"),
    [("HTTP status of /-/ready", 200), ("furlongs", 2.5), ("", 3), ("version", "1.2")],
)
def test_values_whose_unit_cannot_be_named_are_not_exported(unit: str, measured: object) -> None:
    samples = check_samples(_ev(unit=unit, measured=measured, threshold=None), timestamp=0)
    assert not [s for s in samples if s.name.startswith("mlops_check_measured")]


@pytest.mark.parametrize(
    ("key", "name", "factor", "labels"),
    [
        ("gpu0_matmul_bf16_tflops", "mlops_asset_figure_matmul_bf16_flops", 1e12, {"gpu": "0"}),
        ("cpu_matmul_fp32_gflops", "mlops_asset_figure_cpu_matmul_fp32_flops", 1e9, {}),
        ("copy_gbps", "mlops_asset_figure_copy_bytes_per_second", 1e9, {}),
        ("write_MBps", "mlops_asset_figure_write_bytes_per_second", 1e6, {}),
        ("bytes_transferred", "mlops_asset_figure_transferred_bytes", 1, {}),
        ("bytes", "mlops_asset_figure_bytes", 1, {}),
        ("cpu_copy_mib", "mlops_asset_figure_cpu_copy_bytes", 2**20, {}),
        ("payload_seconds", "mlops_asset_figure_payload_seconds", 1, {}),
        ("latency_s", "mlops_asset_figure_latency_seconds", 1, {}),
        ("node_count", "mlops_asset_figure_nodes", 1, {}),
        ("targets_total", "mlops_asset_figure_targets", 1, {}),
        ("accuracy", "mlops_asset_figure_accuracy", 1, {}),
    ],
)
def test_figure_keys_become_one_metric_per_quantity(
    key: str, name: str, factor: float, labels: dict[str, str]
) -> None:
    assert figure_metric("mlops_asset", key) == (name, factor, labels)


def test_text_and_boolean_measured_values_are_not_exported() -> None:
    for measured, threshold in (("all present", "a, b"), (True, True)):
        names = {
            s.name for s in check_samples(_ev(measured=measured, threshold=threshold), timestamp=0)
        }
        assert not {n for n in names if n.startswith(("mlops_check_measured", "mlops_check_thr"))}
    assert numeric(float("nan")) is None and numeric("3") is None and numeric(False) == 0.0


def test_details_and_hints_never_exported_and_secrets_masked() -> None:
    secret = "S3cr3tKey!"
    ev = _ev(
        detail=f"login with {secret} failed",
        hint=f"use {secret}",
        nodes=(f"host-{secret}",),
        unit=f"u {secret}",
    )
    text = exposition(check_samples(ev, timestamp=1, secrets=[secret]))
    assert secret not in text
    assert "failed" not in text and "use " not in text
    assert 'node="****"' in text


def test_exposition_escapes_label_values_and_round_trips() -> None:
    ev = _ev(asset='a"b\\c', check="x", nodes=("line1\nline2",), unit='q"u')
    text = exposition(check_samples(ev, timestamp=2))
    assert '\\"' in text and "\\\\" in text
    for line in text.splitlines():
        assert line.startswith("#") or line.count('"') % 2 == 0 or '\\"' in line
    parsed = _parse(text)
    assets = {labels["asset"] for _, labels, _ in parsed}
    assert assets == {'a"b\\c'}
    assert all(known_metric(name) for name, _, _ in parsed)
    # HELP/TYPE exactly once per metric
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(types) == len(set(types))


@given(st.text(max_size=40))
def test_escape_is_reversible(value: str) -> None:
    escaped = escape_label_value(value)
    assert "\n" not in escaped
    back = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), escaped)
    assert back == value


def test_duplicate_series_keep_the_last_value() -> None:
    a = Sample("mlops_check_passed", (("asset", "a"), ("check", "c")), 0)
    b = Sample("mlops_check_passed", (("check", "c"), ("asset", "a")), 1)
    text = exposition([a, b])
    assert text.count("mlops_check_passed{") == 1 and text.rstrip().endswith(" 1")


def test_unknown_metric_name_is_refused() -> None:
    from mlops_assets.core import metrics

    with pytest.raises(AssertionError):
        metrics._sample("made_up_metric", 1, {}, [])


def test_materialization_figures_per_node() -> None:
    samples = materialization_samples(
        "smoke_gpu",
        group="smoke",
        timestamp=1700000000,
        metadata={
            "bf16_tflops@gpu-01": 791.2,
            "bf16_tflops@gpu-02": 790.0,
            "node_count": 2,
            "log": "text",
            "passed": True,
        },
    )
    last = [s for s in samples if s.name == "mlops_asset_last_materialization_timestamp_seconds"]
    assert len(last) == 1 and last[0].value == 1700000000 and last[0].label("group") == "smoke"
    figs = {
        (s.name, s.label("node")): s.value
        for s in samples
        if s.name.startswith("mlops_asset_figure_")
    }
    assert figs == {
        ("mlops_asset_figure_bf16_flops", "gpu-01"): pytest.approx(791.2e12),
        ("mlops_asset_figure_bf16_flops", "gpu-02"): pytest.approx(790.0e12),
        ("mlops_asset_figure_nodes", ""): 2,
        ("mlops_asset_figure_passed", ""): 1,
    }
    one = materialization_samples(
        "smoke_mnist_training",
        group="smoke",
        timestamp=1,
        metadata={"node": "gpu-03", "accuracy": 0.98},
    )
    assert {s.label("node") for s in one if s.name == "mlops_asset_figure_accuracy"} == {"gpu-03"}


def test_grouping_path_base64_escapes_slashes_and_empty() -> None:
    path = grouping_path({"asset": "team/dataset", "check": ""})
    parts = path.split("/")
    assert parts[:3] == ["", "metrics", "job@base64"]
    assert base64.urlsafe_b64decode(parts[3] + "==").decode() == "mlops_assets"
    assert parts[4] == "asset@base64"
    assert base64.urlsafe_b64decode(parts[5] + "==").decode() == "team/dataset"
    assert parts[-1] == "="
    assert "/" not in parts[5]


def test_push_groups_one_group_per_check_and_per_asset() -> None:
    samples = [
        *check_samples(_ev(check="c1"), timestamp=1),
        *check_samples(_ev(check="c2"), timestamp=1),
        *materialization_samples("dataset_mnist", group="datasets", timestamp=1, metadata={}),
    ]
    groups = push_groups(samples)
    assert len(groups) == 3
    for body in groups.values():
        assert body.endswith("\n")
    bodies = "".join(groups.values())
    assert bodies.count("mlops_check_passed{") == 2
