"""Supervised fine-tuning smoke: the training loop of validation task MLOPS-1.2 (SmolLM-135M
on HuggingFaceH4/no_robots), in plain torch.

MLOPS-1.2 itself is `oumi train` in the Oumi image on a GPU. This payload is the same shape of
work with nothing but torch, so it runs wherever the smoke jobs run, the sandbox included:

- the model: a Llama decoder (RMSNorm, rotary, grouped-query attention, SwiGLU MLP, tied
  embeddings) built from the staged `config.json` and loaded strictly from the staged
  `model.safetensors` (parsed here: torch 1.13 and no `safetensors` package on the sandbox's
  HPC Python), so every tensor is used and none is missing;
- the tokenizer: `tokenizers` when importable; else a pure-Python byte-level BPE read from the
  same `tokenizer.json` (vocab, merges, special tokens; Python's `re` classes stand in for
  `\\p{L}`/`\\p{N}` in the pre-tokenizer), said so in `tokenizer` and checked by an exact
  round trip;
- the data: the staged parquet's `messages` as ChatML (`<|im_start|>role ... <|im_end|>`),
  loss on the assistant's tokens only, `train_rows` rows, truncated to `max_seq_length`;
- AdamW, batch x gradient accumulation, bf16 autocast on CUDA, float32 on CPU.

It writes `model.safetensors` (the input's tensor names, so transformers can load it), the
config and tokenizer files and `metrics.json` to `<models_dir>/<output_name>/job-<id>/`
(temp dir + rename), reloads that checkpoint into a fresh model and compares its loss, and
judges with `mlops_smoke_rules.judge_sft`. A model whose parameter count is not the task's
(`task_parameters`, SmolLM-135M's 134,515,008) is a stand-in, and the result says so.

Runs ON THE HPC SIDE: `python sft_train.py --set model_dir=... --set dataset_dir=...`;
standard library + torch + pyarrow. Prints one JSON result line; Pipes when present.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import struct
import sys
import time
from collections.abc import Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from smoke_common import (
    GpuSampler,
    Log,
    max_rss_bytes,
    one_training_device,
    publish_model,
    rules,
    run,
    write_json,
)

DEFAULTS: dict[str, Any] = {
    "model_dir": "",
    "dataset_dir": "",
    "models_dir": "/mnt/beegfs/models",
    "output_name": "smollm_135m-sft",
    "expected_parameters": None,  # the catalog's count for the staged model
    "parameters_tolerance": 0.01,
    "task_parameters": rules.SFT_TASK_PARAMETERS,
    "train_rows": 1000,  # MLOPS-1.2: train[:1000]
    "eval_rows": 32,
    "epochs": 1,
    "batch_size": 4,
    "grad_accum": 4,
    "lr": 2e-5,
    "max_seq_length": 512,
    "max_steps": 0,  # optimizer steps; 0: no cap
    "log_every": 5,  # optimizer steps per logged loss window
    "min_loss_drop_fraction": 0.01,
    "max_seconds": 1200,
    "seed": 0,
    "allow_cpu": False,
}
TOKENIZER_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)
IGNORE = -100

# ------------------------------------------------------------------------ safetensors

_ST_DTYPES = {  # safetensors dtype -> (torch attribute, bytes per element)
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
_ST_NAMES = {torch_name: st for st, (torch_name, _) in _ST_DTYPES.items()}


def read_safetensors(path: str, torch: Any) -> dict[str, Any]:
    """Every tensor of a safetensors file: an 8-byte little-endian header length, a JSON
    header {name: {dtype, shape, data_offsets}}, then the raw little-endian bytes. Each
    tensor's byte range must match its dtype and shape and lie inside the file."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 8:
        raise ValueError(f"{path}: {len(data)} bytes, not a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file ({len(data)} bytes)")
    header = json.loads(data[8 : 8 + n])
    body = memoryview(data)[8 + n :]
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in _ST_DTYPES:
            raise ValueError(f"{path}: {name} has dtype {meta['dtype']}, not supported here")
        attr, size = _ST_DTYPES[meta["dtype"]]
        start, end = meta["data_offsets"]
        count = math.prod(meta["shape"])
        if end - start != count * size or end > len(body):
            raise ValueError(
                f"{path}: {name} {meta['dtype']}{meta['shape']} needs {count * size} bytes at "
                f"{start}, the header gives {start}..{end} of {len(body)}"
            )
        raw = bytearray(body[start:end])
        t = torch.frombuffer(raw, dtype=getattr(torch, attr)) if count else torch.empty(0)
        out[name] = t.reshape(meta["shape"]).clone()
    return out


def write_safetensors(path: str, tensors: dict[str, Any], torch: Any) -> None:
    """The inverse of :func:`read_safetensors` (header padded to 8 bytes, as the format asks)."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        dtype = _ST_NAMES[str(t.dtype).removeprefix("torch.")]
        header[name] = {
            "dtype": dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(head)) + head)
        for b in blobs:
            fh.write(b)


# ------------------------------------------------------------------------ the model


def llama(torch: Any, cfg: dict[str, Any]) -> Any:
    """A LlamaForCausalLM in plain torch whose state_dict names are transformers' own."""
    nn, f = torch.nn, torch.nn.functional
    if cfg.get("model_type") not in ("llama", None) or cfg.get("rope_scaling"):
        raise ValueError(
            f"config.json: model_type {cfg.get('model_type')!r}, rope_scaling "
            f"{cfg.get('rope_scaling')!r}: only a plain Llama decoder is implemented here"
        )
    if cfg.get("hidden_act", "silu") != "silu":
        raise ValueError(f"config.json: hidden_act {cfg['hidden_act']!r}, only silu here")
    h, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or h // heads)
    eps, theta = float(cfg.get("rms_norm_eps", 1e-6)), float(cfg.get("rope_theta", 10000.0))
    attn_bias, mlp_bias = bool(cfg.get("attention_bias")), bool(cfg.get("mlp_bias"))
    sdpa = getattr(f, "scaled_dot_product_attention", None)  # torch >= 2.0

    class RMSNorm(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(h))

        def forward(self, x: Any) -> Any:
            x32 = x.float()
            x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
            return self.weight * x32.to(x.dtype)

    def rotate_half(x: Any) -> Any:
        a, b = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
        return torch.cat((-b, a), dim=-1)

    class Attention(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.q_proj = nn.Linear(h, heads * head_dim, bias=attn_bias)
            self.k_proj = nn.Linear(h, kv_heads * head_dim, bias=attn_bias)
            self.v_proj = nn.Linear(h, kv_heads * head_dim, bias=attn_bias)
            self.o_proj = nn.Linear(heads * head_dim, h, bias=attn_bias)

        def forward(self, x: Any, cos: Any, sin: Any) -> Any:
            b, t, _ = x.shape
            q = self.q_proj(x).view(b, t, heads, head_dim).transpose(1, 2)
            k = self.k_proj(x).view(b, t, kv_heads, head_dim).transpose(1, 2)
            v = self.v_proj(x).view(b, t, kv_heads, head_dim).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            if kv_heads != heads:
                k = k.repeat_interleave(heads // kv_heads, dim=1)
                v = v.repeat_interleave(heads // kv_heads, dim=1)
            if sdpa is not None:
                out = sdpa(q, k, v, is_causal=True)
            else:
                s = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim)
                mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
                out = s.masked_fill(mask, float("-inf")).softmax(-1) @ v
            return self.o_proj(out.transpose(1, 2).reshape(b, t, heads * head_dim))

    class Mlp(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            inter = int(cfg["intermediate_size"])
            self.gate_proj = nn.Linear(h, inter, bias=mlp_bias)
            self.up_proj = nn.Linear(h, inter, bias=mlp_bias)
            self.down_proj = nn.Linear(inter, h, bias=mlp_bias)

        def forward(self, x: Any) -> Any:
            return self.down_proj(f.silu(self.gate_proj(x)) * self.up_proj(x))

    class Layer(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.input_layernorm, self.post_attention_layernorm = RMSNorm(), RMSNorm()
            self.self_attn, self.mlp = Attention(), Mlp()

        def forward(self, x: Any, cos: Any, sin: Any) -> Any:
            x = x + self.self_attn(self.input_layernorm(x), cos, sin)
            return x + self.mlp(self.post_attention_layernorm(x))

    class Inner(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.embed_tokens = nn.Embedding(int(cfg["vocab_size"]), h)
            self.layers = nn.ModuleList(Layer() for _ in range(int(cfg["num_hidden_layers"])))
            self.norm = RMSNorm()

    class CausalLM(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.model = Inner()
            self.tied = bool(cfg.get("tie_word_embeddings", False))
            if not self.tied:
                self.lm_head = nn.Linear(h, int(cfg["vocab_size"]), bias=False)
            inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
            self.register_buffer("inv_freq", inv, persistent=False)

        def forward(self, ids: Any) -> Any:
            t = ids.shape[1]
            freqs = torch.outer(torch.arange(t, device=ids.device).float(), self.inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)
            x = self.model.embed_tokens(ids)
            cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
            for layer in self.model.layers:
                x = layer(x, cos, sin)
            x = self.model.norm(x)
            w = self.model.embed_tokens.weight if self.tied else self.lm_head.weight
            return x @ w.t()

    return CausalLM()


def load_model(torch: Any, model_dir: str) -> tuple[Any, dict[str, Any], int]:
    """(model, config, parameters): built from config.json, every tensor of the
    model.safetensors files loaded with strict=True (a missing or unused tensor raises)."""
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as fh:
        cfg = json.load(fh)
    weights = sorted(n for n in os.listdir(model_dir) if n.endswith(".safetensors"))
    if not weights:
        raise FileNotFoundError(
            f"no .safetensors in {model_dir}: stage the model first (materialize its model_ asset)"
        )
    state: dict[str, Any] = {}
    for name in weights:
        state.update(read_safetensors(os.path.join(model_dir, name), torch))
    model = llama(torch, cfg)
    if model.tied:  # a tied export may still carry lm_head.weight: the same tensor
        state.pop("lm_head.weight", None)
    want = set(model.state_dict())
    missing, unused = sorted(want - set(state)), sorted(set(state) - want)
    if missing or unused:
        raise ValueError(
            f"{model_dir}: the checkpoint does not fit config.json: missing {missing[:5]}, "
            f"unused {unused[:5]}"
        )
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model, cfg, sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------ tokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table, which byte-level BPE vocabularies use."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


# GPT-2's pre-tokenizer; \p{L} -> [^\W\d_], \p{N} -> \d, [^\s\p{L}\p{N}] -> [^\s\w]|_
_PRE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")


class ByteLevelBpe:
    """tokenizer.json's byte-level BPE in pure Python: the fallback where `tokenizers` is not
    installed. Same vocabulary, merges and special tokens; the pre-tokenizer regex uses
    Python's classes for \\p{L}/\\p{N}, so rare scripts may split differently (ids stay valid,
    and decode(encode(text)) == text holds for any text)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        model = spec.get("model") or {}
        if model.get("type") != "BPE":
            raise ValueError(f"tokenizer.json model type {model.get('type')!r}, not BPE")
        pre = spec.get("pre_tokenizer") or {}
        parts: list[dict[str, Any]] = (
            pre.get("pretokenizers") or [] if pre.get("type") == "Sequence" else [pre]
        )
        kinds = [p.get("type") for p in parts]
        if "ByteLevel" not in kinds or set(kinds) - {"ByteLevel", "Digits"}:
            raise ValueError(f"tokenizer.json pre_tokenizer {kinds}: only ByteLevel (+Digits)")
        self.split_digits = any(
            p.get("type") == "Digits" and p.get("individual_digits") for p in parts
        )
        self.vocab: dict[str, int] = model["vocab"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.special = {t["content"]: int(t["id"]) for t in spec.get("added_tokens") or []}
        self.inverse = {i: t for t, i in self.vocab.items()}
        self.byte_char = _bytes_to_unicode()
        self.char_byte = {c: b for b, c in self.byte_char.items()}
        self.cache: dict[str, list[int]] = {}

    def _bpe(self, word: str) -> list[int]:
        parts = list(word)
        while len(parts) > 1:
            never = len(self.ranks)
            rank, i = min(
                (self.ranks.get(pair, never), i) for i, pair in enumerate(itertools.pairwise(parts))
            )
            if rank == never:
                break
            parts[i : i + 2] = [parts[i] + parts[i + 1]]
        return [self.vocab[p] for p in parts]

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for piece in _PRE.findall(text):
            for chunk in re.findall(r"\d|\D+", piece) if self.split_digits else [piece]:
                if chunk not in self.cache:
                    word = "".join(self.byte_char[b] for b in chunk.encode("utf-8"))
                    self.cache[chunk] = self._bpe(word)
                ids.extend(self.cache[chunk])
        return ids

    def decode(self, ids: list[int]) -> str:
        chars = "".join(self.inverse[i] for i in ids)
        return bytes(self.char_byte[c] for c in chars).decode("utf-8", errors="replace")


def load_tokenizer(model_dir: str) -> tuple[Any, Any, dict[str, int], str]:
    """(encode, decode, special tokens, what tokenized): `tokenizers` if installed, else the
    pure-Python byte-level BPE of the same tokenizer.json."""
    path = os.path.join(model_dir, "tokenizer.json")
    with open(path, encoding="utf-8") as fh:
        spec = json.load(fh)
    special = {t["content"]: int(t["id"]) for t in spec.get("added_tokens") or []}
    try:
        import tokenizers
    except ImportError:
        bpe = ByteLevelBpe(spec)
        return (
            bpe.encode,
            bpe.decode,
            special,
            "pure-python byte-level BPE from tokenizer.json (the tokenizers package is not "
            "installed)",
        )
    tok = tokenizers.Tokenizer.from_file(path)
    return (
        lambda s: tok.encode(s, add_special_tokens=False).ids,
        lambda ids: tok.decode(ids, skip_special_tokens=False),
        special,
        f"tokenizers {tokenizers.__version__}",
    )


# ------------------------------------------------------------------------ data


def parquet_rows(dataset_dir: str, split: str, limit: int) -> list[dict[str, Any]]:
    """The first `limit` rows of `<dataset_dir>/data/<split>-*.parquet`, in file order."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise RuntimeError(f"pyarrow is needed to read the staged parquet files: {exc}") from exc
    data = os.path.join(dataset_dir, "data")
    names = os.listdir(data) if os.path.isdir(data) else []
    files = sorted(n for n in names if n.startswith(f"{split}-") and n.endswith(".parquet"))
    if not files:
        raise FileNotFoundError(
            f"no {split}-*.parquet in {data}: stage the dataset first (materialize its dataset_ "
            "asset)"
        )
    rows: list[dict[str, Any]] = []
    for name in files:
        rows += pq.read_table(os.path.join(data, name), columns=["messages"]).to_pylist()
        if len(rows) >= limit:
            break
    return rows[:limit]


def chat_example(
    messages: list[dict[str, str]], encode: Any, special: dict[str, int], max_len: int
) -> tuple[list[int], list[int]] | None:
    """ChatML ids and labels: every turn is `<|im_start|>role\\ncontent<|im_end|>\\n`; only
    the assistant's content and its `<|im_end|>` are labels (the rest is IGNORE). None when
    no assistant token survives truncation to `max_len`."""
    start, end = special.get("<|im_start|>"), special.get("<|im_end|>")
    if start is None or end is None:
        raise ValueError("the tokenizer has no <|im_start|>/<|im_end|> special tokens")
    ids: list[int] = []
    labels: list[int] = []
    newline = encode("\n")
    for m in messages:
        head = [start, *encode(f"{m['role']}\n")]
        body = [*encode(m["content"]), end]
        ids += head + body + newline
        learn = m["role"] == "assistant"
        labels += [IGNORE] * len(head) + (body if learn else [IGNORE] * len(body))
        labels += [IGNORE] * len(newline)
    ids, labels = ids[:max_len], labels[:max_len]
    # a causal LM predicts token i+1 from tokens <= i: labels are shifted when the loss is taken
    return (ids, labels) if any(x != IGNORE for x in labels[1:]) else None


def batches(
    torch: Any, examples: list[tuple[list[int], list[int]]], size: int, order: list[int]
) -> Iterator[tuple[Any, Any, int]]:
    """Right-padded (ids, labels) tensors and their real token count; pads are never labels
    and, with a causal mask, never attended to by a real token."""
    for i in range(0, len(order), size):
        chunk = [examples[j] for j in order[i : i + size]]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        labels = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
        for r, (a, b) in enumerate(chunk):
            ids[r, : len(a)] = torch.tensor(a)
            labels[r, : len(b)] = torch.tensor(b)
        yield ids, labels, sum(len(a) for a, _ in chunk)


def loss_sum(torch: Any, model: Any, ids: Any, labels: Any) -> tuple[Any, int]:
    """(summed next-token cross-entropy over labelled positions, how many)."""
    logits = model(ids)[:, :-1].float()
    target = labels[:, 1:]
    n = int((target != IGNORE).sum())
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        target.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    return loss, n


def mean_loss(torch: Any, model: Any, examples: list[Any], dev: Any, autocast: Any) -> float:
    total, count = 0.0, 0
    with torch.no_grad(), autocast():
        for ids, labels, _ in batches(torch, examples, 8, list(range(len(examples)))):
            s, n = loss_sum(torch, model, ids.to(dev), labels.to(dev))
            total, count = total + float(s), count + n
    return total / max(count, 1)


# ------------------------------------------------------------------------ training


def _write(out_dir: str, model: Any, cfg_dir: str, metrics: dict[str, Any], torch: Any) -> None:
    """Checkpoint as the input came (model.safetensors, config and tokenizer files) plus
    metrics.json, published whole (smoke_common.publish_model)."""

    def files(tmp: str) -> None:
        write_safetensors(os.path.join(tmp, "model.safetensors"), dict(model.state_dict()), torch)
        for name in TOKENIZER_FILES:
            if os.path.exists(os.path.join(cfg_dir, name)):
                shutil.copyfile(os.path.join(cfg_dir, name), os.path.join(tmp, name))

    publish_model(out_dir, metrics, files)


def measure(cfg: dict[str, Any], log: Log) -> dict[str, Any]:
    import contextlib

    start = one_training_device(cfg)
    if start.failed is not None:
        return start.failed
    torch, dev, use_cuda = start.torch, start.dev, start.use_cuda
    bf16 = use_cuda and torch.cuda.is_bf16_supported()

    def autocast() -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    model_dir, dataset_dir = str(cfg["model_dir"]), str(cfg["dataset_dir"])
    model, _, params = load_model(torch, model_dir)
    model.to(dev)
    encode, decode, special, tokenizer = load_tokenizer(model_dir)
    max_len = int(cfg["max_seq_length"])
    rows = parquet_rows(dataset_dir, "train", int(cfg["train_rows"]))
    examples = [e for r in rows if (e := chat_example(r["messages"], encode, special, max_len))]
    held = parquet_rows(dataset_dir, "test", int(cfg["eval_rows"]))
    evals = [e for r in held if (e := chat_example(r["messages"], encode, special, max_len))]
    sample = rows[0]["messages"][-1]["content"] if rows else ""
    roundtrip = decode(encode(sample)) == sample
    stand_in = rules.sft_stand_in(params, cfg.get("task_parameters"))
    log(
        f"SFT on {dev}: {params:,} parameters ({'stand-in' if stand_in else 'the task model'}), "
        f"{len(examples)} of {len(rows)} train rows, tokenizer: {tokenizer}"
    )
    if not examples:
        raise ValueError(f"no training example has an assistant token within {max_len} tokens")

    bs, accum, epochs = int(cfg["batch_size"]), int(cfg["grad_accum"]), int(cfg["epochs"])
    max_steps, log_every = int(cfg["max_steps"] or 0), max(1, int(cfg["log_every"]))
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg["lr"]), weight_decay=0.0)
    gen = torch.Generator().manual_seed(int(cfg["seed"]))
    eval_before = mean_loss(torch, model, evals, dev, autocast) if evals else None
    if use_cuda:
        torch.cuda.reset_peak_memory_stats()
    windows: list[float] = []
    epoch_losses: list[float] = []
    step, samples, tokens, win_loss, win_n = 0, 0, 0, 0.0, 0
    t_train = time.monotonic()
    with GpuSampler() if use_cuda else contextlib.nullcontext() as sampler:
        model.train()
        for _ in range(epochs):
            ep_loss, ep_n = 0.0, 0
            order = torch.randperm(len(examples), generator=gen).tolist()
            micro = list(batches(torch, examples, bs, order))
            for i in range(0, len(micro), accum):
                group = micro[i : i + accum]
                n_group = sum(int((lab[:, 1:] != IGNORE).sum()) for _, lab, _ in group)
                opt.zero_grad(set_to_none=True)
                for ids, labels, n_tokens in group:
                    with autocast():
                        s, n = loss_sum(torch, model, ids.to(dev), labels.to(dev))
                    (s / max(n_group, 1)).backward()
                    win_loss, win_n = win_loss + float(s.detach()), win_n + n
                    ep_loss, ep_n = ep_loss + float(s.detach()), ep_n + n
                    samples += int(ids.shape[0])
                    tokens += n_tokens
                opt.step()
                step += 1
                if step % log_every == 0:
                    windows.append(round(win_loss / max(win_n, 1), 5))
                    win_loss, win_n = 0.0, 0
                if max_steps and step >= max_steps:
                    break
            epoch_losses.append(round(ep_loss / max(ep_n, 1), 5))
            log(f"epoch {len(epoch_losses)}/{epochs}: mean loss {epoch_losses[-1]}, step {step}")
            if max_steps and step >= max_steps:
                break
        if win_n:
            windows.append(round(win_loss / win_n, 5))
        if use_cuda:
            torch.cuda.synchronize()
    train_s = time.monotonic() - t_train
    model.eval()
    eval_after = mean_loss(torch, model, evals, dev, autocast) if evals else None
    job = os.environ.get("SLURM_JOB_ID") or f"local-{int(time.time())}"
    out_dir = os.path.join(str(cfg["models_dir"]), str(cfg["output_name"]), f"job-{job}")
    metrics: dict[str, Any] = {
        "epochs": len(epoch_losses),
        "steps": step,
        "loss": windows[-1] if windows else None,
        "first_loss": windows[0] if windows else None,
        "last_loss": windows[-1] if windows else None,
        "window_losses": windows,
        "log_every_steps": log_every,
        "epoch_losses": epoch_losses,
        "eval_loss_before": None if eval_before is None else round(eval_before, 5),
        "eval_loss_after": None if eval_after is None else round(eval_after, 5),
        "training_time_seconds": round(train_s, 3),
        "train_samples": samples,
        "train_rows": len(examples),
        "samples_per_second": round(samples / train_s, 2) if train_s > 0 else None,
        "tokens_per_second": round(tokens / train_s, 1) if train_s > 0 else None,
        "parameters": params,
        "expected_parameters": cfg.get("expected_parameters"),
        "task_parameters": cfg.get("task_parameters"),
        "stand_in": stand_in,
        "trainer": "torch",
        "tokenizer": tokenizer,
        "tokenizer_roundtrip_ok": roundtrip,
        "device": f"cuda ({torch.cuda.get_device_name(0)})" if use_cuda else "cpu",
        "precision": "bf16 autocast" if bf16 else "float32",
        "torch": torch.__version__,
        "batch_size": bs,
        "grad_accum": accum,
        "lr": float(cfg["lr"]),
        "max_seq_length": max_len,
        "max_rss_bytes": max_rss_bytes(),
        "cuda_max_memory_allocated_bytes": (
            int(torch.cuda.max_memory_allocated()) if use_cuda else None
        ),
        **(sampler.figures() if use_cuda and sampler is not None else {}),
    }
    _write(out_dir, model, model_dir, metrics, torch)
    # the task's "checkpoint reloads": the written file into a fresh model, the same loss
    reloaded, _, _ = load_model(torch, out_dir)
    reloaded.to(dev).eval()
    probe = evals[:8] or examples[:8]
    a = mean_loss(torch, model, probe, dev, autocast)
    b = mean_loss(torch, reloaded, probe, dev, autocast)
    metrics["checkpoint_reloads"] = math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
    metrics["checkpoint_reload_loss"] = [round(a, 6), round(b, 6)]
    total_s = round(time.monotonic() - start.started, 3)
    judged = rules.judge_sft(
        {**metrics, "total_seconds": total_s},
        min_loss_drop_fraction=float(cfg["min_loss_drop_fraction"]),
        max_seconds=float(cfg["max_seconds"]),
        parameters_tolerance=float(cfg["parameters_tolerance"]),
    )
    metrics.update(total_seconds=total_s, verdict=judged["verdict"], messages=judged["messages"])
    write_json(os.path.join(out_dir, "metrics.json"), metrics)
    log(
        f"loss {metrics['first_loss']} -> {metrics['last_loss']} in {step} steps, "
        f"{train_s:.1f}s training, {total_s:.1f}s total: {judged['verdict']} -> {out_dir}"
    )
    return {
        **start.result(metrics, judged, total_s, out_dir),
        "min_loss_drop_fraction": float(cfg["min_loss_drop_fraction"]),
        "loss_drop_fraction": judged["loss_drop_fraction"],
        "max_seconds": float(cfg["max_seconds"]),
    }


if __name__ == "__main__":
    sys.exit(run("sft_train", measure, DEFAULTS))
