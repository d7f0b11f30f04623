"""The serving section of the catalog: the names that become a Kubernetes object's name and
namespace, and the local server's port, are refused when Kubernetes or the OS would refuse
them, before anything is applied or started; in a catalog file, the key path is named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from mlops_assets.catalog.loader import DEFAULT_CATALOG, CatalogError, load_catalog
from mlops_assets.catalog.schema import LocalModelServer, ServedModel, Serving

BASE = yaml.safe_load(DEFAULT_CATALOG.read_text())


def test_defaults_and_the_shipped_profiles() -> None:
    d = Serving().mnist
    assert (d.isvc_name, d.namespace, d.model_name, d.deploy) == (
        "mnist-simplecnn",
        "mlops",
        "mnist",
        "kserve",
    )
    assert d.local.port == 8085 and d.local.state_dir is None
    assert load_catalog(profile="production", env={}).catalog.serving.mnist.deploy == "kserve"
    sandbox = load_catalog(profile="sandbox", env={}).catalog.serving.mnist
    assert sandbox.deploy == "local" and sandbox.local.prometheus_sd_file


@pytest.mark.parametrize(
    "name",
    [
        "mnist-simplecnn",
        "m",
        "a" + "b" * 61 + "c",  # 63: the DNS-1035 label limit
        "mnist2",
    ],
)
def test_good_isvc_names(name: str) -> None:
    assert ServedModel(isvc_name=name).isvc_name == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Mnist",  # upper case
        "2mnist",  # DNS-1035: starts with a letter
        "mnist-",  # ends with a letter or digit
        "mnist_cnn",
        "mnist.cnn",
        "a" * 64,
        "mnist\n",
    ],
)
def test_bad_isvc_name_is_refused(name: str) -> None:
    with pytest.raises(ValidationError) as err:
        ServedModel(isvc_name=name)
    assert [e["loc"] for e in err.value.errors()] == [("isvc_name",)]


@pytest.mark.parametrize("ns", ["", "Mlops", "-mlops", "mlops-", "ml_ops", "a" * 64, "ml ops"])
def test_bad_namespace_is_refused(ns: str) -> None:
    with pytest.raises(ValidationError) as err:
        ServedModel(namespace=ns)
    assert [e["loc"] for e in err.value.errors()] == [("namespace",)]


def test_namespace_may_start_with_a_digit() -> None:
    assert ServedModel(namespace="2024-models").namespace == "2024-models"  # DNS-1123


@pytest.mark.parametrize("port", [0, 80, 1023, 65536, -1, "http"])
def test_bad_port_is_refused(port: Any) -> None:
    with pytest.raises(ValidationError) as err:
        ServedModel.model_validate({"local": {"port": port}})
    assert [e["loc"] for e in err.value.errors()] == [("local", "port")]


@pytest.mark.parametrize("port", [1024, 8085, 65535])
def test_good_ports(port: int) -> None:
    assert LocalModelServer(port=port).port == port


def test_unknown_keys_and_deploy_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        ServedModel.model_validate({"deploy": "docker"})
    with pytest.raises(ValidationError):
        ServedModel.model_validate({"isvc": "mnist"})  # a typo is not silently ignored


def test_bad_serving_values_in_a_catalog_file_name_their_keys(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["serving"]["mnist"].update({"isvc_name": "MNIST_cnn", "namespace": "ml.ops"})
    data["serving"]["mnist"]["local"] = {"port": 80}
    p = tmp_path / "platform.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(CatalogError) as err:
        load_catalog(p, "production", env={})
    msg = str(err.value)
    for key in ("serving.mnist.isvc_name", "serving.mnist.namespace", "serving.mnist.local.port"):
        assert key in msg, msg
