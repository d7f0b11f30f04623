"""The registry group's pure rules: which tags a trained model's version carries, which
aliases move when a version is registered, whether training passed the bar for
`production`, and the budget verdicts. No Dagster, no MLflow, no I/O: the assets in
defs/registry ask, these decide."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlops_assets.core import smoke_rules

TAG_MODEL_SHA = "model_sha256"
TAG_METRICS_SHA = "metrics_sha256"
TAG_DATASET = "dataset_manifest_digest"
TAG_CONTAINER = "container_digest"
TAG_CODE = "code_digest"
TAG_OUTPUT_DIR = "training_output_dir"
TAG_SLURM_JOB = "slurm_job_id"
TAG_MANAGED = "managed_by"
MANAGED = "mlops_assets"
#: a digest the project could not find: said so, never invented
UNKNOWN = "unknown"
#: no container: the training ran in the HPC side's Python (catalog `smoke.container` null)
NONE = "none"
#: metrics.json keys logged as MLflow metrics (numbers) and as params (the training's setup)
METRIC_KEYS = ("accuracy", "loss", "training_time_seconds")
PARAM_KEYS = ("epochs", "batch_size", "lr", "train_samples", "test_samples", "device", "torch")


def provenance_tags(
    model_sha256: str,
    metrics_sha256: str,
    *,
    dataset: str | None,
    container: str | None,
    code: str | None,
    output_dir: str,
    slurm_job_id: str | None,
) -> dict[str, str]:
    """The version's tags; a digest that is None is `unknown` (the caller says why)."""
    return {
        TAG_MODEL_SHA: model_sha256,
        TAG_METRICS_SHA: metrics_sha256,
        TAG_DATASET: dataset or UNKNOWN,
        TAG_CONTAINER: container or UNKNOWN,
        TAG_CODE: code or UNKNOWN,
        TAG_OUTPUT_DIR: output_dir,
        TAG_SLURM_JOB: slurm_job_id or UNKNOWN,
        TAG_MANAGED: MANAGED,
    }


def unknown_digests(tags: Mapping[str, str]) -> list[str]:
    """The provenance tags the project could not fill."""
    return [k for k in (TAG_DATASET, TAG_CONTAINER, TAG_CODE) if tags.get(k) == UNKNOWN]


def params_and_metrics(metrics: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
    """metrics.json split into the run's params (the setup) and metrics (the figures); a key
    that is missing or not a number is left out rather than logged as something else."""
    params = {k: str(metrics[k]) for k in PARAM_KEYS if metrics.get(k) is not None}
    figures = {
        k: float(metrics[k])
        for k in METRIC_KEYS
        if isinstance(metrics.get(k), int | float) and not isinstance(metrics.get(k), bool)
    }
    return params, figures


@dataclass(frozen=True)
class Promotion:
    """Whether the version may be `production`, and why (the smoke's messages)."""

    passed: bool
    min_accuracy: float
    max_seconds: float
    messages: tuple[str, ...]


def judge_promotion(
    metrics: Mapping[str, Any],
    *,
    min_accuracy: float,
    max_seconds: float,
    total_seconds: float | None = None,
) -> Promotion:
    """The smoke's own MLOPS-1.1 rule (smoke_rules.judge_mnist) on the trained model's
    metrics: accuracy above the bar and the run within its time."""
    figures = dict(metrics)
    if total_seconds is not None:
        figures["total_seconds"] = total_seconds
    judged = smoke_rules.judge_mnist(figures, min_accuracy=min_accuracy, max_seconds=max_seconds)
    return Promotion(
        judged["verdict"] != smoke_rules.FAIL,
        min_accuracy,
        max_seconds,
        tuple(str(m) for m in judged["messages"]),
    )


@dataclass(frozen=True)
class AliasMoves:
    """Aliases to point at versions (alias -> version), in order."""

    set: dict[str, str]

    def describe(self) -> str:
        return ", ".join(f"@{a} -> {v}" for a, v in self.set.items()) or "no alias moved"


def alias_moves(
    current: Mapping[str, str],
    version: str,
    *,
    promote: bool,
    candidate: str = "candidate",
    production: str = "production",
    rollback: str = "rollback",
) -> AliasMoves:
    """`candidate` on every registration; `production` only when promoted, and then the
    version that held production before (if another) becomes `rollback`. A version that is
    already production moves nothing (re-running is idempotent)."""
    moves: dict[str, str] = {}
    if current.get(candidate) != version:
        moves[candidate] = version
    if promote and current.get(production) != version:
        previous = current.get(production)
        if previous is not None:
            moves[rollback] = previous
        moves[production] = version
    return AliasMoves(moves)


def newest_with_sha(versions: Mapping[str, Mapping[str, str]], sha256: str) -> str | None:
    """The newest version (by number) whose model_sha256 tag is `sha256`: an unchanged
    model is that version, not a new one."""
    same = [v for v, tags in versions.items() if tags.get(TAG_MODEL_SHA) == sha256]
    return max(same, key=int) if same else None


@dataclass(frozen=True)
class Budget:
    seconds: float
    budget_s: float

    @property
    def met(self) -> bool:
        return self.seconds < self.budget_s

    def describe(self, what: str) -> str:
        verdict = "within" if self.met else "OVER"
        return f"{what} took {self.seconds:.2f} s, {verdict} its budget of {self.budget_s:g} s"


def object_keys(prefix: str, version: str, files: tuple[str, ...]) -> dict[str, str]:
    """file name -> object key under `<prefix>/<version>/` in the models bucket."""
    base = f"{prefix.strip('/')}/{version}/"
    return {f: base + f for f in files}
