"""deploy/docker and deploy/helm, offline. No Docker engine, no helm binary and no copy of the
chart's values.schema.json are available here, so: the Dockerfile is checked statically and the
constraints against the venv; the Helm values are checked against the key paths the official
chart 1.13.x documents (its values.yaml / schema models), listed below by hand."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
VALUES = REPO / "deploy" / "helm" / "values.yaml"


def _pins() -> dict[str, str]:
    out = {}
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[name] = version
    return out


def test_constraints_are_the_venvs_orchestrator_closure_and_up_to_date(tmp_path: Path) -> None:
    pins = _pins()
    for heavy in ("torch", "torchvision", "nvidia-cublas-cu12", "triton", "mlflow", "pyarrow"):
        assert heavy not in pins, heavy
    for name, version in pins.items():
        assert metadata.version(name) == version, name
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for req in project["dependencies"]:
        m = re.match(r"([A-Za-z0-9_.-]+)==([^,;\s]+)", req)
        if m:
            assert pins[re.sub(r"[-_.]+", "-", m[1]).lower()] == m[2], req
    before = (DOCKER / "constraints.txt").read_text()
    out = subprocess.run([sys.executable, str(DOCKER / "lock.py")], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert (DOCKER / "constraints.txt").read_text() == before, "constraints.txt is stale: run deploy/docker/lock.py"


def test_dockerfile_non_root_code_server_pinned_base() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm$", text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert '"dagster", "code-server", "start"' in text and '"mlops_assets.definitions"' in text
    assert "-c constraints.txt" in text and "hpc" not in re.sub(r"#.*", "", text)
    assert "EXPOSE 3030" in text
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[1 if ignore[0].startswith("#") else 0].startswith("#") or "**" in ignore
    assert "!mlops_assets/**" in ignore and "!deploy/docker/constraints.txt" in ignore


# Key paths of the official chart (dagster/dagster 1.13.x values.yaml and its schema models).
CHART_KEYS = {
    "global.postgresqlSecretName",
    "dagsterWebserver.replicaCount", "dagsterWebserver.service.port",
    "dagster-user-deployments.enabled", "dagster-user-deployments.enableSubchart", "dagster-user-deployments.deployments",
    "runLauncher.type", "runLauncher.config.k8sRunLauncher.jobNamespace", "runLauncher.config.k8sRunLauncher.loadInclusterConfig",
    "runLauncher.config.k8sRunLauncher.envSecrets", "runLauncher.config.k8sRunLauncher.labels", "runLauncher.config.k8sRunLauncher.resources",
    "runLauncher.config.k8sRunLauncher.runK8sConfig", "runLauncher.config.k8sRunLauncher.failPodOnRunFailure",
    "postgresql.enabled", "postgresql.postgresqlHost", "postgresql.postgresqlUsername", "postgresql.postgresqlPassword",
    "postgresql.postgresqlDatabase", "postgresql.postgresqlParams", "postgresql.service.port", "generatePostgresqlPasswordSecret",
    "dagsterDaemon.enabled", "dagsterDaemon.runCoordinator.enabled", "dagsterDaemon.runCoordinator.type",
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.maxConcurrentRuns",
    "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.tagConcurrencyLimits",
    "dagsterDaemon.runMonitoring", "dagsterDaemon.runRetries",
    "concurrency.enabled", "concurrency.pools.defaultLimit", "concurrency.pools.granularity",
    "telemetry.enabled",
}
USER_DEPLOYMENT_KEYS = {
    "name", "image", "port", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns", "env", "envConfigMaps",
    "envSecrets", "annotations", "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
    "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts", "volumes", "schedulerName",
}
OPEN_MAPS = {"runLauncher.config.k8sRunLauncher.runK8sConfig", "dagsterDaemon.runMonitoring", "dagsterDaemon.runRetries",
             "runLauncher.config.k8sRunLauncher.labels", "runLauncher.config.k8sRunLauncher.resources", "postgresql.postgresqlParams"}


def _leaves(node: Any, prefix: str = "") -> set[str]:
    if prefix in OPEN_MAPS or prefix.endswith(".deployments") or not isinstance(node, dict) or not node:
        return {prefix}
    out: set[str] = set()
    for key, value in node.items():
        out |= _leaves(value, f"{prefix}.{key}" if prefix else key)
    return out


def _values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def test_every_value_set_is_a_documented_chart_key() -> None:
    leaves = _leaves(_values())
    assert leaves - CHART_KEYS == set(), f"not in the chart's documented values: {leaves - CHART_KEYS}"
    for deployment in _values()["dagster-user-deployments"]["deployments"]:
        assert set(deployment) <= USER_DEPLOYMENT_KEYS, set(deployment) - USER_DEPLOYMENT_KEYS


def test_values_wire_image_launcher_postgres_queue_pools_and_secrets() -> None:
    v = _values()
    dep = v["dagster-user-deployments"]["deployments"][0]
    assert dep["codeServerArgs"][:2] == ["-m", "mlops_assets.definitions"] and dep["port"] == 3030
    assert dep["podSecurityContext"]["runAsNonRoot"] is True and dep["podSecurityContext"]["runAsUser"] == 10001
    assert {s["name"] for s in dep["envSecrets"]} == {"mlops-assets-minio", "mlops-assets-mlflow"}
    assert {vol["secret"]["secretName"] for vol in dep["volumes"] if "secret" in vol} == {"mlops-assets-hpc-ssh"}
    env = {e["name"]: e["value"] for e in dep["env"]}
    assert env["MLOPS_PROFILE"] == "production" and env["MLOPS_HPC_SSH_KEY"].startswith("/var/run/secrets/mlops/ssh/")
    assert dep["labels"] == {"mlops-assets/role": "checks"} == v["runLauncher"]["config"]["k8sRunLauncher"]["labels"]
    assert v["runLauncher"]["type"] == "K8sRunLauncher"
    pod = v["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["podSpecConfig"]
    assert pod["serviceAccountName"] == "mlops-assets-checks"
    assert v["postgresql"]["enabled"] is False and v["generatePostgresqlPasswordSecret"] is False
    assert v["postgresql"]["postgresqlPassword"] == ""
    rc = v["dagsterDaemon"]["runCoordinator"]
    assert rc["type"] == "QueuedRunCoordinator"
    assert {t["key"] for t in rc["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]} >= {"mlops/domain", "mlops/slurm"}
    assert v["dagsterDaemon"]["runMonitoring"]["enabled"] and v["dagsterDaemon"]["runRetries"]["enabled"]
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
    assert v["concurrency"]["pools"]["defaultLimit"] == prod["concurrency"]["pools"]["default_limit"]


def test_every_value_is_commented() -> None:
    lines = VALUES.read_text().splitlines()
    sections = [i for i, line in enumerate(lines) if re.match(r"^[A-Za-z-]+:", line)]
    for i in sections:
        assert lines[i - 1].startswith("#") or (lines[i - 1].strip() == "" and lines[i - 2].startswith("#")), lines[i]
