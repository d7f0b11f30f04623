"""Helpers for tests on the multi-node sandbox (deploy/sandbox: 4 SLURM nodes in namespaces)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
NODE_SH = REPO / "deploy" / "sandbox" / "node.sh"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(why: str) -> NoReturn:
    """A missing node is a skip by hand and a defect in CI: CI brings the multi-node sandbox
    up, so every case must run there."""
    if in_ci():
        pytest.fail(f"{why} (CI=true: the multi-node sandbox must provide it)", pytrace=False)
    pytest.skip(why)


def node_sh(*args: str, timeout: float = 120) -> str:
    """Run a fault drill of deploy/sandbox/node.sh (argv list: no shell); its output, or a
    failure naming the drill and its output."""
    res = subprocess.run(
        ["bash", str(NODE_SH), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert res.returncode == 0, f"node.sh {' '.join(args)} failed ({res.returncode}):\n{res.stderr}"
    return res.stdout + res.stderr


def node_state(node: str) -> str:
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-n", node, "-o", "%T"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout.split()
    return out[0] if out else ""
