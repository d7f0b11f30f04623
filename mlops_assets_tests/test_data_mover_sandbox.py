"""Issue #6, compute next to the data: with `hpc.data_mover` in the catalog, the staging
payloads run as SLURM jobs on that partition (the sandbox's real SLURM) instead of on the
login node, with the same Pipes messages and the same atomic staging."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlops_assets.catalog.loader import DEFAULT_CATALOG

MNIST_RAW = Path("/mnt/sandbox-beegfs/datasets/mnist/MNIST/raw")


def test_staging_runs_as_a_slurm_job_on_the_data_mover_partition(
    sandbox: Path, cli_session, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(DEFAULT_CATALOG.read_text())
    data["profiles"]["sandbox"]["hpc"]["data_mover"] = {
        "partition": "dtn",
        "job": {"cpus": 1, "mem_mb": 512, "time_limit_min": 5},  # no gpus: a MoverJob asks none
    }
    catalog = tmp_path / "platform.yaml"
    catalog.write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp_path / "home").mkdir()
    session = cli_session(tmp_path / "home")
    rows, res = session.run(
        "materialize", "dataset_mnist", catalog=catalog
    )  # staged already, or staged now
    assert rows[("dataset_mnist", "materialized")]["passed"], res.stdout[-3000:]

    lost = MNIST_RAW / "t10k-labels-idx1-ubyte.gz"
    size = lost.stat().st_size
    lost.unlink()
    rows, res = session.run("materialize", "dataset_mnist", catalog=catalog)
    assert rows[("dataset_mnist", "materialized")]["passed"], res.stdout[-3000:]
    assert rows[("dataset_mnist", "dataset_mnist_manifest_verifies")]["passed"]
    meta = session.metadata("dataset_mnist")
    assert (
        meta["slurm_state"] == "COMPLETED"
        and meta["slurm_exit_code"] == 0
        and int(meta["slurm_job_id"]) > 0
    )
    assert meta["bytes_transferred"] >= size and lost.stat().st_size == size
    # the multi-node sandbox's data-mover partition is one CPU node, in its own namespace: the
    # job reached the hub mirror through the bridge address (10.77.0.1)
    assert meta.get("slurm_nodes") == "cpu-01", meta


def test_a_data_mover_partition_must_exist(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(DEFAULT_CATALOG.read_text())
    data["hpc"]["data_mover"] = {"partition": "dtn"}
    catalog = tmp_path / "platform.yaml"
    catalog.write_text(yaml.safe_dump(data, sort_keys=False))
    res = cli("catalog", "validate", str(catalog))
    assert res.returncode == 2 and "hpc.data_mover.partition 'dtn'" in res.stdout + res.stderr
