"""core.probes.hpc judged on SLURM answers (issue 15, class 10: the unavailable share has a
warn and an error level, and the result carries the one it crossed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.catalog.schema import Catalog, SlurmPartition
from mlops_assets.core.checks import CheckSpec, ProbeFailed, Severity, run_check
from mlops_assets.core.probes import hpc as r
from mlops_assets.core.transport.hostexec import CommandResult


class AnswerRunner:
    """Answers each command with the text SLURM printed for it (the rule is under test)."""

    where = "admin@login:22"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def run(self, argv: Any, *, timeout_s: float | None = None, env: Any = None) -> CommandResult:
        return CommandResult(tuple(argv), 0, self.answers[argv[0]], "", 0.01)

    def close(self) -> None:
        pass


def catalog_with(warn: float | None, error: float = 0.1) -> Catalog:
    cat = load_catalog(profile="production").catalog
    slurm = cat.hpc.slurm
    part = SlurmPartition.model_validate(
        {
            **slurm.partitions[0].model_dump(),
            "max_unavailable_fraction": error,
            "warn_unavailable_fraction": warn,
        }
    )
    return cat.model_copy(
        update={
            "hpc": cat.hpc.model_copy(
                update={"slurm": slurm.model_copy(update={"partitions": [part]})}
            )
        }
    )


def sinfo(drained: int, total: int) -> str:
    rows = [
        f"gpu{i:02d}|gpu*|{'drained' if i <= drained else 'idle'}|64|512000|gpu:2|"
        f"{'bad DIMM' if i <= drained else 'none'}"
        for i in range(1, total + 1)
    ]
    return "\n".join(rows) + "\n"


def judge(cat: Catalog, text: str) -> Any:
    spec = CheckSpec(
        "slurm",
        "slurm_unavailable_nodes_within_limit",
        Severity.ERROR,
        "why",
        lambda ctx: r.unavailable_share(AnswerRunner({"sinfo": text}), cat),
    )
    return run_check(spec, None)


def test_two_nodes_one_drained_is_an_error_against_max_0_1() -> None:
    ev = judge(catalog_with(None), sinfo(1, 2))
    assert not ev.passed and ev.severity == Severity.ERROR
    assert ev.measured == 0.5 and ev.threshold == 0.1 and ev.nodes == ("gpu01",)
    assert "bad DIMM" in ev.detail


@pytest.mark.parametrize(
    ("drained", "passed", "severity", "threshold"),
    [(0, True, None, 0.05), (1, False, Severity.WARN, 0.05), (2, False, Severity.ERROR, 0.1)],
)
def test_between_the_levels_is_a_warning(
    drained: int, passed: bool, severity: Severity | None, threshold: float
) -> None:
    ev = judge(catalog_with(0.05), sinfo(drained, 12))  # 1/12 = 0.083, 2/12 = 0.167
    assert ev.passed is passed and ev.threshold == threshold
    if severity is not None:
        assert ev.severity == severity


def test_warn_level_above_error_level_is_refused() -> None:
    with pytest.raises(ValueError, match="must not exceed"):
        catalog_with(0.5, 0.1)


def test_unreadable_sinfo_is_a_failed_probe_not_a_pass() -> None:
    ev = judge(catalog_with(None), "gpu01|gpu*|OUT_OF_ME+\n")
    assert not ev.passed and ev.measured == "unmeasured" and "sinfo" in ev.detail


def _fixture(name: str) -> str:
    path = Path(__file__).parent / "fixtures" / name
    return "".join(
        line for line in path.read_text().splitlines(keepends=True) if not line.startswith("#@")
    )


def test_partitions_and_gres_read_scontrol_through_its_parser() -> None:
    """partitions_up and the GRES check read `scontrol show partition/node` (recorded on the
    sandbox's SLURM 22.05) through core.parse.slurm's parsers, not inline splitting."""
    cat = load_catalog(profile="sandbox").catalog
    # the fixtures were recorded on the one-node sandbox: partition gpu only (no dtn yet)
    slurm = cat.hpc.slurm.model_copy(
        update={"partitions": [p for p in cat.hpc.slurm.partitions if p.name == "gpu"]}
    )
    cat = cat.model_copy(update={"hpc": cat.hpc.model_copy(update={"slurm": slurm})})
    runner = AnswerRunner({"scontrol": _fixture("scontrol_show_partition_idle_sandbox_22.05.txt")})
    assert r.partitions_up(runner, cat).passed
    drained = AnswerRunner({"scontrol": _fixture("scontrol_show_node_drained_sandbox_22.05.txt")})
    out = r.gres_matches_catalog(drained, cat)
    assert not out.passed and out.nodes == ("localhost",)
    assert "count reported lower than configured (0 < 2)" in out.detail
    idle = AnswerRunner({"scontrol": _fixture("scontrol_show_node_idle_sandbox_22.05.txt")})
    assert r.gres_matches_catalog(idle, cat).passed
    garbage = AnswerRunner(
        {
            "scontrol": (
                "slurm_load_partitions: Unable to contact slurm controller (connect failure)\n"
            )
        }
    )
    with pytest.raises(ProbeFailed, match="unexpected scontrol show partition output"):
        r.partitions_up(garbage, cat)
