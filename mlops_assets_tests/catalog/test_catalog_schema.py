"""The schema package (catalog/schema/): every model of its modules is importable from
`mlops_assets.catalog.schema`, where the rest of the code imports it, and the constrained
types shared by several models (a relative path, a pinned revision, the DDP smokes'
rendezvous fields) check every model that uses them alike."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from mlops_assets.catalog import schema
from mlops_assets.catalog.schema import (
    BeegfsDirectories,
    CifarDdpSmoke,
    Dataset,
    DdpSmoke,
    HubSource,
    Model,
)

SHA = "0" * 40


def test_every_public_model_is_importable_from_the_package() -> None:
    defined = {}
    for info in pkgutil.iter_modules(schema.__path__):
        module = importlib.import_module(f"{schema.__name__}.{info.name}")
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__ and issubclass(obj, BaseModel):
                defined[name] = obj
    public = {n: c for n, c in defined.items() if not n.startswith("_")}
    assert len(public) >= 50 and "Catalog" in public
    assert {n: getattr(schema, n, None) for n in public} == public
    assert set(public) <= set(schema.__all__)


def _hub(**kw: Any) -> dict[str, Any]:
    return {"kind": "huggingface", "repo": "org/name", "revision": SHA, **kw}


@pytest.mark.parametrize("path", ["/abs", "a/../b", "a//b", "./a"])
def test_a_relative_path_is_checked_in_every_model_that_has_one(path: str) -> None:
    with pytest.raises(ValidationError, match="must be a relative path"):
        BeegfsDirectories(models=path)
    with pytest.raises(ValidationError, match="must be a relative path"):
        Dataset.model_validate({"source": _hub(), "path": path, "approx_size_mb": 1})
    assert Dataset.model_validate({"source": _hub(), "path": "a/b", "approx_size_mb": 1})


def test_a_revision_must_be_pinned_in_every_model_that_has_one() -> None:
    with pytest.raises(ValidationError, match="revision 'main' is not pinned"):
        HubSource.model_validate(_hub(revision="main"))
    model = {"repo": "org/name", "approx_size_mb": 1, "registered_name": "m"}
    with pytest.raises(ValidationError, match="revision 'main' is not pinned"):
        Model.model_validate({**model, "revision": "main"})
    assert Model.model_validate({**model, "revision": SHA}).revision == SHA


@pytest.mark.parametrize("smoke", [DdpSmoke, CifarDdpSmoke])
def test_both_ddp_smokes_share_their_rendezvous_fields(
    smoke: type[DdpSmoke] | type[CifarDdpSmoke],
) -> None:
    default = smoke()
    assert (default.nodes, default.join_timeout_s, default.timeout_s) == (2, 120, 300)
    assert default.min_speedup is None
    for bad in ({"nodes": 1}, {"timeout_s": 5}, {"join_timeout_s": 1}, {"min_speedup": 0}):
        with pytest.raises(ValidationError):
            smoke.model_validate(bad)
