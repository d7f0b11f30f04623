"""Hostlist expansion/compression: SLURM's rules, round trips, and loud failures."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core.parse.nodelist import (
    compress_hostlist,
    expand_hostlist,
    hostlist_count,
    natural_key,
    split_top_level,
)


@pytest.mark.parametrize(
    ("expr", "hosts"),
    [
        ("gpu[01-04,07]", ["gpu01", "gpu02", "gpu03", "gpu04", "gpu07"]),
        ("node[1-3],login1", ["node1", "node2", "node3", "login1"]),
        ("a[1-2]-b[3-4]", ["a1-b3", "a1-b4", "a2-b3", "a2-b4"]),
        ("rack[1-2]-gpu[01-02]", ["rack1-gpu01", "rack1-gpu02", "rack2-gpu01", "rack2-gpu02"]),
        ("n[08-10]", ["n08", "n09", "n10"]),
        ("n[8-10]", ["n8", "n9", "n10"]),
        ("localhost", ["localhost"]),
        ("gpu[5]", ["gpu5"]),
        ("gpu[01-02]-ib", ["gpu01-ib", "gpu02-ib"]),
        ("x[1-2],x1", ["x1", "x2", "x1"]),
        ("  node[1-2] ", ["node1", "node2"]),
        ("", []),
        ("dgx-h200-[001-003]", ["dgx-h200-001", "dgx-h200-002", "dgx-h200-003"]),
    ],
)
def test_expand_examples(expr: str, hosts: list[str]) -> None:
    assert expand_hostlist(expr) == hosts
    assert hostlist_count(expr) == len(hosts)


@pytest.mark.parametrize(
    ("hosts", "expr"),
    [
        (["gpu01", "gpu02", "gpu03", "gpu04", "gpu07"], "gpu[01-04,07]"),
        (["node3", "login1", "node1", "node2"], "login1,node[1-3]"),
        (["a1-b3", "a1-b4", "a2-b3", "a2-b4"], "a[1-2]-b[3-4]"),
        (["rack1-gpu01", "rack1-gpu02", "rack2-gpu01", "rack2-gpu02"], "rack[1-2]-gpu[01-02]"),
        (["n08", "n09", "n10"], "n[08-10]"),
        (["n9", "n10", "n11"], "n[9-11]"),
        (["localhost"], "localhost"),
        (["gpu1", "gpu1"], "gpu1"),
        (["node1", "node01"], "node[1,01]"),
        (["gpu01-ib", "gpu02-ib"], "gpu[01-02]-ib"),
        ([], ""),
    ],
)
def test_compress_examples(hosts: list[str], expr: str) -> None:
    assert compress_hostlist(hosts) == expr


@pytest.mark.parametrize(
    "bad",
    [
        "a[",
        "a]",
        "a[]",
        "a[2-1]",
        "a[x]",
        "a[1-]",
        "a,,b",
        ",a",
        "a,",
        "a[1-2",
        "a b",
        "a[[1]]",
        "a[1-2]]",
    ],
)
def test_expand_rejects_malformed_and_names_input(bad: str) -> None:
    with pytest.raises(ValueError, match="hostlist") as info:
        expand_hostlist(bad)
    assert repr(bad.strip()) in str(info.value) or bad.strip() in str(info.value)


@pytest.mark.parametrize(
    ("text", "brackets", "nested", "parts_or_error"),
    [
        ("n[1,2],m", "[]", False, ["n[1,2]", "m"]),
        ("n[1,[2]]", "[]", False, "nested '['"),
        ("n1],m", "[]", False, "unbalanced ']'"),
        ("gpu:2(S:0,1),mps:100", "()", True, ["gpu:2(S:0,1)", "mps:100"]),
        ("gpu:2((S:0)),x", "()", True, ["gpu:2((S:0))", "x"]),
        ("gpu:2(S:0", "()", True, "unclosed '('"),
    ],
)
def test_split_top_level_serves_hostlists_and_gres(
    text: str, brackets: str, nested: bool, parts_or_error: list[str] | str
) -> None:
    """The one splitter behind hostlists ([], never nested) and GRES lists (parentheses)."""
    opener, closer = brackets
    if isinstance(parts_or_error, str):
        with pytest.raises(ValueError, match=f"{re.escape(parts_or_error)} in WHAT"):
            split_top_level(text, opener, closer, nested=nested, what="WHAT")
    else:
        assert split_top_level(text, opener, closer, nested=nested, what="WHAT") == parts_or_error


def test_expand_refuses_huge_ranges() -> None:
    with pytest.raises(ValueError, match="more than"):
        expand_hostlist("n[1-2000],m[1-2000]", max_hosts=3000)
    with pytest.raises(ValueError, match="too large"):
        expand_hostlist("n[0-999999999]")
    assert hostlist_count("a[1-1000]-b[1-1000]") == 1_000_000


@pytest.mark.parametrize("bad", [["a b"], ["x[1]"], [""], ["a,b"]])
def test_compress_rejects_unrepresentable_names(bad: list[str]) -> None:
    with pytest.raises(ValueError):
        compress_hostlist(bad)


def test_compress_rejects_a_bare_string() -> None:
    with pytest.raises(ValueError):
        compress_hostlist("gpu01")


def test_natural_key_orders_numbers_numerically() -> None:
    names = ["node10", "node2", "node1", "node01"]
    assert sorted(names, key=natural_key) == ["node1", "node01", "node2", "node10"]


# --- properties ------------------------------------------------------------------------

_prefix = st.sampled_from(["gpu", "node", "n", "rack1-gpu", "a-", "dgx-h200-", "x.y", ""])
_suffix = st.sampled_from(["", "-ib", "-b", ".cluster"])
_hostname = st.builds(
    lambda p, n, w, s: f"{p}{n:0{w}d}{s}",
    _prefix,
    st.integers(min_value=0, max_value=120),
    st.integers(min_value=1, max_value=4),
    _suffix,
) | st.sampled_from(["login", "localhost", "head-node", "gpu", "x"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_hostname, max_size=40))
def test_compress_then_expand_is_the_same_set(hosts: list[str]) -> None:
    expr = compress_hostlist(hosts)
    expanded = expand_hostlist(expr)
    assert sorted(expanded) == sorted(set(hosts))
    assert len(expanded) == len(set(hosts))  # no duplicates invented
    # Compressing again is stable.
    assert compress_hostlist(expanded) == expr


_range_body = st.lists(
    st.tuples(st.integers(0, 50), st.integers(0, 5), st.integers(1, 3)).map(
        lambda t: f"{t[0]:0{t[2]}d}" if t[1] == 0 else f"{t[0]:0{t[2]}d}-{t[0] + t[1]:0{t[2]}d}"
    ),
    min_size=1,
    max_size=4,
).map(",".join)
_host_expr = st.lists(
    st.one_of(
        st.sampled_from(["gpu", "rack", "-", "node", "x"]), _range_body.map(lambda b: f"[{b}]")
    ),
    min_size=1,
    max_size=3,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_host_expr, min_size=1, max_size=4).map(",".join))
def test_expand_then_compress_round_trip(expr: str) -> None:
    hosts = expand_hostlist(expr)
    assert hostlist_count(expr) == len(hosts)
    again = expand_hostlist(compress_hostlist(hosts))
    assert sorted(again) == sorted(set(hosts))


@settings(max_examples=500)
@given(st.text(alphabet="ab01-[],. x9", max_size=30))
def test_expand_raises_only_value_error(text: str) -> None:
    try:
        hosts = expand_hostlist(text)
    except ValueError:
        return
    assert all(h for h in hosts)
    assert len(hosts) == hostlist_count(text)


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_expand_any_text_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        expand_hostlist(text)
