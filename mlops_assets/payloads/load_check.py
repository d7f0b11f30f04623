"""Does the staged data LOAD? Run on the HPC side next to the data, after the manifest check
has said the bytes are the ones staged: this one says those bytes are usable.

    python load_check.py SPEC_JSON     -> one JSON line: {"ok", "problems", "measured", "reader",
    "note"}

SPEC_JSON (built by core.load_rules): `kind` is `hub_dataset`, `torchvision` or `model`, `root`
is the staged directory, plus the catalog's expectations (`splits`: split -> rows;
`parameters`, `tolerance`, `non_parameter_globs`; `dataset_class`).

Hub datasets need pyarrow on hpc.python; it is required there (pyproject's [payloads] group,
which the HPC venv installs from uv.lock, as it does huggingface_hub, dagster-pipes and boto3).
The rest needs only the standard library, with the real library used when it is importable;
`reader` says which one answered:

- parquet and Arrow: pyarrow opens and reads every file (every page is decoded, so a truncated
  or overwritten file fails with its name). Parquet's footer is a Thrift structure and its
  pages are compressed and encoded: pyarrow is the reference reader, and a hand-written one
  would check less and have to be kept up with the format. Without pyarrow the check fails
  and says to install it.
- safetensors: the 8-byte little-endian header length and the JSON header; every tensor's
  byte range must match its dtype and shape and lie inside the file. No torch needed.
- torchvision: torchvision's own dataset class with download=False when python3 can import
  it; otherwise the files of torchvision's layout are checked here (idx headers against file
  sizes for MNIST, CIFAR pickles through an unpickler that builds no objects).

Each problem names the file (relative to `root`) and what is wrong with it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import pickle
import struct
import sys
from pathlib import Path
from typing import Any

# ------------------------------------------------------------------ parquet and Arrow (pyarrow)


def parquet_rows(path: Path, pa: Any) -> int:
    """Rows of a parquet file after reading all of it: the footer's num_rows alone would pass
    a file whose pages are damaged."""
    table = pa.parquet.read_table(path)  # decodes every page
    return int(table.num_rows)


def arrow_rows(path: Path, pa: Any) -> int:
    try:
        with pa.memory_map(str(path)) as src:
            return int(pa.ipc.open_stream(src).read_all().num_rows)
    except pa.ArrowInvalid:
        with pa.memory_map(str(path)) as src:
            return int(pa.ipc.open_file(src).read_all().num_rows)


def split_of(rel: str, splits: list[str]) -> str | None:
    """HF's data-file naming: `<split>-00000-of-00001.parquet`, `<split>.parquet`, or a
    directory named after the split."""
    parts = rel.split("/")
    base = parts[-1]
    for s in splits:
        if base.startswith((f"{s}-", f"{s}.", f"{s}_")) or s in parts[:-1]:
            return s
    return None


def check_hub_dataset(root: Path, spec: dict[str, Any]) -> dict[str, Any]:
    try:
        import pyarrow as pa
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError as exc:
        return {
            "problems": [
                f"pyarrow is not importable by hpc.python ({sys.executable}: {exc}); it is "
                "required to read parquet/Arrow data: install pyproject's [payloads] group there"
            ],
            "measured": {},
            "reader": "none (pyarrow missing)",
        }
    expected: dict[str, int] = {str(k): int(v) for k, v in (spec.get("splits") or {}).items()}
    files = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix in (".parquet", ".arrow") and p.is_file()
    )
    config = spec.get("config")
    if config and any(f.startswith(f"{config}/") for f in files):
        files = [f for f in files if f.startswith(f"{config}/")]
    problems: list[str] = []
    rows: dict[str, int] = {}
    per_split: dict[str, int] = {}
    for rel in files:
        try:
            n = (parquet_rows if rel.endswith(".parquet") else arrow_rows)(root / rel, pa)
        except Exception as exc:
            problems.append(f"{rel}: does not open ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        rows[rel] = n
        split = split_of(rel, list(expected) or ["train", "validation", "test"])
        if split is not None:
            per_split[split] = per_split.get(split, 0) + n
    if not files:
        problems.append("no .parquet or .arrow data files in the snapshot")
    for split, want in expected.items():
        mine = [f for f in files if split_of(f, [split])]
        if not mine:
            problems.append(f"split {split}: no data file (the catalog expects {want} rows)")
        elif (
            all(f in rows for f in mine) and per_split.get(split) != want
        ):  # unreadable files are named above
            problems.append(
                f"split {split}: {per_split.get(split)} rows in "
                f"{', '.join(mine)}, the catalog expects {want}"
            )
    return {
        "problems": problems,
        "measured": {"rows_per_split": per_split, "files": len(files), "rows": sum(rows.values())},
        "reader": f"pyarrow {pa.__version__}",
    }


# ------------------------------------------------------------------ safetensors and models

DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit


def safetensors_tensors(path: Path) -> dict[str, list[int]]:
    """name -> shape, after checking that every tensor's bytes are where its header says."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise ValueError(f"{size} bytes: no 8-byte header length")
        hlen = struct.unpack("<Q", raw)[0]
        if hlen > MAX_HEADER or 8 + hlen > size:
            raise ValueError(f"header length {hlen} does not fit the file ({size} bytes)")
        header = json.loads(fh.read(hlen).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    data = size - 8 - hlen
    shapes: dict[str, list[int]] = {}
    end = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, stop = (int(x) for x in t["data_offsets"])
        shape = [int(d) for d in t["shape"]]
        numel = 1
        for d in shape:
            numel *= d
        width = DTYPE_BYTES.get(str(t["dtype"]))
        if width is None:
            raise ValueError(f"tensor {name}: unknown dtype {t['dtype']}")
        if stop - begin != numel * width or begin < 0:
            raise ValueError(f"tensor {name}: {stop - begin} bytes for shape {shape} {t['dtype']}")
        end = max(end, stop)
        shapes[name] = shape
    if end != data:
        raise ValueError(
            f"tensors end at byte {end} of a {data}-byte data section (truncated or padded)"
        )
    return shapes


TOKENIZER_JSON = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "added_tokens.json",
)


def check_model(root: Path, spec: dict[str, Any]) -> dict[str, Any]:
    problems: list[str] = []
    config: dict[str, Any] = {}
    try:
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        if not isinstance(config, dict) or "model_type" not in config:
            problems.append("config.json: no model_type (not a transformers config)")
    except FileNotFoundError:
        problems.append("config.json: missing")
    except (ValueError, UnicodeDecodeError) as exc:
        problems.append(f"config.json: does not parse ({str(exc)[:120]})")
    tokenizer = [n for n in TOKENIZER_JSON if (root / n).is_file()]
    for name in tokenizer:
        try:
            json.loads((root / name).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: does not parse ({str(exc)[:120]})")
    if (root / "merges.txt").is_file():
        try:
            lines = (root / "merges.txt").read_text(encoding="utf-8").splitlines()
            bad = [
                i
                for i, ln in enumerate(lines, 1)
                if ln and not ln.startswith("#") and len(ln.split(" ")) != 2
            ]
            if bad:
                problems.append(f"merges.txt: line {bad[0]} is not a merge pair")
        except UnicodeDecodeError as exc:
            problems.append(f"merges.txt: not UTF-8 ({exc})")
        tokenizer.append("merges.txt")
    if not ({"tokenizer.json", "tokenizer_config.json"} & set(tokenizer)):
        problems.append("no tokenizer.json or tokenizer_config.json")
    globs = [str(g) for g in spec.get("non_parameter_globs") or []]
    params = tensors = 0
    unreadable = False
    weights = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.safetensors"))
    for rel in weights:
        try:
            shapes = safetensors_tensors(root / rel)
        except Exception as exc:
            problems.append(
                f"{rel}: header does not parse ({type(exc).__name__}: {str(exc)[:200]})"
            )
            unreadable = True
            continue
        for name, shape in shapes.items():
            tensors += 1
            if any(fnmatch.fnmatchcase(name, g) for g in globs):
                continue
            n = 1
            for d in shape:
                n *= d
            params += n
    if not weights:
        problems.append("no .safetensors weights in the snapshot")
    want = spec.get("parameters")
    tol = float(spec.get("tolerance", 0.01))
    if want and weights and not unreadable and abs(params - int(want)) > tol * int(want):
        problems.append(
            f"{', '.join(weights)}: {params} parameters, the "
            f"catalog expects {want} (tolerance {tol:.1%})"
        )
    return {
        "problems": problems,
        "measured": {
            "parameters": params,
            "tensors": tensors,
            "weight_files": len(weights),
            "tokenizer_files": sorted(tokenizer),
            "model_type": config.get("model_type") if isinstance(config, dict) else None,
        },
        "reader": "stdlib (json, safetensors header); torch is not needed",
    }


# ------------------------------------------------------------------ torchvision layouts

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def idx_count(path: Path, magic: int, dims: int) -> int:
    """Items in an idx file, after checking the header against the file size."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4 + 4 * dims)
    if len(head) < 4 + 4 * dims:
        raise ValueError(f"{size} bytes: shorter than the idx header")
    got, *shape = struct.unpack(f">I{dims}I", head)
    if got != magic:
        raise ValueError(f"magic {got} is not {magic}")
    body = 1
    for d in shape:
        body *= d
    if size != 4 + 4 * dims + body:
        raise ValueError(f"{size} bytes, the header says {4 + 4 * dims + body} (shape {shape})")
    return int(shape[0])


class _Inert:
    """Stands for numpy's classes inside a CIFAR pickle: records arguments, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def shape(self) -> tuple[int, ...] | None:
        if (
            self.state
            and isinstance(self.state, tuple)
            and len(self.state) >= 2
            and isinstance(self.state[1], tuple)
        ):
            return tuple(
                int(x) for x in self.state[1]
            )  # numpy's (version, shape, dtype, fortran, data)
        if self.args and isinstance(self.args[0], tuple):
            return tuple(int(x) for x in self.args[0])  # ndarray(shape, dtype, buffer)
        return None


class _SafeUnpickler(pickle.Unpickler):
    """Builds no object but plain containers and _Inert: a pickle cannot run code here."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return _Inert
        raise pickle.UnpicklingError(f"refusing {module}.{name}")


def cifar_batch_rows(path: Path) -> int:
    with open(path, "rb") as fh:
        batch = _SafeUnpickler(fh, encoding="latin1").load()
    if not isinstance(batch, dict):
        raise ValueError("not a dict")
    labels = batch.get("labels", batch.get("fine_labels"))
    data = batch.get("data")
    if not isinstance(labels, list) or not isinstance(data, _Inert):
        raise ValueError("no labels list and data array")
    shape = data.shape()
    if shape is None or shape[0] != len(labels) or (len(shape) > 1 and shape[1] != 3072):
        raise ValueError(f"data shape {shape} does not fit {len(labels)} labels of 3072 values")
    return len(labels)


def _torchvision_rows(root: Path, cls: str, md5: dict[str, str]) -> dict[str, int]:
    """Items per split as torchvision's own class sees them (download=False). A mirror with
    its own files (the catalog's `source.md5`) gets a subclass with those md5s, since the
    CIFAR classes check the real files' md5s."""
    import torchvision.datasets as tvd

    base = getattr(tvd, cls)
    attrs: dict[str, Any] = {}
    if md5 and hasattr(base, "train_list"):
        attrs["train_list"] = [[n, md5.get(n, m)] for n, m in base.train_list]
        attrs["test_list"] = [[n, md5.get(n, m)] for n, m in base.test_list]
        attrs["meta"] = {**base.meta, "md5": md5.get(base.meta["filename"], base.meta["md5"])}
    dataset = type(f"Catalog{cls}", (base,), attrs) if attrs else base
    return {
        split: len(dataset(str(root), train=split == "train", download=False))
        for split in ("train", "test")
    }


def check_torchvision(root: Path, spec: dict[str, Any]) -> dict[str, Any]:
    cls = str(spec["dataset_class"])
    expected = {str(k): int(v) for k, v in (spec.get("splits") or {}).items()}
    problems: list[str] = []
    per_split: dict[str, int] = {}
    try:
        import torchvision

        reader = (
            f"stdlib layout checks, then torchvision {torchvision.__version__} (download=False)"
        )
    except ImportError:
        torchvision = None
        reader = "stdlib, in torchvision's layout"
    note = (
        ""
        if torchvision is not None
        else (
            "torchvision (and torch) are not importable by hpc.python: the files were checked in "
            "torchvision's layout with the standard library (idx headers against file sizes, "
            "CIFAR pickles unpickled inertly), not loaded by torchvision itself"
        )
    )
    if cls == "MNIST":
        raw = "MNIST/raw"
        for split, (images, labels) in MNIST_FILES.items():
            counts = []
            for name, magic, dims in ((images, 2051, 3), (labels, 2049, 1)):
                try:
                    counts.append(idx_count(root / raw / name, magic, dims))
                except FileNotFoundError:
                    problems.append(f"{raw}/{name}: missing (torchvision's MNIST needs it)")
                except ValueError as exc:
                    problems.append(f"{raw}/{name}: {exc}")
            if len(counts) == 2:
                if counts[0] != counts[1]:
                    problems.append(f"{raw}/{images}: {counts[0]} images but {counts[1]} labels")
                per_split[split] = counts[0]
    elif cls == "CIFAR10":
        base = "cifar-10-batches-py"
        for split, names in CIFAR10_FILES.items():
            total = 0
            for name in names:
                try:
                    total += cifar_batch_rows(root / base / name)
                except FileNotFoundError:
                    problems.append(f"{base}/{name}: missing (torchvision's CIFAR10 needs it)")
                except Exception as exc:
                    problems.append(
                        f"{base}/{name}: does not unpickle ({type(exc).__name__}: {str(exc)[:160]})"
                    )
            per_split[split] = total
        try:
            with open(root / base / "batches.meta", "rb") as fh:
                meta = _SafeUnpickler(fh, encoding="latin1").load()
            if not isinstance(meta, dict) or len(meta.get("label_names", [])) != 10:
                problems.append(f"{base}/batches.meta: no 10 label_names")
        except FileNotFoundError:
            problems.append(f"{base}/batches.meta: missing (torchvision's CIFAR10 needs it)")
        except Exception as exc:
            problems.append(f"{base}/batches.meta: does not unpickle ({type(exc).__name__})")
    else:
        problems.append(f"no load check for torchvision {cls}: add it to payloads/load_check.py")
    if torchvision is not None and not problems:
        try:
            md5 = {str(k).rsplit("/", 1)[-1]: str(v) for k, v in (spec.get("md5") or {}).items()}
            per_split = _torchvision_rows(root, cls, md5)
        except Exception as exc:
            problems.append(
                f"torchvision.datasets.{cls}(download=False) "
                f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            )
    for split, want in expected.items():
        if split in per_split and per_split[split] != want:
            problems.append(f"split {split}: {per_split[split]} items, the catalog expects {want}")
    return {
        "problems": problems,
        "measured": {"rows_per_split": per_split},
        "reader": reader,
        "note": note,
    }


CHECKS = {"hub_dataset": check_hub_dataset, "model": check_model, "torchvision": check_torchvision}


def check(spec: dict[str, Any]) -> dict[str, Any]:
    root = Path(str(spec["root"]))
    kind = str(spec["kind"])
    if kind not in CHECKS:
        return {
            "ok": False,
            "problems": [f"unknown kind {kind!r}"],
            "measured": {},
            "reader": "",
            "note": "",
        }
    if not root.is_dir():
        return {
            "ok": False,
            "problems": [f"{root} is not a directory: not staged"],
            "measured": {},
            "reader": "",
            "note": "",
        }
    out = CHECKS[kind](root, spec)
    out.setdefault("note", "")
    out["ok"] = not out["problems"]
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: load_check.py SPEC_JSON", file=sys.stderr)
        return 2
    out = check(json.loads(args[0]))
    print(json.dumps(out, sort_keys=True, default=str))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    raise SystemExit(main())
