"""The smoke tests (`smoke:`): GPU profiles, the SLURM resources of each smoke job, the
multi-node DDP, CIFAR-10 DDP and SFT smokes, and their thresholds. No Dagster imports."""

from typing import Literal, Self

from pydantic import Field, model_validator

from mlops_assets.catalog.schema.fields import Freshness, _Strict
from mlops_assets.catalog.schema.hpc import SmokeJob


class GpuProfile(_Strict):
    """Expected figures of one GPU model, judged as ReFrame references are: PASS at or above
    warn_fraction x expected, WARN down to fail_fraction, FAIL below."""

    match: list[str] = Field(
        min_length=1, description="substrings of the torch/nvidia-smi GPU name"
    )
    matmul_bf16_tflops: float = Field(gt=0, description="8192^3 bf16 matmul through torch")
    copy_gbps: float = Field(gt=0, description="device-to-device copy, GB/s counting read + write")
    allreduce_busbw_gbps: float | None = Field(
        default=None, gt=0, description="2-GPU NCCL all-reduce bus bandwidth at >= 1 GiB"
    )
    warn_fraction: float = Field(default=0.9, gt=0, le=1)
    fail_fraction: float = Field(default=0.75, gt=0, le=1)
    source: str = Field(default="", description="where the expected figures come from")

    @model_validator(mode="after")
    def _fractions(self) -> Self:
        if self.fail_fraction > self.warn_fraction:
            raise ValueError("fail_fraction must not exceed warn_fraction")
        return self


class SmokeJobs(_Strict):
    gpu: SmokeJob = SmokeJob(gpus=1, cpus=2, mem_mb=8192, time_limit_min=10)
    nccl: SmokeJob = SmokeJob(gpus=2, cpus=4, mem_mb=16384, time_limit_min=10)
    mnist: SmokeJob = SmokeJob(gpus=1, cpus=4, mem_mb=8192, time_limit_min=10)
    ddp: SmokeJob = Field(
        default=SmokeJob(gpus=1, cpus=4, mem_mb=8192, time_limit_min=15),
        description="per node of the multi-node DDP smoke (one task per node)",
    )
    sft: SmokeJob = Field(
        default=SmokeJob(gpus=1, cpus=4, mem_mb=16384, time_limit_min=30),
        description="MLOPS-1.2: --gres=gpu:1 --mem=16G --time=00:30:00",
    )
    cifar_ddp: SmokeJob = Field(
        default=SmokeJob(gpus=1, cpus=8, mem_mb=16384, time_limit_min=20),
        description="per node of MLOPS-2.1's DDP job (one task per node)",
    )


class _MultiNodeDdp(_Strict):
    """What the two DDP smokes share (the CIFAR-10 payload trains through the MNIST one's DDP
    code): one rank per node of one SLURM job, rank 0 waiting for the others, a collective
    timeout, and the speedup over one rank alone, judged or only reported."""

    nodes: int = Field(default=2, ge=2, description="nodes the job spans (one rank per node)")
    min_speedup: float | None = Field(
        default=None,
        gt=0,
        description="samples/s across the ranks over one rank's (same model and batch); below "
        "it is a WARN; unset: the speedup is reported, not judged (a WARN that says so)",
    )
    join_timeout_s: int = Field(default=120, ge=5, description="how long rank 0 waits for all")
    timeout_s: int = Field(default=300, ge=10, description="collective timeout")


class DdpSmoke(_MultiNodeDdp):
    """Multi-node DDP training smoke (MNIST across nodes, one SLURM job, srun per node). The
    platform's plan: 2 distinct hosts take part, "Training Complete" within 600 s, no NCCL
    WARN in the log."""

    epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=64, ge=1, description="per rank")
    min_accuracy: float = Field(default=0.95, gt=0, le=1)
    max_seconds: float = Field(default=600, gt=0, description='"Training Complete" within this')
    baseline_batches: int = Field(default=40, ge=5, description="one node's samples/s over these")


class CifarDdpSmoke(_MultiNodeDdp):
    """Validation task MLOPS-2.1: CIFAR-10 ResNet-18 under DDP (batch 128 per GPU, SGD lr
    0.01 momentum 0.9, 3 epochs; pass: both GPUs allocated, under 15 minutes, above 60 %
    accuracy, no NCCL errors), one rank per node of one SLURM job like the MNIST DDP smoke.
    `dataset` names the catalog's torchvision CIFAR10 entry it reads where it was staged."""

    dataset: str = "cifar10"
    stem: Literal["cifar", "stock"] = Field(
        default="cifar",
        description="cifar: 3x3 stride-1 conv, no max-pool (the usual for 32x32); stock: "
        "torchvision's 7x7/2 + max-pool (~8x less compute, less accurate)",
    )
    train_samples: int = Field(default=0, ge=0, description="first N training images; 0: all")
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=128, ge=1, description="per rank")
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    min_accuracy: float = Field(default=0.6, gt=0, le=1)
    max_seconds: float = Field(default=900, gt=0, description='"Training Complete" within this')
    baseline_batches: int = Field(default=20, ge=5, description="one rank's samples/s over these")


class SftSmoke(_Strict):
    """Supervised fine-tuning smoke (validation task MLOPS-1.2: SmolLM-135M on no_robots
    `train[:1000]`, 1 epoch, batch 4, gradient accumulation 4, lr 2e-5, bf16, max_seq_length
    512, under 20 minutes, loss goes down, the checkpoint reloads). `model` and `dataset` name
    catalog entries; a model whose parameter count is not `task_parameters` is a stand-in and
    every verdict says so."""

    model: str = "smollm_135m"
    dataset: str = "no_robots"
    container: str | None = Field(
        default=None, description="catalog container the job runs in; null: smoke.container"
    )
    task_parameters: int = Field(
        default=134_515_008, ge=1, description="the task's model (SmolLM-135M); else a stand-in"
    )
    train_rows: int = Field(default=1000, ge=1)
    eval_rows: int = Field(default=32, ge=0, description="held-out test rows, loss before/after")
    epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=4, ge=1)
    grad_accum: int = Field(default=4, ge=1)
    lr: float = Field(default=2e-5, ge=0)
    max_seq_length: int = Field(default=512, ge=16)
    max_steps: int = Field(default=0, ge=0, description="optimizer steps; 0: no cap")
    log_every: int = Field(default=5, ge=1, description="optimizer steps per logged loss window")
    min_loss_drop_fraction: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        description="the last loss window must be below the first by this share of it",
    )
    max_seconds: float = Field(default=1200, gt=0, description="MLOPS-1.2: under 20 minutes")


class Smoke(_Strict):
    partition: str
    mnist_min_accuracy: float = Field(gt=0, le=1)
    mnist_max_seconds: float = Field(gt=0)
    multi_gpu_count: int = Field(ge=2)
    freshness: Freshness
    mnist_epochs: int = Field(default=5, ge=1, description="MLOPS-1.1: 5 epochs")
    gpu_profiles: dict[str, GpuProfile] = Field(default_factory=dict)
    sibling_min_fraction: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description="a GPU below this share of its siblings' median is named",
    )
    container: str | None = Field(
        default=None, description="catalog container the smoke jobs run in (apptainer exec --nv)"
    )
    jobs: SmokeJobs = SmokeJobs()
    ddp: DdpSmoke = DdpSmoke()
    cifar_ddp: CifarDdpSmoke = CifarDdpSmoke()
    sft: SftSmoke = SftSmoke()
    node_sensor_interval_s: int = Field(default=60, ge=5)
    reuse_training_within_minutes: float = Field(
        default=120,
        ge=0,
        description="a re-run of smoke_mnist_training whose code, config, image and dataset "
        "are unchanged reuses the last training this recent (0: always train)",
    )
