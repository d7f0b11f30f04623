"""Pure rules of the models' MinIO copy and MLflow registration (no services)."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from mlops_assets.core import staging_plan
from mlops_assets.core.manifest import FileEntry, Manifest
from mlops_assets.core.probes import model_registry
from mlops_assets.core.transport.http import HttpAnswer

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


class FakeMlflow:
    """The six REST endpoints model_registry uses, in memory."""

    def __init__(self) -> None:
        self.models: set[str] = set()
        self.versions: list[dict[str, Any]] = []
        self.calls: list[str] = []

    def _ans(self, status: int, doc: dict[str, Any]) -> HttpAnswer:
        return HttpAnswer("x", status, json.dumps(doc).encode(), {}, 0.0)

    def get(self, path: str) -> HttpAnswer:
        self.calls.append("GET " + path.split("?")[0])
        q = dict(urllib.parse.parse_qsl(path.split("?", 1)[1]))
        if "registered-models/get" in path:
            return (
                self._ans(200, {})
                if q["name"] in self.models
                else self._ans(404, {"error_code": "RESOURCE_DOES_NOT_EXIST"})
            )
        name = q["filter"].split("'")[1]
        return self._ans(200, {"model_versions": [v for v in self.versions if v["name"] == name]})

    def call(
        self, method: str, path: str, *, headers: Any = None, body: bytes | None = None
    ) -> HttpAnswer:
        self.calls.append(f"{method} {path}")
        doc = json.loads(body or b"{}")
        if path.endswith("registered-models/create"):
            self.models.add(doc["name"])
            return self._ans(200, {})
        if path.endswith("model-versions/create"):
            v = {
                "name": doc["name"],
                "version": str(len(self.versions) + 1),
                "source": doc["source"],
                "tags": doc["tags"],
            }
            self.versions.append(v)
            return self._ans(200, {"model_version": v})
        if path.endswith("model-versions/set-tag"):
            v = next(v for v in self.versions if v["version"] == doc["version"])
            v["tags"] = [t for t in v["tags"] if t["key"] != doc["key"]] + [
                {"key": doc["key"], "value": doc["value"]}
            ]
            return self._ans(200, {})
        return self._ans(404, {})


def test_register_creates_once_then_reuses_by_digest() -> None:
    api = FakeMlflow()
    tags = model_registry.version_tags(
        "openai-community/gpt2", "rev", "d" * 64, "s3://models/gpt2/rev/"
    )
    first = model_registry.register(api, "gpt2", "s3://models/gpt2/rev/", tags)
    assert first.created and first.version == "1" and api.models == {"gpt2"}
    again = model_registry.register(api, "gpt2", "s3://models/gpt2/rev/", tags)
    assert not again.created and again.version == "1" and len(api.versions) == 1
    other = model_registry.register(
        api, "gpt2", "s3://models/gpt2/rev/", {**tags, "manifest_digest": "e" * 64}
    )
    assert other.created and other.version == "2"


def test_version_check_requires_the_current_digest() -> None:
    api = FakeMlflow()
    tags = model_registry.version_tags("r", "rev", "d" * 64, "u")
    model_registry.register(api, "gpt2", "u", tags)
    found = model_registry.versions(api, "gpt2")
    assert model_registry.version_outcome(found, "gpt2", "rev", "d" * 64).passed
    stale = model_registry.version_outcome(found, "gpt2", "rev", "f" * 64)
    assert not stale.passed and "other manifest digests" in stale.detail
    assert not model_registry.version_outcome(found, "gpt2", "other", "d" * 64).passed
