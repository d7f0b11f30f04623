"""Pure rules of the models' MinIO copy and MLflow registration (no services)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlops_assets.core import staging_plan
from mlops_assets.core.manifest import FileEntry, Manifest
from mlops_assets.core.probes import model_registry

MAN = Manifest.of(
    [FileEntry("config.json", 10, "a" * 64), FileEntry("model.safetensors", 100, "b" * 64)]
)
PREFIX = "gpt2/rev/"


def _heads(**override: Any) -> dict[str, Any]:
    heads: dict[str, Any] = {
        PREFIX + "config.json": (10, {"sha256": "a" * 64}),
        PREFIX + "model.safetensors": (100, {"sha256": "b" * 64}),
        PREFIX + "_manifest.json": (5, {"manifest-digest": MAN.digest}),
    }
    heads.update({PREFIX + k.replace("__", "."): v for k, v in override.items()})
    return heads


def test_copy_matching_the_manifest_passes() -> None:
    out = staging_plan.s3_copy_outcome(MAN, PREFIX, _heads(), "s3://models/gpt2/rev/", "model_gpt2")
    assert out.passed and out.measured == 0


def test_missing_and_changed_keys_are_named() -> None:
    heads = _heads(config__json=None, model__safetensors=(100, {"sha256": "c" * 64}))
    out = staging_plan.s3_copy_outcome(MAN, PREFIX, heads, "s3://models/gpt2/rev/", "model_gpt2")
    assert not out.passed and out.measured == 2
    assert "missing: config.json" in out.detail and "changed: model.safetensors" in out.detail


def test_manifest_object_missing_or_stale_means_incomplete() -> None:
    out = staging_plan.s3_copy_outcome(MAN, PREFIX, _heads(_manifest__json=None), "u", "model_gpt2")
    assert not out.passed and "missing: _manifest.json" in out.detail
    out = staging_plan.s3_copy_outcome(
        MAN, PREFIX, _heads(_manifest__json=(5, {"manifest-digest": "x"})), "u", "model_gpt2"
    )
    assert not out.passed and "changed: _manifest.json" in out.detail


@pytest.fixture
def registry(tmp_path: Path) -> str:
    """A real MLflow registry (MLflow's own SQLite store), no server."""
    return f"sqlite:///{tmp_path}/mlflow.db"


def test_register_creates_once_then_reuses_by_digest_and_moves_the_alias(registry: str) -> None:
    tags = model_registry.version_tags(
        "openai-community/gpt2", "rev", "d" * 64, "s3://models/gpt2/rev/"
    )
    first = model_registry.register(registry, "gpt2", "s3://models/gpt2/rev/", tags)
    assert first.created and first.version == "1"
    again = model_registry.register(registry, "gpt2", "s3://models/gpt2/rev/", tags)
    assert not again.created and again.version == "1"
    assert len(model_registry.versions(registry, "gpt2")) == 1
    other = model_registry.register(
        registry, "gpt2", "s3://models/gpt2/rev/", {**tags, "manifest_digest": "e" * 64}
    )
    assert other.created and other.version == "2"
    found = {v.version: v for v in model_registry.versions(registry, "gpt2")}
    assert found["2"].aliases == (model_registry.ALIAS,) and found["1"].aliases == ()
    assert found["1"].tags["manifest_digest"] == "d" * 64 and found["1"].source.startswith("s3://")
    back = model_registry.register(registry, "gpt2", "s3://models/gpt2/rev/", tags)
    assert not back.created and back.version == "1"
    after = {v.version: v.aliases for v in model_registry.versions(registry, "gpt2")}
    assert after == {"1": (model_registry.ALIAS,), "2": ()}


def test_version_check_requires_the_current_digest_and_the_alias_on_it(registry: str) -> None:
    tags = model_registry.version_tags("r", "rev", "d" * 64, "u")
    model_registry.register(registry, "gpt2", "u", tags)
    found = model_registry.versions(registry, "gpt2")
    ok = model_registry.version_outcome(found, "gpt2", "rev", "d" * 64)
    assert ok.passed and "@staged -> 1" in ok.detail
    stale = model_registry.version_outcome(found, "gpt2", "rev", "f" * 64)
    assert not stale.passed and "other manifest digests" in stale.detail
    assert not model_registry.version_outcome(found, "gpt2", "other", "d" * 64).passed
    model_registry.register(registry, "gpt2", "u", {**tags, "manifest_digest": "e" * 64})
    moved = model_registry.version_outcome(
        model_registry.versions(registry, "gpt2"), "gpt2", "rev", "d" * 64
    )
    assert not moved.passed and "@staged points at version 2" in moved.detail
    assert model_registry.versions(registry, "absent") == []


class _Api:
    """What the MLflow resource offers the registry code: a URL, a timeout, a token."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url, self.timeout_s = url, timeout_s

    def bearer(self) -> str | None:
        return None


def test_a_closed_port_fails_the_check_at_once_and_the_registration_after_two_retries() -> None:
    import time

    api = _Api("http://127.0.0.1:9", 2.0)
    started = time.monotonic()
    with pytest.raises(model_registry.RegistryError) as err:
        model_registry.versions(api, "gpt2")
    assert time.monotonic() - started < 2
    assert "no answer within 2s" in str(err.value) and "tracking server" in err.value.hint
    started = time.monotonic()
    with pytest.raises(model_registry.RegistryError) as err:
        model_registry.register(api, "gpt2", "u", model_registry.version_tags("r", "v", "d", "u"))
    assert "(2 retries)" in str(err.value) and time.monotonic() - started < 20


def test_a_server_that_accepts_and_never_answers_fails_within_its_timeout() -> None:
    """The worst kind of dead service (a frozen process whose port still accepts): MLflow's
    own client, bounded by the resource's timeout, gives up within it; no retry for a check."""
    import socket
    import time

    from mlops_assets.catalog.loader import load_catalog
    from mlops_assets.core.checks import ProbeFailed
    from mlops_assets.core.probes import cloud

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        api: Any = _Api(f"http://127.0.0.1:{srv.getsockname()[1]}", 2.0)
        catalog = load_catalog(None, "sandbox").catalog
        for call in (
            lambda: model_registry.versions(api, "gpt2"),
            lambda: cloud.mlflow_artifact_round_trip(api, catalog),
        ):
            started = time.monotonic()
            with pytest.raises(ProbeFailed, match="no answer within 2s"):
                call()
            assert time.monotonic() - started < 2 + 1.5
