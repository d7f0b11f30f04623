"""Where staged things live and how to tell they are there: the BeeGFS layout, the
Hugging Face cache layout, bucket prefixes and SIF files. No Dagster imports."""

from __future__ import annotations

from typing import Any

from mlops_assets.catalog.schema import (
    Catalog,
    Container,
    Dataset,
    HubSource,
    Model,
    TorchvisionSource,
)
from mlops_assets.core import versions
from mlops_assets.core.checks import Outcome, ProbeFailed
from mlops_assets.core.hostexec import Runner
from mlops_assets.core.hpc_rules import directories

SIF_MAGIC = "SIF_MAGIC"
SIF_MAGIC_OFFSET = 32


def hub_cache(catalog: Catalog) -> str:
    """huggingface_hub's cache under HF_HOME on BeeGFS: `transformers` finds it offline."""
    return directories(catalog)["huggingface"] + "/hub"


def repo_folder(kind: str, repo: str) -> str:
    return f"{kind}s--{repo.replace('/', '--')}"


def dataset_marker(catalog: Catalog, dataset: Dataset) -> str:
    """A file that exists only once the dataset is completely staged."""
    src = dataset.source
    root = catalog.hpc.beegfs.root.rstrip("/")
    if isinstance(src, TorchvisionSource):
        base = f"{root}/{dataset.path}"
        return {
            "MNIST": f"{base}/MNIST/raw/t10k-labels-idx1-ubyte",
            "FashionMNIST": f"{base}/FashionMNIST/raw/t10k-labels-idx1-ubyte",
            "CIFAR10": f"{base}/cifar-10-batches-py/test_batch",
            "CIFAR100": f"{base}/cifar-100-python/test",
        }[src.dataset_class]
    assert isinstance(src, HubSource)
    return f"{hub_cache(catalog)}/{repo_folder('dataset', src.repo)}/snapshots/{src.revision}"


def model_marker(catalog: Catalog, model: Model) -> str:
    return f"{hub_cache(catalog)}/{repo_folder('model', model.repo)}/snapshots/{model.revision}/config.json"


def model_prefix(name: str, model: Model) -> str:
    return f"{name}/{model.revision}/"


def container_path(catalog: Catalog, container: Container) -> str:
    return f"{directories(catalog)['containers']}/{container.file}"


def path_present(runner: Runner, path: str, what: str, hint: str) -> Outcome:
    res = runner.run(["stat", "-c", "%s %Y", path])
    return Outcome(
        res.ok,
        "present" if res.ok else "missing",
        "present",
        what,
        hint,
        detail="" if res.ok else f"{path} does not exist",
    )


def sif_valid(runner: Runner, path: str) -> Outcome:
    res = runner.run(["dd", f"if={path}", "bs=1", f"skip={SIF_MAGIC_OFFSET}", f"count={len(SIF_MAGIC)}", "status=none"])
    if not res.ok:
        return Outcome(False, "missing", SIF_MAGIC, "SIF header", "materialize the container asset (apptainer pull/build)", detail=res.tail(1))
    magic = res.stdout.strip()
    return Outcome(magic == SIF_MAGIC, magic or "(empty)", SIF_MAGIC, "SIF header", "the file is not a SIF image: rebuild it")


def bucket_objects(s3: Any, bucket: str, prefix: str) -> Outcome:
    try:
        resp = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1000)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else type(exc).__name__
        raise ProbeFailed(f"listing s3://{bucket}/{prefix} failed: {code}", "check the bucket asset and credentials") from None
    count = int(resp.get("KeyCount", 0))
    return Outcome(count > 0, count, 1, f"objects under s3://{bucket}/{prefix}", "materialize the model's MinIO copy")


def bucket_round_trip(s3: Any, bucket: str) -> Outcome:
    key = ".mlops-probe/write-check"
    body = b"mlops-assets write probe"
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        s3.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else type(exc).__name__
        raise ProbeFailed(f"write/read/delete in s3://{bucket} failed: {code}", "check bucket policy and credentials") from None
    return Outcome(got == body, "identical" if got == body else "different", "identical", "bytes read back", "the object store returned other bytes than written")


_VERSIONS_SCRIPT = (
    "import importlib.metadata as m, sys\n"
    "for n in sys.argv[1:]:\n"
    "    try: print(n, m.version(n))\n"
    "    except m.PackageNotFoundError: print(n, 'missing')\n"
)


def image_packages(runner: Runner, path: str, expected: dict[str, str]) -> Outcome:
    """The frameworks inside the image, read by its own Python: torch, transformers, oumi..."""
    res = runner.run(["apptainer", "exec", "--cleanenv", path, "python3", "-c", _VERSIONS_SCRIPT, *expected], timeout_s=300)
    if not res.ok:
        return Outcome(False, "unmeasured", ", ".join(f"{k}>={v}" for k, v in expected.items()), "packages in the image",
                       "the image does not run: check apptainer and the SIF file", detail=res.tail(2))
    found = dict(line.split(" ", 1) for line in res.stdout.strip().splitlines() if " " in line)
    bad = [f"{n} {found.get(n, 'missing')} < {v}" for n, v in expected.items() if found.get(n, "missing") == "missing" or not versions.at_least(found[n], v)]
    return Outcome(not bad, ", ".join(f"{n} {found.get(n)}" for n in expected), ", ".join(f"{k}>={v}" for k, v in expected.items()),
                   "packages in the image", "rebuild the image with the required framework versions", detail="; ".join(bad))
