"""A corpus of real command outputs from other clusters, each with its provenance and the
facts a correct reading must give. Production parsers and rules are tried against it.

Layout: ``<tool>/<case>.txt`` is the output as printed (verbatim, or trimmed where the
YAML says so) and ``<case>.yaml`` beside it says where it came from and what it means::

    tool: sacct                      # the folder name
    command: sacct -P -n -o JobID,State,ExitCode
    product: Slurm 23.02.6           # product and version that printed it, as known
    source: https://...              # where it was found (page, issue, man page, repo file)
    retrieved: 2026-12-06
    trimmed: false                   # true when lines were left out; notes say which
    notes: free text
    facts: {...}                     # what a correct parser must read (tool-specific keys)
    verdict: FAIL                    # optional: the rule's verdict on it (PASS/WARN/FAIL)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent
REQUIRED = ("tool", "command", "product", "source", "retrieved", "facts")


@dataclass(frozen=True)
class Case:
    tool: str
    name: str
    output: str
    meta: dict[str, Any] = field(repr=False)

    @property
    def facts(self) -> dict[str, Any]:
        return dict(self.meta.get("facts") or {})

    @property
    def verdict(self) -> str | None:
        v = self.meta.get("verdict")
        return str(v) if v is not None else None

    @property
    def id(self) -> str:
        return f"{self.tool}/{self.name}"


def load(path: Path) -> Case:
    meta = yaml.safe_load(path.read_text()) or {}
    out = path.with_suffix(".txt")
    if not out.exists():
        out = path.with_suffix(".json")
    text = out.read_text() if out.exists() else str(meta.get("output", ""))
    return Case(tool=path.parent.name, name=path.stem, output=text, meta=meta)


def cases(tool: str | None = None) -> list[Case]:
    """Every case, or those of one tool folder, in a stable order."""
    base = ROOT / tool if tool else ROOT
    return [load(p) for p in sorted(base.rglob("*.yaml"))]
