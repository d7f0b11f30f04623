"""payloads/load_check.py on files made here: parquet written by pyarrow gives its row counts
per split, truncated or damaged files are named, a python without pyarrow gets a verdict that
says to install it, safetensors headers give the parameter count, idx and
CIFAR files are read in torchvision's layout, and a hostile pickle runs nothing. The payload
runs as the HPC side runs it: a fresh interpreter with the spec as its one argument."""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_assets.payloads import load_check

PAYLOAD = Path(load_check.__file__)


def _run(
    spec: dict[str, Any], python: str = sys.executable, *flags: str
) -> tuple[int, dict[str, Any]]:
    res = subprocess.run(
        [python, *flags, str(PAYLOAD), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return res.returncode, json.loads(res.stdout.strip().splitlines()[-1])


def _parquet(path: Path, rows: int, row_group_size: int = 1000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "text": [f"row {i % 7}" for i in range(rows)],
            "n": list(range(rows)),
            "tags": [[f"t{i % 3}"] for i in range(rows)],
        }
    )
    pq.write_table(
        table, path, row_group_size=row_group_size
    )  # dictionary pages, several row groups


def _dataset(tmp_path: Path) -> Path:
    root = tmp_path / "snap"
    _parquet(root / "cfg" / "train-00000-of-00002.parquet", 700)
    _parquet(root / "cfg" / "train-00001-of-00002.parquet", 300)
    _parquet(root / "cfg" / "test-00000-of-00001.parquet", 50)
    _parquet(root / "other" / "train-00000-of-00001.parquet", 9)  # another config: not counted
    return root


def test_hub_dataset_splits_and_rows(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    spec = {
        "kind": "hub_dataset",
        "root": str(root),
        "config": "cfg",
        "splits": {"train": 1000, "test": 50},
    }
    rc, out = _run(spec)
    assert rc == 0 and out["ok"], out
    assert out["measured"]["rows_per_split"] == {"train": 1000, "test": 50}
    assert out["reader"].startswith("pyarrow")

    rc, out = _run({**spec, "splits": {"train": 1000, "test": 51, "validation": 5}})
    assert rc == 1
    assert (
        "split test: 50 rows in cfg/test-00000-of-00001.parquet, the catalog expects 51"
        in out["problems"]
    )
    assert "split validation: no data file (the catalog expects 5 rows)" in out["problems"]


@pytest.mark.parametrize("damage", ["truncate", "footer", "pages", "not-parquet"])
def test_damaged_parquet_is_named(tmp_path: Path, damage: str) -> None:
    root = _dataset(tmp_path)
    bad = root / "cfg" / "train-00001-of-00002.parquet"
    data = bytearray(bad.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "footer":  # the footer length points past the start of the file
        data[-8:-4] = struct.pack("<I", len(data))
    elif damage == "pages":  # footer intact, the column data overwritten
        data[4 : len(data) // 2] = b"\xff" * (len(data) // 2 - 4)
    else:
        data = bytearray(b"not parquet at all\n")
    bad.write_bytes(bytes(data))
    spec = {
        "kind": "hub_dataset",
        "root": str(root),
        "config": "cfg",
        "splits": {"train": 1000, "test": 50},
    }
    rc, out = _run(spec)
    assert rc == 1, out
    assert len(out["problems"]) == 1 and out["problems"][0].startswith(
        "cfg/train-00001-of-00002.parquet: does not open ("
    ), out
    assert out["reader"] == f"pyarrow {pa.__version__}"


def test_arrow_files_are_counted(tmp_path: Path) -> None:
    root = tmp_path / "snap"
    (root / "train").mkdir(parents=True)
    table = pa.table({"n": list(range(42))})
    path = root / "train" / "data-00000-of-00001.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    rc, out = _run({"kind": "hub_dataset", "root": str(root), "splits": {"train": 42}})
    assert rc == 0 and out["measured"]["rows_per_split"] == {"train": 42}, out


def test_without_pyarrow_the_verdict_says_to_install_it(tmp_path: Path) -> None:
    """pyarrow is required on hpc.python: a python without it (-S: the standard library only)
    fails the check with a problem that says so, instead of reading the footer by hand."""
    root = _dataset(tmp_path)
    spec = {"kind": "hub_dataset", "root": str(root), "splits": {"train": 1000}}
    rc, out = _run(spec, sys.executable, "-S")
    assert rc == 1 and len(out["problems"]) == 1, out
    assert "pyarrow is not importable by hpc.python" in out["problems"][0], out
    assert "[payloads]" in out["problems"][0] and out["reader"] == "none (pyarrow missing)"


def _safetensors(path: Path, tensors: dict[str, list[int]], truncate: int = 0) -> int:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in tensors.items():
        n = 1
        for d in shape:
            n *= d
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + 2 * n]}
        offset += 2 * n
    hb = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + b"\0" * (offset - truncate))
    return offset // 2


def _model(tmp_path: Path) -> tuple[Path, int]:
    root = tmp_path / "model"
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    (root / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}))
    (root / "merges.txt").write_text("#version: 0.2\na b\nab c\n")
    n = _safetensors(
        root / "model.safetensors",
        {"embed.weight": [100, 8], "layers.0.attn.bias": [1, 1, 16, 16], "norm.weight": [8]},
    )
    return root, n


def test_model_parameter_count_and_buffers(tmp_path: Path) -> None:
    root, n = _model(tmp_path)
    spec = {
        "kind": "model",
        "root": str(root),
        "parameters": 808,
        "tolerance": 0.0,
        "non_parameter_globs": ["*.attn.bias"],
    }
    rc, out = _run(spec)
    assert (
        rc == 0
        and out["measured"]["parameters"] == 808 == n - 256
        and out["measured"]["tensors"] == 3
    ), out
    rc, out = _run({**spec, "non_parameter_globs": []})
    assert rc == 1 and out["problems"] == [
        "model.safetensors: 1064 parameters, the catalog expects 808 (tolerance 0.0%)"
    ]


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("truncate", "model.safetensors: header does not parse (ValueError: tensors end at byte"),
        ("header", "model.safetensors: header does not parse"),
        ("config", "config.json: does not parse"),
        ("tokenizer", "tokenizer.json: does not parse"),
    ],
)
def test_damaged_model_files_are_named(tmp_path: Path, damage: str, named: str) -> None:
    root, _ = _model(tmp_path)
    if damage == "truncate":
        _safetensors(root / "model.safetensors", {"embed.weight": [100, 8]}, truncate=1)
    elif damage == "header":
        data = bytearray((root / "model.safetensors").read_bytes())
        data[9] = ord("!")
        (root / "model.safetensors").write_bytes(bytes(data))
    else:
        path = root / f"{damage}.json"
        path.write_text(path.read_text()[:-3])
    rc, out = _run(
        {
            "kind": "model",
            "root": str(root),
            "parameters": 808,
            "tolerance": 0.01,
            "non_parameter_globs": ["*.attn.bias"],
        }
    )
    assert rc == 1 and any(p.startswith(named) for p in out["problems"]), out
    if damage in ("truncate", "header"):  # no parameter verdict on weights that do not parse
        assert not any("parameters, the catalog expects" in p for p in out["problems"]), out


def _mnist(root: Path, train: int = 30, test: int = 10) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", train), ("t10k", test)):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            struct.pack(">IIII", 2051, n, 28, 28) + bytes(n * 784)
        )
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + bytes(n))


@pytest.mark.parametrize("flags", [(), ("-S",)], ids=["system-python3", "no-site-packages"])
def test_mnist_layout_counts_and_truncation(tmp_path: Path, flags: tuple[str, ...]) -> None:
    """Debian's python3 may have torchvision (then it loads the files too); with -S it has
    only the standard library, and the verdict says so."""
    _mnist(tmp_path)
    spec = {
        "kind": "torchvision",
        "root": str(tmp_path),
        "dataset_class": "MNIST",
        "splits": {"train": 30, "test": 10},
    }
    rc, out = _run(spec, "/usr/bin/python3", *flags)
    assert rc == 0 and out["measured"]["rows_per_split"] == {"train": 30, "test": 10}, out
    if flags:
        assert (
            out["reader"] == "stdlib, in torchvision's layout" and "not importable" in out["note"]
        ), out
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    rc, out = _run(spec, "/usr/bin/python3", *flags)
    assert rc == 1 and out["problems"] == [
        "MNIST/raw/t10k-images-idx3-ubyte: 7855 bytes, the header says 7856 (shape [10, 28, 28])"
    ], out


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("PWNED",))


def test_cifar_pickles_are_read_inertly(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    batch = pickle.dumps({"labels": [1, 2], "data": _Evil()}, protocol=2)
    (base / "test_batch").write_bytes(batch)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing (__builtin__|builtins)\.print"):
        load_check.cifar_batch_rows(base / "test_batch")
    assert "PWNED" not in capfd.readouterr().out
