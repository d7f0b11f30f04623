"""Shared fixtures. The sandbox fixture reuses a running deploy/sandbox or brings it up;
a service that is still down is a test failure, never a skip."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SANDBOX = REPO / "deploy" / "sandbox" / "sandbox.sh"
SHARED = REPO.parent / "shared"


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The installed console script's code path, in a fresh process like a user's shell."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mlops_assets.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


class CliSession:
    """CLI runs recorded in one DAGSTER_HOME: each run's JSON report as rows keyed by
    (asset, check), every output kept (for secret scans), and the latest materialization's
    metadata read back from the instance."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.outputs: list[str] = []

    def run(
        self, command: str, *keys: str, catalog: Path | None = None
    ) -> tuple[dict[tuple[str, str], dict[str, Any]], subprocess.CompletedProcess[str]]:
        extra = ["--catalog", str(catalog)] if catalog else []
        res = run_cli(
            command,
            "--select",
            *keys,
            *extra,
            "--format",
            "json",
            env={"DAGSTER_HOME": str(self.home)},
        )
        self.outputs += [res.stdout, res.stderr]
        try:
            doc = json.loads(res.stdout)
        except ValueError:
            raise AssertionError(
                "no JSON report (exit "
                f"{res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
            ) from None
        return {(r["asset"], r["check"]): r for r in doc["results"]}, res

    def metadata(self, key: str) -> dict[str, Any]:
        import dagster as dg

        with dg.DagsterInstance.from_config(str(self.home)) as inst:
            ev = inst.get_latest_materialization_event(dg.AssetKey(key))
            assert ev is not None and ev.asset_materialization is not None, (
                f"{key} has no materialization"
            )
            return {k: v.value for k, v in ev.asset_materialization.metadata.items()}


@pytest.fixture(scope="session")
def cli_session() -> type[CliSession]:
    """`cli_session(home)`: a CliSession for tests that run the CLI repeatedly in one instance."""
    return CliSession


@pytest.fixture(scope="session")
def cli():  # type: ignore[no-untyped-def]
    """`cli("validate", ...)` runs mlops-assets in a fresh process."""
    return run_cli


def _status() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SANDBOX), "status"], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Path]:
    """The running sandbox's state directory (brought up if needed)."""
    status = _status()
    if status.returncode != 0:
        up = subprocess.run(
            ["bash", str(SANDBOX), "up"], capture_output=True, text=True, timeout=900, check=False
        )
        status = _status()
        if status.returncode != 0:
            pytest.fail(
                "the sandbox is not up; a missing service is a failure, not a skip.\nup exit "
                f"{up.returncode}:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}\nstatus:\n{status.stdout}",
                pytrace=False,
            )
    home = Path(os.environ.get("MLOPS_SANDBOX_HOME", "/var/lib/mlops-assets/sandbox"))
    from mlops_assets.platform import load_sandbox_env

    load_sandbox_env(home)
    # A healthy platform is the sandbox plus this project's storage layer and container
    # images: the BeeGFS layout, the buckets and the SIF files are assets (never created by
    # the sandbox), so materialize them once, as the README's main command does, before tests
    # that expect them (the --nv checks exec an image).
    base = run_cli(
        "materialize",
        "--select",
        "storage",
        "containers",
        "--format",
        "json",
        env={"DAGSTER_HOME": ""},
    )
    if base.returncode != 0:
        pytest.fail(
            "materializing the storage and container assets "
            f"failed:\n{base.stdout[-3000:]}\n{base.stderr[-3000:]}",
            pytrace=False,
        )
    yield home


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


@contextlib.contextmanager
def dagster_dev(home: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    """`dagster dev` (webserver and daemon) serving this project from `home`, as the README
    starts it; yields its URL, stops it with SIGINT and fails if any of its processes is left."""
    import signal
    import time
    import urllib.request

    port = _free_port()
    full_env = {**os.environ, "DAGSTER_HOME": str(home), **(env or {})}
    log = (home / "dev.log").open("w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("dagster")),
            "dev",
            "-w",
            str(REPO / "workspace.yaml"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=home,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        process_group=0,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"dagster dev did not start:\n{(home / 'dev.log').read_text()[-3000:]}",
                        pytrace=False,
                    )
                time.sleep(1)
        yield url
    finally:
        runs_left = _end_runs_in_flight(url) if proc.poll() is None else ""
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        # its code server waits for the runs it launched; under load that takes a while
        deadline = time.monotonic() + 60
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        log.close()
        assert not _group_alive(proc.pid), (
            f"dagster dev left processes behind:\n{_group_processes(proc.pid)}\n{runs_left}"
        )


IN_FLIGHT = """{ runsOrError(filter:
  {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]})
  { ... on Runs { results { runId jobName status } } } }"""
TERMINATE = "mutation($ids: [String!]!) { terminateRuns(runIds: $ids) { __typename } }"


def _end_runs_in_flight(url: str, wait_s: float = 90) -> str:
    """A schedule or sensor may have launched a run just before the test ends (the light
    checks fire every 15 minutes), and the code server that launched it waits for it before it
    exits. Terminate such runs, as an operator would in the UI, and wait for them to end.
    Best effort, since `dagster dev` must be stopped whatever happens here: returns what it
    could not do, for the failure message if processes are left ("" when nothing)."""
    import time

    deadline = time.monotonic() + wait_s
    asked: set[str] = set()
    runs: list[dict[str, str]] = []
    try:
        while time.monotonic() < deadline:
            runs = graphql(url, IN_FLIGHT)["runsOrError"]["results"]
            if not runs:
                return ""
            new = [r["runId"] for r in runs if r["runId"] not in asked]
            if new:
                graphql(url, TERMINATE, {"ids": new})
                asked.update(new)
            time.sleep(1)
    except Exception as exc:  # the webserver's own answer, or none
        return f"runs in flight not ended: {type(exc).__name__}: {exc}"
    return f"runs still in flight after {wait_s:g} s: {runs}"


def _group_processes(pgid: int) -> str:
    """What is left of a process group, for the failure message."""
    ps = subprocess.run(
        ["ps", "-eo", "pid,pgid,etime,args"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    return "\n".join(line for line in ps[1:] if line.split()[1] == str(pgid)) or "(none now)"


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    """One query against a running webserver's GraphQL endpoint."""
    import urllib.request

    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["data"]


@pytest.fixture(scope="session")
def mnist_trained(sandbox: Path, cli: Any) -> tuple[Any, dict[str, Any]]:
    """MNIST staged and copied to its bucket, then one real training job (SLURM) recorded in
    an ephemeral instance: what the registry and serving tests build on, made once."""
    import dagster as dg

    from mlops_assets.defs.smoke.definitions import smoke_assets
    from mlops_assets.platform import active, build_resources

    staged = cli(
        "materialize",
        "--select",
        "bucket_datasets,dataset_mnist,dataset_mnist_minio",
        "--format",
        "json",
        env={"DAGSTER_HOME": ""},
    )
    assert staged.returncode == 0, staged.stdout[-2000:] + staged.stderr[-2000:]
    instance = dg.DagsterInstance.ephemeral()
    cat = active().catalog
    asset = next(a for a in smoke_assets(cat) if a.key.to_user_string() == "smoke_mnist_training")
    res = build_resources(cat)
    result = dg.materialize(
        [asset], resources={"hpc": res["hpc"]}, instance=instance, raise_on_error=False
    )
    assert result.success, [
        e.step_failure_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    ]
    mat = result.asset_materializations_for_node("smoke_mnist_training")[0]
    return instance, {k: v.value for k, v in mat.metadata.items()}


def materialize_with(cat: Any, instance: Any, items: list[Any], resources: tuple[str, ...]) -> Any:
    """dg.materialize of `items` with the named resources of `cat`, errors kept in the result."""
    import dagster as dg

    from mlops_assets.platform import build_resources

    res = build_resources(cat)
    return dg.materialize(
        items, resources={k: res[k] for k in resources}, instance=instance, raise_on_error=False
    )


def materialized_meta(result: Any, key: str) -> dict[str, Any]:
    """The one materialization of `key` in a successful run, as plain metadata."""
    assert result.success, [
        e.step_failure_data.error or e.step_failure_data.user_failure_data
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
    mats = result.asset_materializations_for_node(key)
    assert len(mats) == 1
    return {k: v.value for k, v in mats[0].metadata.items()}


def check_evaluations(result: Any) -> dict[str, Any]:
    """Each asset check evaluated in the run, by name."""
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def sandbox_s3() -> Any:
    """A boto3 client on the sandbox's S3 server, with the catalog's endpoint and keys."""
    import boto3
    from botocore.config import Config

    from mlops_assets.platform import active

    minio = active().catalog.cloud.services.minio
    return boto3.client(
        "s3",
        endpoint_url=minio.url,
        region_name=minio.region,
        aws_access_key_id=os.environ[minio.access_key.env],
        aws_secret_access_key=os.environ[minio.secret_key.env],
        config=Config(s3={"addressing_style": "path"}),
    )


def forget_registered(cat: Any, *, isvc: bool = False) -> None:
    """What a test registered under its own names goes again: the MLflow registered model with
    its versions' runs, the S3 copies under its prefix, and (`isvc`) its InferenceService in the
    Kubernetes stand-in. Each step on its own, a failure a warning: a cleanup never hides the
    test's own result, nor fails a test that passed."""
    import warnings

    reg = cat.registry.mnist
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(cat.cloud.services.mlflow.url)
        for v in client.search_model_versions(f"name='{reg.registered_name}'"):
            if v.run_id:
                client.delete_run(v.run_id)
        client.delete_registered_model(reg.registered_name)
    except Exception as exc:
        warnings.warn(f"MLflow model {reg.registered_name} left: {exc}", stacklevel=2)
    try:
        s3, bucket = sandbox_s3(), cat.trained_bucket().name
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{reg.prefix}/"
        ):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
    except Exception as exc:
        warnings.warn(f"s3 prefix {reg.prefix}/ left: {exc}", stacklevel=2)
    if isvc:
        from mlops_assets.defs.serving.definitions import ISVC_PATH
        from mlops_assets.platform import build_resources

        served = cat.serving.mnist
        try:
            build_resources(cat)["kubernetes"].call(
                "DELETE", f"{ISVC_PATH.format(ns=served.namespace)}/{served.isvc_name}"
            )
        except Exception as exc:
            warnings.warn(f"InferenceService {served.isvc_name} left: {exc}", stacklevel=2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the running sandbox carries the `sandbox` marker, whether or not
    its file says so: one that asks for the fixture (directly or through another fixture),
    or one in a `*sandbox*` file or the browser test. `-m "not sandbox"` then really runs
    only what needs no service."""
    for item in items:
        path = getattr(item, "path", None)
        name = path.name if path is not None else ""
        if (
            "sandbox" in getattr(item, "fixturenames", ())
            or "sandbox" in name
            or name == "test_ui_browser.py"
        ):
            item.add_marker(pytest.mark.sandbox)
