"""The catalog's derived paths and keys are the bytes the code joined by hand before they
became schema methods (the old joins are restated here as the reference), for both shipped
profiles and for a root written with a trailing slash."""

from __future__ import annotations

import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.catalog.schema import Catalog, HubSource


def _catalogs() -> list[tuple[str, Catalog]]:
    out = []
    for profile in ("sandbox", "production"):
        cat = load_catalog(profile=profile, env={}).catalog
        out.append((profile, cat))
        b = cat.hpc.beegfs.model_copy(update={"root": cat.hpc.beegfs.root + "/"})
        out.append(
            (
                profile + "-slash",
                cat.model_copy(update={"hpc": cat.hpc.model_copy(update={"beegfs": b})}),
            )
        )
    return out


CATALOGS = _catalogs()


def _old_dirs(cat: Catalog) -> dict[str, str]:
    b = cat.hpc.beegfs
    return {name: f"{b.root.rstrip('/')}/{rel}" for name, rel in b.directories.model_dump().items()}


def _old_hub(cat: Catalog, kind: str, repo: str, revision: str) -> tuple[str, str]:
    base = f"{_old_dirs(cat)['huggingface']}/hub/{kind}s--{repo.replace('/', '--')}"
    return f"{base}/snapshots/{revision}", f"{base}/.mlops/{revision}.json"


@pytest.mark.parametrize(("label", "cat"), CATALOGS, ids=[label for label, _ in CATALOGS])
def test_directories_are_the_old_join(label: str, cat: Catalog) -> None:
    b = cat.hpc.beegfs
    old = _old_dirs(cat)
    assert b.role_directories() == old and list(b.role_directories()) == list(old)
    assert {role: b.directory(role) for role in old} == old
    assert b.hub_cache() == old["huggingface"] + "/hub"
    assert "//" not in "".join(old.values())


@pytest.mark.parametrize(("label", "cat"), CATALOGS, ids=[label for label, _ in CATALOGS])
def test_staged_paths_are_the_old_join(label: str, cat: Catalog) -> None:
    root = cat.hpc.beegfs.root.rstrip("/")
    for name, d in cat.datasets.items():
        if isinstance(d.source, HubSource):
            want = _old_hub(cat, "dataset", d.source.repo, d.source.revision)
        else:
            want = (f"{root}/{d.path}", f"{root}/{d.path}/.mlops-manifest.json")
        assert (cat.dataset_path(name), cat.dataset_manifest(name)) == want
    for name, m in cat.models.items():
        assert (cat.model_path(name), cat.model_manifest(name)) == _old_hub(
            cat, "model", m.repo, m.revision
        )
    for name, ct in cat.containers.items():
        assert cat.container_path(name) == f"{_old_dirs(cat)['containers']}/{ct.file}"
    scripts = _old_dirs(cat)["scripts"]
    assert cat.hpc.beegfs.manifest_path(scripts) == f"{scripts}/.mlops-manifest.json"


def test_keys_are_the_old_strings_and_unknown_names_fail() -> None:
    cat = CATALOGS[0][1]
    assert [cat.dataset_key(n) for n in cat.datasets] == [f"dataset_{n}" for n in cat.datasets]
    assert [cat.model_key(n) for n in cat.models] == [f"model_{n}" for n in cat.models]
    assert [cat.container_key(n) for n in cat.containers] == [
        f"container_{n}" for n in cat.containers
    ]
    with pytest.raises(KeyError):
        cat.container_key("no_such_image")
    with pytest.raises(KeyError, match="one of datasets"):
        cat.hpc.beegfs.directory("nope")


def test_bucket_by_name_carries_its_asset_key() -> None:
    cat = CATALOGS[0][1]
    assert cat.bucket("datasets").asset_key == "bucket_datasets"
    with pytest.raises(KeyError, match="no bucket 'nope'"):
        cat.bucket("nope")


def test_shipped_payload_files_do_not_import_the_catalog() -> None:
    """The HPC side runs these without mlops_assets: the catalog's answers reach them as
    arguments, never as an import."""
    import ast

    from mlops_assets.resources.shipping import SHIPPED

    assert "mlops_manifest.py" in SHIPPED
    for name, spec in SHIPPED.items():
        tree = ast.parse(spec.local().read_text())
        for node in ast.walk(tree):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            if isinstance(node, ast.ImportFrom) and node.module == "mlops_assets":
                mods += [f"mlops_assets.{a.name}" for a in node.names]
            # the source-tree fallback to mlops_assets.core.manifest is allowed; the catalog is not
            assert not any(m.startswith("mlops_assets.catalog") for m in mods), (name, spec, mods)
