"""The domain registry: the one list of the folders under defs/.

Each name in `GROUPS` is a folder `defs/<name>/` whose `definitions.py` builds its `defs`,
and the asset group every asset of that folder belongs to (folder = group). The same names
are the selection vocabulary of the UI, the CLI (`--select`) and headless runs.
`SERVICES` are folders without assets (sensors only). `AUTOMATION` holds the jobs and
schedules that span the domains; it is built over their merged definitions, so it is listed
apart. A new domain is a new folder plus its name here; a test fails on a folder that is
not listed.

Kept free of Dagster imports: the CLI reads it to print its help."""

from __future__ import annotations

PACKAGE = __name__

GROUPS: tuple[str, ...] = (
    "hpc",
    "cloud",
    "network",
    "storage",
    "datasets",
    "models",
    "containers",
    "smoke",
    "fleet",
    "registry",
    "serving",
)
SERVICES: tuple[str, ...] = ("observability",)
DOMAINS: tuple[str, ...] = GROUPS + SERVICES
AUTOMATION = "automation"


def module(folder: str) -> str:
    """The module that builds a folder's definitions."""
    return f"{PACKAGE}.{folder}.definitions"
