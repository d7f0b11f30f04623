"""The SFT smoke payload (MLOPS-1.2's loop) run for real with the HPC side's Python on the
sandbox hub mirror's stand-in SmolLM and no_robots files, copied into a tmp dir and laid out
as staging leaves them, with the sandbox catalog's settings; plus its verdict rule and its
by-hand safetensors, Llama and BPE pieces. Nothing is mocked."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.core import smoke_rules as rules
from mlops_assets.core.slurm_jobs import smoke_payload_config
from mlops_assets.platform import active
from mlops_assets_tests.sandbox_nodes import skip_or_fail

PAYLOADS = Path(__file__).resolve().parents[2] / "mlops_assets" / "payloads"
STATE = Path(os.environ.get("MLOPS_SANDBOX_HOME", "/var/lib/mlops-assets/sandbox"))
HUB = STATE / "data" / "hub" / "repos"
MODEL = HUB / "models" / "HuggingFaceTB" / "SmolLM-135M"
DATASET = HUB / "datasets" / "HuggingFaceH4" / "no_robots"


def hpc_python() -> str:
    """The catalog's HPC Python (torch and pyarrow, as the job has them)."""
    exe = active().catalog.hpc.python
    ok = subprocess.run([exe, "-c", "import torch, pyarrow"], capture_output=True, check=False)
    if ok.returncode != 0:
        skip_or_fail(f"{exe} cannot import torch and pyarrow (deploy: the HPC venv)")
    return exe


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The mirror's stand-in model and dataset, copied as a staged snapshot of each."""
    if not (MODEL / "model.safetensors").is_file() or not (DATASET / "data").is_dir():
        skip_or_fail(f"{MODEL} or {DATASET} missing: `mlops-assets sandbox up` generates them")
    root = tmp_path_factory.mktemp("staged")
    shutil.copytree(MODEL, root / "model")
    shutil.copytree(DATASET, root / "dataset")
    (root / "models").mkdir()
    return {"model": root / "model", "dataset": root / "dataset", "models": root / "models"}


def run_payload(staged: dict[str, Path], **overrides: Any) -> tuple[int, dict[str, Any], str]:
    """sft_train.py as the SLURM job runs it: the sandbox catalog's extras, the staged paths
    swapped for the copies, one CPU."""
    cfg = {
        **smoke_payload_config(active().catalog, "sft"),
        "model_dir": str(staged["model"]),
        "dataset_dir": str(staged["dataset"]),
        "models_dir": str(staged["models"]),
        **overrides,
    }
    cfg_file = staged["models"] / f"cfg-{len(list(staged['models'].iterdir()))}.json"
    cfg_file.write_text(json.dumps(cfg))
    proc = subprocess.run(
        [hpc_python(), str(PAYLOADS / "sft_train.py"), "--config", str(cfg_file)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "SLURM_CPUS_PER_TASK": "1"},
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture(scope="module")
def trained(staged: dict[str, Path]) -> dict[str, Any]:
    code, line, err = run_payload(staged)
    assert code == 0, (line.get("messages"), err[-2000:])
    return line


def test_stand_in_sft_loss_falls_and_the_checkpoint_reloads(trained: dict[str, Any]) -> None:
    sft = active().catalog.smoke.sft
    line = trained
    assert line["verdict"] == "PASS" and line["stand_in"] is True
    assert line["parameters"] == line["expected_parameters"] == 139_584
    assert line["device"] == "cpu" and line["cpu_fallback"] is True and line["torch_threads"] == 1
    assert line["last_loss"] < line["first_loss"] * (1 - sft.min_loss_drop_fraction)
    assert line["loss_drop_fraction"] >= sft.min_loss_drop_fraction
    assert line["eval_loss_after"] < line["eval_loss_before"], "held-out loss falls too"
    assert line["first_loss"] < math.log(1024) + 0.2, "starts near uniform over the 1,024 tokens"
    assert all(math.isfinite(w) for w in line["window_losses"]) and len(line["window_losses"]) > 5
    assert line["checkpoint_reloads"] is True and line["tokenizer_roundtrip_ok"] is True
    assert "pure-python byte-level BPE" in line["tokenizer"] or "tokenizers" in line["tokenizer"]
    assert line["samples_per_second"] > 0 and line["tokens_per_second"] > 0
    assert 0 < line["max_rss_bytes"] < active().catalog.smoke.jobs.sft.mem_mb * 2**20
    assert line["total_seconds"] < 60, "lean enough for a 2-core CI machine"
    assert any(m.startswith(rules.STAND_IN) and "not Oumi" in m for m in line["messages"]), (
        "a stand-in PASS says so"
    )
    assert not rules.gpu_figures_in(line), "no GPU figure is invented on the CPU"


def header(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    return dict(json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")]))


def test_checkpoint_is_the_input_layout_with_metrics(
    trained: dict[str, Any], staged: dict[str, Path]
) -> None:
    out = Path(trained["output_dir"])
    assert out.name.startswith("job-local-") and out.parent.name == "smollm_135m-sft"
    names = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "metrics.json"} <= names
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["first_loss"] == trained["first_loss"] and metrics["verdict"] == "PASS"
    assert metrics["checkpoint_reloads"] is True and metrics["stand_in"] is True
    written = header(out / "model.safetensors")
    source = header(staged["model"] / "model.safetensors")
    assert set(written) - {"__metadata__"} == set(source) - {"__metadata__"}, (
        "the staged model's tensor names: transformers loads it as it loaded the input"
    )
    assert all(written[k]["shape"] == source[k]["shape"] for k in source if k != "__metadata__")


def test_learning_rate_zero_does_not_learn_and_fails_naming_the_figures(
    staged: dict[str, Path],
) -> None:
    """Sabotaged training (lr 0 through the config): the loss stays at chance, so the verdict
    is FAIL with the first and last loss and the bar in its message; exit status 1."""
    code, line, _ = run_payload(staged, lr=0.0, train_rows=60)
    assert code == 1 and line["verdict"] == "FAIL"
    bar = active().catalog.smoke.sft.min_loss_drop_fraction
    assert abs(line["loss_drop_fraction"]) < bar / 2
    msg = next(m for m in line["messages"] if m.startswith("loss did not fall enough"))
    assert f"{line['first_loss']:.4f} -> {line['last_loss']:.4f}" in msg and f"{bar:.0%}" in msg
    assert msg in line["error"]


def test_missing_staged_model_fails_naming_the_asset(
    staged: dict[str, Path], tmp_path: Path
) -> None:
    code, line, _ = run_payload({**staged, "model": tmp_path / "nothing"})
    assert code == 1 and line["verdict"] == "FAIL"
    assert "config.json" in line["error"] or "stage the model" in line["error"]


def test_a_tensor_the_config_does_not_use_fails(staged: dict[str, Path], tmp_path: Path) -> None:
    """Strict loading: a checkpoint with a layer more than config.json describes fails."""
    model = tmp_path / "model"
    shutil.copytree(staged["model"], model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["num_hidden_layers"] = 1
    (model / "config.json").write_text(json.dumps(cfg))
    code, line, _ = run_payload({**staged, "model": model})
    assert code == 1 and "unused" in line["error"] and "model.layers.1." in line["error"]


# ---------------------------------------------------------------------- the rule, pure


def result(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "window_losses": [6.8, 6.2, 5.9],
        "first_loss": 6.8,
        "last_loss": 5.9,
        "steps": 50,
        "total_seconds": 10.0,
        "checkpoint_reloads": True,
        "parameters": 139_584,
        "expected_parameters": 139_584,
        "task_parameters": rules.SFT_TASK_PARAMETERS,
        "tokenizer_roundtrip_ok": True,
        "trainer": "torch",
        "device": "cpu",
    }
    return {**base, **over}


def judge(res: dict[str, Any], drop: float = 0.1) -> dict[str, Any]:
    return rules.judge_sft(res, min_loss_drop_fraction=drop, max_seconds=120)


def test_stand_in_passes_its_own_bar_and_says_stand_in() -> None:
    out = judge(result())
    assert out["verdict"] == "PASS" and out["stand_in"] is True
    assert [m for m in out["messages"] if m.startswith("stand-in") and "not Oumi" in m]
    assert "134,515,008" in out["messages"][0] and "139,584" in out["messages"][0]


def test_the_task_model_trained_by_plain_torch_is_a_warning() -> None:
    real = rules.SFT_TASK_PARAMETERS
    out = judge(result(parameters=real, expected_parameters=real), drop=0.01)
    assert out["verdict"] == "WARN" and out["stand_in"] is False
    assert "oumi train" in out["messages"][0]
    oumi = judge(result(parameters=real, expected_parameters=real, trainer="oumi"), drop=0.01)
    assert oumi["verdict"] == "PASS" and oumi["messages"] == []


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"last_loss": 6.5}, "loss did not fall enough: 6.8000 -> 6.5000"),
        ({"last_loss": 7.0}, "loss did not fall enough"),
        ({"window_losses": [6.8, float("nan")], "last_loss": float("nan")}, "not finite"),
        ({"window_losses": [6.8, float("inf"), 5.0], "last_loss": 5.0}, "window 2: inf"),
        ({"first_loss": None, "last_loss": None, "window_losses": []}, "no loss logged"),
        ({"total_seconds": 300.0}, "took 300.0 s, limit 120 s"),
        ({"checkpoint_reloads": False}, "did not reload"),
        ({"parameters": 100_000}, "100000 parameters, the catalog expects 139584"),
        ({"tokenizer_roundtrip_ok": False}, "does not decode"),
    ],
)
def test_sft_failures_name_what_failed(over: dict[str, Any], needle: str) -> None:
    out = judge(result(**over))
    assert out["verdict"] == "FAIL" and any(needle in m for m in out["messages"]), out
    assert any(m.startswith("stand-in") for m in out["messages"]), "still says stand-in"


def test_sft_config_reads_the_staged_paths_of_the_catalog() -> None:
    cat = active().catalog
    cfg = smoke_payload_config(cat, "sft")
    assert cfg["model_dir"] == cat.model_path("smollm_135m")
    assert cfg["dataset_dir"] == cat.dataset_path("no_robots")
    assert cfg["expected_parameters"] == cat.models["smollm_135m"].parameters == 139_584
    assert cfg["task_parameters"] == rules.SFT_TASK_PARAMETERS
    assert cfg["allow_cpu"] is cat.hpc.gpus.fake is True
    from mlops_assets.catalog.loader import load_catalog

    prod = load_catalog(profile="production").catalog
    p = smoke_payload_config(prod, "sft")
    assert (p["lr"], p["batch_size"], p["grad_accum"], p["max_seq_length"]) == (2e-5, 4, 4, 512)
    assert p["train_rows"] == 1000 and p["max_seconds"] == 1200 and p["allow_cpu"] is False
    assert prod.smoke.sft.container == "oumi" and p["expected_parameters"] == p["task_parameters"]


def test_bad_sft_references_fail_at_load() -> None:
    cat = active().catalog
    data = cat.model_dump()
    data["smoke"]["sft"].update(model="nope", dataset="mnist", container="nothing")
    from mlops_assets.catalog.schema import Catalog

    with pytest.raises(ValueError) as err:
        Catalog.model_validate(data)
    text = str(err.value)
    assert "smoke.sft.model 'nope'" in text and "smoke.sft.dataset 'mnist'" in text
    assert "smoke.sft.container 'nothing'" in text


# ------------------------------------------------------------ by-hand pieces, in-process


SAFETENSORS_ROUND_TRIP = """
import sys, torch
sys.path.insert(0, sys.argv[1])
import sft_train as s
t = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4).bfloat16()}
s.write_safetensors(sys.argv[2], t, torch)
back = s.read_safetensors(sys.argv[2], torch)
assert torch.equal(back["a"], t["a"]) and torch.equal(back["b"], t["b"]), back
data = open(sys.argv[2], "rb").read()
open(sys.argv[2], "wb").write(data[:-2])
try:
    s.read_safetensors(sys.argv[2], torch)
except ValueError as exc:
    print(exc)
"""


def test_safetensors_round_trip_and_truncation(tmp_path: Path) -> None:
    """The by-hand writer and reader agree (float32 and bf16), and a truncated file fails
    naming the tensor's byte range (run in the HPC Python: torch is there, not here)."""
    proc = subprocess.run(
        [hpc_python(), "-c", SAFETENSORS_ROUND_TRIP, str(PAYLOADS), str(tmp_path / "m.st")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "b BF16[4] needs 8 bytes" in proc.stdout, proc.stdout


def test_chat_labels_only_the_assistant() -> None:
    sys.path.insert(0, str(PAYLOADS))
    import sft_train

    special = {"<|im_start|>": 1, "<|im_end|>": 2}

    def encode(text: str) -> list[int]:
        return [10 + (ord(c) % 50) for c in text]

    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    ex = sft_train.chat_example(msgs, encode, special, 512)
    assert ex is not None
    ids, labels = ex
    learned = [i for i, lab in zip(ids, labels, strict=True) if lab != sft_train.IGNORE]
    assert learned == [*encode("yo"), 2], "the reply and its <|im_end|>, nothing else"
    assert sft_train.chat_example(msgs, encode, special, 6) is None, "reply cut off: skipped"
