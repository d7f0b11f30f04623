"""Modules imported when first used, not when first named.

The code location names every probe at load but runs none of them: the parsers and rules
behind the probes (their dataclasses and compiled patterns) are a large share of a load
and are needed only in a run (bench/load_time.py). `defer` puts a stand-in for each named
module in `sys.modules`, so `from mlops_assets.core import serving` binds it at no cost; the
first attribute read imports the real module, once. Checks probe concurrently, so the import
runs under one lock and a stand-in takes the module's names only once the module is whole.
Only for pure modules: an import with side effects would run late. No Dagster imports.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from collections.abc import Iterable

_LOCK = threading.RLock()


class _Deferred(types.ModuleType):
    """A module's stand-in until one of its names is read."""

    def __getattr__(self, attr: str) -> object:
        # only called for a name the stand-in lacks: before the import, or a missing name
        return getattr(load(self), attr)


def load(module: types.ModuleType) -> types.ModuleType:
    """The real module behind `module` (itself if it is real), imported if it was not."""
    if not isinstance(module, _Deferred):
        return module
    with _LOCK:
        name = module.__name__
        if sys.modules.get(name) is module:
            del sys.modules[name]
            try:
                real = importlib.import_module(name)
            except BaseException:
                sys.modules[name] = module  # a later read tries again and raises again
                raise
            module.__dict__.update(real.__dict__)
        return sys.modules[name]


def defer(names: Iterable[str]) -> None:
    """Stand-ins for the modules not imported yet; an imported one stays as it is."""
    with _LOCK:
        for name in names:
            if name not in sys.modules:
                parent, _, child = name.rpartition(".")
                stand_in = sys.modules[name] = _Deferred(name)
                # `import a.b.c` reads c as an attribute of a.b; the real import resets it
                setattr(importlib.import_module(parent), child, stand_in)


def deferred(name: str) -> bool:
    """Whether `name` is still a stand-in: what the load left unimported (test_core_lazy)."""
    return isinstance(sys.modules.get(name), _Deferred)
