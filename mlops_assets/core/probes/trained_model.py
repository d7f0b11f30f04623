"""A model the platform trained itself, in MLflow: the registered versions with their tags
and aliases, and a new registration as an MLflow run (params, metrics, the files as
artifacts, stored on S3 by the tracking server) plus a model version whose source is that
run's artifacts. The decisions (tags, aliases, "unchanged") are core/registry_rules.py's;
this module only asks and writes, through model_registry's bounded MlflowClient. No Dagster
imports; mlflow is imported only when a call is made."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlops_assets.core.probes.model_registry import (
    MAX_RETRIES,
    mlflow_client,
    versions,
)

TAG_RUN = "run_id"


@dataclass(frozen=True)
class State:
    """A registered model now: version -> tags, version -> source, alias -> version."""

    tags: dict[str, dict[str, str]]
    sources: dict[str, str]
    aliases: dict[str, str]


def state(api: Any, name: str) -> State:
    found = versions(api, name, retries=MAX_RETRIES)
    return State(
        {v.version: dict(v.tags) for v in found},
        {v.version: v.source for v in found},
        {a: v.version for v in found for a in v.aliases},
    )


@dataclass(frozen=True)
class NewVersion:
    version: str
    run_id: str
    source: str


def register_run(
    api: Any,
    name: str,
    experiment: str,
    files: Mapping[str, str],
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    *,
    description: str = "",
) -> NewVersion:
    """One MLflow run in `experiment` with the params, metrics and `files` (artifact name ->
    local path) as artifacts, then a version of `name` (created if missing) whose source is
    the run's artifact folder, tagged with `tags` and the run id."""
    import time

    with mlflow_client(api, retries=MAX_RETRIES) as client:
        from mlflow.entities import Metric, Param, RunTag

        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else _create_experiment(client, experiment)
        run = client.create_run(exp_id, tags={**tags, "mlflow.runName": f"{name} {tags_id(tags)}"})
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        try:
            client.log_batch(
                run_id,
                metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                params=[Param(k, v) for k, v in params.items()],
                tags=[RunTag(k, v) for k, v in tags.items()],
            )
            for local in files.values():
                client.log_artifact(run_id, local)
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
        source = str(run.info.artifact_uri).rstrip("/")
        try:
            client.create_registered_model(
                name, tags={"managed_by": "mlops_assets"}, description=description
            )
        except Exception as exc:
            if str(getattr(exc, "error_code", "")) != "RESOURCE_ALREADY_EXISTS":
                raise
        all_tags = {**tags, TAG_RUN: run_id}
        mv = client.create_model_version(
            name, source, run_id=run_id, tags=all_tags, description=description
        )
        version = str(mv.version)
        have = dict(mv.tags or {})
        for key, value in all_tags.items():  # servers that ignore tags on create
            if have.get(key) != value:
                client.set_model_version_tag(name, version, key, value)
    return NewVersion(version, run_id, source)


def tags_id(tags: Mapping[str, str]) -> str:
    """A short name for the run: the model's sha256 prefix."""
    return str(tags.get("model_sha256", ""))[:12]


def _create_experiment(client: Any, experiment: str) -> str:
    try:
        return str(client.create_experiment(experiment))
    except Exception as exc:  # another run made it meanwhile
        if str(getattr(exc, "error_code", "")) != "RESOURCE_ALREADY_EXISTS":
            raise
        return str(client.get_experiment_by_name(experiment).experiment_id)


def set_aliases(api: Any, name: str, moves: Mapping[str, str]) -> None:
    with mlflow_client(api, retries=MAX_RETRIES) as client:
        for alias, version in moves.items():
            client.set_registered_model_alias(name, alias, version)


def download(api: Any, run_id: str, artifact: str, into: str) -> str:
    """One artifact of a run into the folder `into` (MLflow fetches it from its store)."""
    with mlflow_client(api, retries=MAX_RETRIES) as client:
        path = client.download_artifacts(run_id, artifact, into)
    return str(os.fspath(path))
