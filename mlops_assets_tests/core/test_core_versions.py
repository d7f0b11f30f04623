"""Version extraction from tool output and minimum comparisons."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core.parse.versions import Version, at_least, parse_version

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    lines = (FIXTURES / name).read_text().splitlines(keepends=True)
    return "".join(ln for ln in lines if not ln.startswith("#@"))


@pytest.mark.parametrize(
    ("text", "release", "suffix", "shown"),
    [
        ("apptainer version 1.4.5", (1, 4, 5), "", "1.4.5"),
        ("apptainer version 1.3.4-1.el9", (1, 3, 4), "-1.el9", "1.3.4-1.el9"),
        ("singularity-ce version 3.11.4", (3, 11, 4), "", "3.11.4"),
        ("slurm 22.05.8", (22, 5, 8), "", "22.05.8"),
        ("slurm-wlm 22.05.8", (22, 5, 8), "", "22.05.8"),
        ("slurm 24.11.1", (24, 11, 1), "", "24.11.1"),
        ("v1.29.3+k3s1", (1, 29, 3), "+k3s1", "1.29.3+k3s1"),
        ("v1.27.8-eks-8cb36c9", (1, 27, 8), "-eks-8cb36c9", "1.27.8-eks-8cb36c9"),
        ("Server Version: v1.29.3+k3s1\n", (1, 29, 3), "+k3s1", "1.29.3+k3s1"),
        ("kserve/kserve-controller:v0.13.0", (0, 13, 0), "", "0.13.0"),
        ("v0.13.0", (0, 13, 0), "", "0.13.0"),
        ("580.159.04", (580, 159, 4), "", "580.159.04"),
        ("Python 3.11.7", (3, 11, 7), "", "3.11.7"),
        ("python3.11 3.11.7", (3, 11, 7), "", "3.11.7"),
        ("1.4.0-rc.1", (1, 4, 0), "-rc.1", "1.4.0-rc.1"),
        ("2", (2,), "", "2"),
    ],
)
def test_parse_version(text: str, release: tuple[int, ...], suffix: str, shown: str) -> None:
    v = parse_version(text)
    assert v.release == release
    assert v.suffix == suffix
    assert str(v) == shown


def test_versions_from_recorded_tool_output() -> None:
    assert str(parse_version(fixture("nvidia_smi_version_h200x2_580.159.04.txt"))) == "580.159.04"
    assert str(parse_version(fixture("nvidia_smi_banner_h200x2_580.159.04.txt"))) == "580.159.04"
    cfg = fixture("scontrol_show_config_idle_sandbox_22.05.txt")
    line = next(ln for ln in cfg.splitlines() if ln.startswith("SLURM_VERSION"))
    assert parse_version(line).release == (22, 5, 8)


@pytest.mark.parametrize(
    ("found", "minimum", "ok"),
    [
        ("apptainer version 1.4.5", "1.3.0", True),
        ("apptainer version 1.3.4-1.el9", "1.3.4", True),
        ("apptainer version 1.3.4-1.el9", "1.3.5", False),
        ("singularity-ce version 3.11.4", "1.0", True),
        ("slurm 22.05.8", "23.02", False),
        ("slurm 24.11.1", "23.02", True),
        ("v1.29.3+k3s1", "1.29.3", True),
        ("v1.27.8-eks-8cb36c9", "1.28", False),
        ("v0.13.0", "v0.13", True),
        ("580.159.04", "550.54.15", True),
        ("580.159.04", "580.159.4", True),
        ("1.4.0-rc.1", "1.4.0", False),
        ("1.4.0-rc.1", "1.3.9", True),
        ("1.4", "1.4.0", True),
        ("10.0", "9.9", True),
    ],
)
def test_at_least(found: str, minimum: str, ok: bool) -> None:
    assert at_least(found, minimum) is ok


def test_version_equality_and_ordering() -> None:
    assert parse_version("1.4") == parse_version("1.4.0")
    assert hash(parse_version("1.4")) == hash(parse_version("v1.4.0"))
    assert parse_version("1.4.0-rc1") < parse_version("1.4.0")
    assert parse_version("1.3.4-1.el9") == parse_version("1.3.4")
    assert sorted(map(parse_version, ["2.0", "1.10", "1.9"])) == [
        parse_version("1.9"),
        parse_version("1.10"),
        parse_version("2.0"),
    ]
    v = parse_version("580.159.04")
    assert (v.major, v.minor) == (580, 159)
    assert parse_version(v) is v
    assert Version((1, 2)).__eq__("1.2") is NotImplemented


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "apptainer: command not found",
        "FATAL: could not open image",
        "version",
        "foo2.x",
        "bash: kubectl: No such file or directory",
        "v",
        "1.",
        ".5",
    ],
)
def test_unparsable_versions_raise(bad: str) -> None:
    with pytest.raises(ValueError, match="no version"):
        parse_version(bad)
    with pytest.raises(ValueError):
        at_least(bad, "1.0")


def test_non_string_raises_value_error() -> None:
    with pytest.raises(ValueError):
        parse_version(1.4)  # type: ignore[arg-type]


_ver = st.lists(st.integers(0, 999), min_size=2, max_size=4).map(lambda p: ".".join(map(str, p)))


@settings(max_examples=300)
@given(_ver, _ver)
def test_at_least_is_a_total_order(a: str, b: str) -> None:
    va, vb = parse_version(a), parse_version(b)
    assert at_least(a, b) or at_least(b, a)
    assert (at_least(a, b) and at_least(b, a)) == (va == vb)
    assert at_least(a, a)
    assert str(parse_version(f"tool version {a}-1.el9")) == f"{a}-1.el9"


@settings(max_examples=500)
@given(st.text(max_size=60))
def test_parse_version_raises_only_value_error(text: str) -> None:
    try:
        v = parse_version(text)
    except ValueError:
        return
    assert v.release
