"""Only Dagster's public API, and no process-wide warning filters: a private import breaks
silently on an upgrade, and a filter set at import hides warnings from every other library."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import dagster as dg

import mlops_assets
from mlops_assets.core.transport.hostexec import LocalRunner
from mlops_assets.resources.hpc_pipes import RunnerFileMessageReader

PACKAGE = Path(mlops_assets.__file__).parent


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(PACKAGE.rglob("*.py"))]


def test_no_private_dagster_import() -> None:
    private = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            private += [
                f"{path.relative_to(PACKAGE)}:{node.lineno} {n}"
                for n in names
                if n.startswith("dagster._")
            ]
    assert not private, private


def test_no_warning_filter_is_installed_by_the_package() -> None:
    calls = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"filterwarnings", "simplefilter"}
    ]
    assert not calls, calls


def test_pipes_handler_reads_our_reader_without_a_preview_warning() -> None:
    """The base reader's expected_writer_count is preview in 1.13 and warns on every read."""
    reader = RunnerFileMessageReader(LocalRunner(), "/nonexistent/messages")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        handler = dg.PipesMessageHandler(dg.build_op_context(), reader)
    assert reader.expected_writer_count == 1 and handler is not None
