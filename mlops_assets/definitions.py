"""The one Definitions object: every domain under defs/, plus the resources the catalog
implies. Heavy libraries stay unimported until a check or asset runs.

A domain is a package `defs/<name>/` whose `definitions.py` builds its `defs`, listed once in
the registry (`mlops_assets/defs/__init__.py`: folder = asset group); `defs/automation` then
builds the jobs and schedules that span them over their merged definitions. They are imported
directly rather than through `dg.load_from_defs_folder`:
each module already holds its Definitions, and the defs-folder loader adds nothing to them
but component scanning (JSON descriptions of Dagster's built-in component types), about a
third of a second at every load (docs/benchmarks.md). `dg` and `dagster dev` load this module
(`[tool.dg.project]` in pyproject.toml)."""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from mlops_assets.core.lazy import defer
from mlops_assets.defs import AUTOMATION, DOMAINS, module

# What the probes parse and judge with: pure modules a run needs and the load does not.
# Each is imported on its first use (core/lazy.py), not while the definitions are built.
RUN_ONLY = (
    "mlops_assets.core.parse.apptainer",
    "mlops_assets.core.parse.nvidia_smi",
    "mlops_assets.core.parse.storage",
    "mlops_assets.core.parse.versions",
    "mlops_assets.core.parse.slurm.jobs",
    "mlops_assets.core.parse.slurm.labelled",
    "mlops_assets.core.parse.slurm.nodes",
    "mlops_assets.core.parse.slurm.states",
    "mlops_assets.core.parse.slurm.text",
    "mlops_assets.core.parse.slurm.units",
    "mlops_assets.core.ddp_rules",
    "mlops_assets.core.fleet",
    "mlops_assets.core.load_rules",
    "mlops_assets.core.metrics",
    "mlops_assets.core.node_watch",
    "mlops_assets.core.probes.node_step",
    "mlops_assets.core.quarantine",
    "mlops_assets.core.registry_rules",
    "mlops_assets.core.serving",
    "mlops_assets.core.slurm_jobs",
    "mlops_assets.core.smoke_rules",
    "mlops_assets.core.training_reuse",
    "mlops_assets.core.transport.http",
)
defer(RUN_ONLY)


def domain_modules() -> list[str]:
    """The module of every domain in the registry, in its order (automation apart)."""
    return [module(name) for name in DOMAINS]


_frozen = False


@contextmanager
def _no_gc_pause() -> Iterator[None]:
    """Importing the domains and building their definitions allocates many objects that all
    stay alive; a full cyclic collection in the middle of it walks Dagster's whole heap and
    frees nothing (gc.get_stats(): collected 0), 0.06-0.14 s of each load. The collector is
    held off for this build (the imports happen inside it) and left as it was found. The
    first build then freezes what exists (gc.freeze: Dagster's modules and these
    definitions, which live as long as the process), so no later collection walks them
    again: resolving the asset graph right after took 0.15 s, 0.05 s with the freeze."""
    global _frozen
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if not _frozen:
            gc.freeze()
            _frozen = True
        if was_enabled:
            gc.enable()


@dg.definitions
def defs() -> dg.Definitions:
    with _no_gc_pause():
        from mlops_assets.platform import active, build_resources

        catalog = active().catalog
        domains = dg.Definitions.merge(
            *(importlib.import_module(name).defs for name in domain_modules())
        )
        automation = importlib.import_module(module(AUTOMATION)).build(catalog, domains)
        return dg.Definitions.merge(
            domains, automation, dg.Definitions(resources=build_resources(catalog))
        )
