"""deploy/docker, deploy/helm and the lock, offline. No Docker engine and no helm binary are
available here, so: the Dockerfile is checked statically, the installs against uv.lock (with
the uv the lock pins, never the index); the Helm values against the official chart's own
values.schema.json (a pinned copy, fixtures/README.md): every key set exists there, with the
type the chart expects."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
VALUES = REPO / "deploy" / "helm" / "values.yaml"


def _lock_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlops_deploy_lock", REPO / "deploy" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock = _lock_module()


def _requirements(text: str) -> dict[str, Requirement]:
    """name -> requirement of an exported (hash-free) requirements text, markers kept."""
    out = {}
    for line in text.splitlines():
        if line and line[0].isalnum():
            req = Requirement(line)
            out[lock.normalize(req.name)] = req
    return out


def _version(req: Requirement) -> str:
    (spec,) = req.specifier
    assert spec.operator == "==", req
    return spec.version


def test_constraints_are_the_locks_orchestrator_set() -> None:
    text = (DOCKER / "constraints.txt").read_text()
    assert text == lock.constraints_text(), (
        "constraints.txt is stale: run python deploy/lock.py constraints"
    )
    pins = _requirements(re.sub(r" \\\n\s+--hash=\S+", "", text))
    for heavy in (
        "torch",
        "torchvision",
        "nvidia-cublas",
        "triton",
        "mlflow",
        "pyarrow",
        "pytest",
        "uv",
    ):
        assert heavy not in pins, heavy
    # every requirement carries the lock's hashes (pip --require-hashes refuses one without)
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    blocks = re.split(r"\n(?=[A-Za-z0-9])", body.strip())
    assert len(blocks) == len(pins) > 100
    assert all("--hash=sha256:" in b for b in blocks)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        req = Requirement(dep)
        assert req.specifier.contains(_version(pins[lock.normalize(req.name)])), dep


def test_payloads_group_keeps_the_projects_ranges() -> None:
    """The sandbox's HPC venv installs [payloads] from the lock: the payload imports must be
    locked at the ranges the orchestrator declares, or the two sides could disagree."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = {
        lock.normalize(Requirement(d).name): Requirement(d)
        for d in pyproject["project"]["dependencies"]
    }
    group = [Requirement(d) for d in pyproject["dependency-groups"]["payloads"]]
    shared = [r for r in group if lock.normalize(r.name) in project]
    assert {lock.normalize(r.name) for r in shared} == {"huggingface-hub", "dagster-pipes", "boto3"}
    for req in shared:
        assert req.specifier == project[lock.normalize(req.name)].specifier, req
    locked = _requirements(
        lock.export([], install_group=False, hashes=False, only_group="payloads")
    )
    orchestrator = _requirements(lock.export([], install_group=False, hashes=False))
    for name, req in locked.items():  # one resolution: the same versions on both sides
        assert name not in orchestrator or _version(orchestrator[name]) == _version(req), name


def test_lock_satisfies_pyproject_offline(tmp_path: Path) -> None:
    lock.check()
    # the same check on a pyproject whose boto3 range excludes the locked version must fail
    # (offline, it cannot quietly re-resolve)
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    pyproject = (tmp_path / "pyproject.toml").read_text()
    assert '"boto3>=1.40,<2"' in pyproject
    (tmp_path / "pyproject.toml").write_text(
        pyproject.replace('"boto3>=1.40,<2"', '"boto3>=1.40,<1.41"')
    )
    with pytest.raises(lock.LockError):
        lock.check(tmp_path)


def test_venv_matches_the_lock() -> None:
    every = _requirements(lock.export(["dev", "sandbox", "hpc"], install_group=True, hashes=False))
    needed = _requirements(lock.export(["dev"], install_group=True, hashes=False))
    wrong = []
    for name, req in every.items():
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name in needed:
                wrong.append(f"{name}: missing, locked {_version(req)}")
            continue
        if have != _version(req):
            wrong.append(f"{name}: {have}, locked {_version(req)}")
    assert not wrong, "the venv is not the lock's (run bash deploy/setup.sh): " + "; ".join(wrong)


def test_pins_read_from_the_lock_are_uvs_own_export() -> None:
    """setup.sh installs pip and uv from lock.pins (no uv yet): the same lines uv exports."""
    exported = lock._uv(
        "export",
        "--frozen",
        "--format",
        "requirements-txt",
        "--no-header",
        "--no-annotate",
        "--no-emit-project",
        "--only-group",
        lock.INSTALL_GROUP,
    )
    blocks = {b.split("==")[0]: b for b in re.split(r"\n(?=[A-Za-z0-9])", exported.strip())}
    for name in ("pip", "uv", "setuptools", "wheel"):
        ours = lock.pins([name]).strip().splitlines()
        theirs = blocks[name].splitlines()
        assert ours[0].split(" ")[0] == theirs[0].split(" ")[0], name
        assert sorted(h.strip().removesuffix(" \\") for h in ours[1:]) == sorted(
            h.strip().removesuffix(" \\") for h in theirs[1:]
        ), name
    with pytest.raises(lock.LockError, match="networkx: 2 entries"):
        lock.pins(["networkx"])  # forked by Python version: one line could not say which


def test_installs_never_resolve() -> None:
    """Every pip install in setup.sh and the image takes --no-deps (the lock holds the whole
    closure) and every one from a requirements file checks hashes."""
    setup = re.sub(r"#.*", "", (REPO / "deploy" / "setup.sh").read_text())
    assert re.search(r'^pip=\("\$py" -m pip install .*--no-deps\)$', setup, re.M)
    uses = re.findall(r'"\$\{pip\[@\]\}" .*', setup)
    assert len(uses) == 3 and "pip install" not in setup.replace('pip=("$py" -m pip install', "")
    docker = re.sub(r"#.*", "", (DOCKER / "Dockerfile").read_text()).replace("\\\n", " ")
    installs = re.findall(r"pip (?:install|wheel) [^&\n]*", docker)
    assert len(installs) == 4
    for line in uses + installs:
        assert line.startswith('"${pip') or "--no-deps" in line, line
        assert " -r " not in line or "--require-hashes" in line, line
    # --no-build-isolation builds with the locked [install] group: it must satisfy build-system
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    group = {
        lock.normalize(Requirement(d).name): Requirement(d)
        for d in pyproject["dependency-groups"]["install"]
    }
    for dep in pyproject["build-system"]["requires"]:
        req = Requirement(dep)
        assert group[lock.normalize(req.name)].specifier == req.specifier, dep


def test_dockerfile_non_root_code_server_pinned_base() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm$", text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert '"dagster", "code-server", "start"' in text and '"mlops_assets.definitions"' in text
    assert "--require-hashes --no-deps -r deploy/docker/constraints.txt" in text
    assert "hpc" not in re.sub(r"#.*", "", text)
    assert "EXPOSE 3030" in text
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[1 if ignore[0].startswith("#") else 0].startswith("#") or "**" in ignore
    assert {
        "!mlops_assets/**",
        "!deploy/docker/constraints.txt",
        "!uv.lock",
        "!deploy/lock.py",
    } <= set(ignore)


SCHEMA = Path(__file__).with_name("fixtures") / "dagster_chart_values.schema.excerpt.json"
# Keys the chart gained after the pinned schema copy, with the types of the chart's own model
# (helm/dagster/schema/.../subschema/concurrency.py; fixtures/README.md has the provenance).
LATER_THAN_THE_COPY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "concurrency": {
            "type": "object",
            "properties": {
                "enabled": {"type": "boolean"},
                "pools": {
                    "type": "object",
                    "properties": {
                        "defaultLimit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                        "granularity": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                        "opGranularityRunBuffer": {
                            "anyOf": [{"type": "integer"}, {"type": "null"}]
                        },
                    },
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        }
    },
}
_JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number"):
        ok = isinstance(value, int) or (kind == "number" and isinstance(value, float))
        return ok and not isinstance(value, bool)
    return isinstance(value, _JSON_TYPES[kind])


def schema_problems(value: Any, node: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    """What the chart's schema says against a value the project sets: a key the schema does
    not name (where it names its keys), a wrong type, a value outside an enum. A definition
    that only points at Kubernetes' own schema (a Probe, a Volume) is checked for its type
    and not below: the chart passes it to Kubernetes as it is."""
    while "$ref" in node and node["$ref"].startswith("#/definitions/"):
        name = node["$ref"].rsplit("/", 1)[1]
        assert name in defs, f"{path}: definition {name} is not in the pinned excerpt; extend it"
        node = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
    if "anyOf" in node:
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        tries = [schema_problems(value, {**rest, **b}, defs, path) for b in node["anyOf"]]
        if any(not t for t in tries):
            return []
        return [p for t in tries for p in t][:1] or [f"{path}: matches no branch"]
    kind = node.get("type")
    if kind is not None and not _is(value, kind):
        return [f"{path}: {value!r} is not of type {kind}"]
    if "enum" in node and value not in node["enum"]:
        return [f"{path}: {value!r} is not one of {node['enum']}"]
    out: list[str] = []
    if isinstance(value, list) and "items" in node:
        for i, item in enumerate(value):
            out += schema_problems(item, node["items"], defs, f"{path}[{i}]")
    if isinstance(value, dict):
        props = node.get("properties")
        extra = node.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if props and key in props:
                out += schema_problems(item, props[key], defs, where)
            elif isinstance(extra, dict):
                out += schema_problems(item, extra, defs, where)
            elif props or extra is False:  # an open map (a K8s object, labels) takes any key
                out.append(f"{where}: not a key of the chart")
    return out


def _chart_schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text())


def _values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _check(values: dict[str, Any]) -> list[str]:
    schema = _chart_schema()
    copy_keys = {k: v for k, v in values.items() if k not in LATER_THAN_THE_COPY["properties"]}
    later = {k: v for k, v in values.items() if k in LATER_THAN_THE_COPY["properties"]}
    return schema_problems(copy_keys, schema, schema["definitions"], "") + schema_problems(
        later, LATER_THAN_THE_COPY, {}, ""
    )


def test_every_value_set_exists_in_the_charts_schema_with_its_type() -> None:
    assert _check(_values()) == []
    # the keys only the later model names are really absent from the copy: no stale exception
    assert not set(LATER_THAN_THE_COPY["properties"]) & set(_chart_schema()["properties"])


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda v: v["dagsterWebserver"].update(replicaCont=1), "dagsterWebserver.replicaCont"),
        (lambda v: v["dagsterWebserver"]["service"].update(port="80"), "is not of type integer"),
        (lambda v: v.update(dagsterDeamon={}), "dagsterDeamon: not a key of the chart"),
        (lambda v: v["runLauncher"].update(type="K8sLauncher"), "is not one of"),
        (
            lambda v: v["dagster-user-deployments"]["deployments"][0].update(codeServerArgs="-m x"),
            "deployments[0].codeServerArgs",
        ),
        (
            lambda v: v["runLauncher"]["config"]["k8sRunLauncher"].update(envSecret=[]),
            "k8sRunLauncher.envSecret: not a key",
        ),
        (lambda v: v["concurrency"]["pools"].update(defaultLimit="4"), "defaultLimit"),
        (lambda v: v["concurrency"].update(pool={}), "concurrency.pool: not a key"),
    ],
)
def test_the_schema_check_catches_typos_and_wrong_types(edit: Any, expected: str) -> None:
    values = _values()
    edit(values)
    problems = _check(values)
    assert any(expected in p for p in problems), problems


def test_values_wire_image_launcher_postgres_queue_pools_and_secrets() -> None:
    v = _values()
    dep = v["dagster-user-deployments"]["deployments"][0]
    assert dep["codeServerArgs"][:2] == ["-m", "mlops_assets.definitions"] and dep["port"] == 3030
    assert (
        dep["podSecurityContext"]["runAsNonRoot"] is True
        and dep["podSecurityContext"]["runAsUser"] == 10001
    )
    assert {s["name"] for s in dep["envSecrets"]} == {"mlops-assets-minio", "mlops-assets-mlflow"}
    assert {vol["secret"]["secretName"] for vol in dep["volumes"] if "secret" in vol} == {
        "mlops-assets-hpc-ssh"
    }
    env = {e["name"]: e["value"] for e in dep["env"]}
    assert env["MLOPS_PROFILE"] == "production" and env["MLOPS_HPC_SSH_KEY"].startswith(
        "/var/run/secrets/mlops/ssh/"
    )
    assert (
        dep["labels"]
        == {"mlops-assets/role": "checks"}
        == v["runLauncher"]["config"]["k8sRunLauncher"]["labels"]
    )
    assert v["runLauncher"]["type"] == "K8sRunLauncher"
    pod = v["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"]
    assert pod["serviceAccountName"] == "mlops-assets-checks"
    assert v["postgresql"]["enabled"] is False and v["generatePostgresqlPasswordSecret"] is False
    assert v["postgresql"]["postgresqlPassword"] == ""
    rc = v["dagsterDaemon"]["runCoordinator"]
    assert rc["type"] == "QueuedRunCoordinator"
    assert {t["key"] for t in rc["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]} >= {
        "mlops/domain",
        "mlops/slurm",
    }
    assert (
        v["dagsterDaemon"]["runMonitoring"]["enabled"]
        and v["dagsterDaemon"]["runRetries"]["enabled"]
    )
    assert v["concurrency"]["enabled"] and v["telemetry"]["enabled"] is False
    text = VALUES.read_text()
    for pool in ("slurm_submissions", "hub_downloads"):
        assert pool in text


def test_values_and_production_instance_agree() -> None:
    v = _values()
    prod = yaml.safe_load((REPO / "deploy" / "dagster-production.yaml").read_text())
    q = v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert q["maxConcurrentRuns"] == prod["concurrency"]["runs"]["max_concurrent_runs"]
    assert q["tagConcurrencyLimits"] == prod["concurrency"]["runs"]["tag_concurrency_limits"]
    assert (
        v["concurrency"]["pools"]["defaultLimit"] == prod["concurrency"]["pools"]["default_limit"]
    )


def test_every_value_is_commented() -> None:
    lines = VALUES.read_text().splitlines()
    sections = [i for i, line in enumerate(lines) if re.match(r"^[A-Za-z-]+:", line)]
    for i in sections:
        assert lines[i - 1].startswith("#") or (
            lines[i - 1].strip() == "" and lines[i - 2].startswith("#")
        ), lines[i]
