"""Modules imported when first used, not when first named.

The code location names every probe at load but runs none of them: the parsers and rules
behind the probes (their dataclasses and compiled patterns) are a large share of a load
and are needed only in a run (bench/load_time.py). `defer` puts a stand-in for each named
module in `sys.modules`, so `from mlops_assets.core import serving` binds it at no cost; the
first attribute read imports the real module, once. Checks probe concurrently: the import runs
under Python's own module lock, and a stand-in takes the module's names only once it is whole.
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
    """The real module behind `module` (itself if it is real), imported if it was not.

    Only taking the stand-in out of `sys.modules` holds this module's lock; the import runs
    under Python's own lock for that module, which makes a racing thread wait for the whole
    module and sees through import cycles between threads. Holding a lock of ours across the
    import could deadlock: a thread importing a module that reads a deferred name would wait
    for it while we wait for that module."""
    if not isinstance(module, _Deferred):
        return module
    name = module.__name__
    with _LOCK:
        if sys.modules.get(name) is module:
            del sys.modules[name]
    try:
        real = importlib.import_module(name)
    except BaseException:
        with _LOCK:
            sys.modules.setdefault(name, module)  # a later read tries again and raises again
        raise
    if real is not module:
        module.__dict__.update(real.__dict__)
    return real


def defer(names: Iterable[str]) -> None:
    """Stand-ins for the modules not imported yet; an imported one stays as it is."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = importlib.import_module(parent_name)
        with _LOCK:
            if name not in sys.modules:
                stand_in = sys.modules[name] = _Deferred(name)
                # `import a.b.c` reads c as an attribute of a.b; the real import resets it
                setattr(parent, child, stand_in)


def deferred(name: str) -> bool:
    """Whether `name` is still a stand-in: what the load left unimported (test_core_lazy)."""
    return isinstance(sys.modules.get(name), _Deferred)
