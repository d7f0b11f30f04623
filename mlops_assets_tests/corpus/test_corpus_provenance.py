"""The corpus is real: every case names its source and product, holds an output and the
facts a correct reading gives, and the corpus is large enough to mean something."""

from __future__ import annotations

import pytest

from mlops_assets_tests.corpus import REQUIRED, cases

ALL = cases()


def test_corpus_has_at_least_150_real_outputs() -> None:
    assert len(ALL) >= 150, f"only {len(ALL)} corpus cases"


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_case_has_provenance_output_and_facts(case) -> None:  # type: ignore[no-untyped-def]
    missing = [k for k in REQUIRED if not case.meta.get(k)]
    assert not missing, f"{case.id}: missing {missing}"
    assert case.meta["tool"] == case.tool, (
        f"{case.id}: tool {case.meta['tool']!r} is not its folder"
    )
    assert str(case.meta["source"]).startswith(("https://", "http://", "man:", "github:")), case.id
    assert case.output.strip(), f"{case.id}: empty output"
    if case.verdict is not None:
        assert case.verdict in {"PASS", "WARN", "FAIL"}, case.id
