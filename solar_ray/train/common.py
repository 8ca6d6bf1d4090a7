"""Config models shared by the three training stages (pretrain, sft, dpo) and the checks run before launch.

A training config is launch settings (`scaling`, `run`) kept apart from hyper-parameters (`optim`, `deepspeed`):

    scaling: {num_workers: 2}                       # Ray Train workers, one per GPU (or CPU slot)
    deepspeed: {zero_stage: 2}                      # ZeRO 0-3; bf16 on GPU, fp32 on CPU
    optim: {learning_rate: 1e-4, per_device_batch_size: 4, global_batch_size: 16, max_steps: 100}
    run: {name: tiny-pretrain, storage_path: runs/ray, checkpoint_every: 20, max_failures: 1}

`global_batch_size = per_device_batch_size * num_workers * gradient_accumulation_steps`; give either
`global_batch_size` (accumulation is derived) or `gradient_accumulation_steps`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from solar_ray.config import LocalPath, StageConfig, Strict
from solar_ray.errors import ArtifactError, ConfigError, DataError


class ScalingSettings(Strict):
    """How many Ray Train workers, and on what."""

    num_workers: int = Field(default=2, ge=1, description="Ray Train workers (one process per GPU, or per CPU slot).")
    use_gpu: bool | None = Field(
        default=None, description="Train on GPUs. Default (null): yes when the Ray cluster has GPUs, else CPU."
    )
    cpus_per_worker: float = Field(default=1, gt=0, description="CPUs reserved for each worker.")
    backend: Literal["auto", "gloo", "nccl"] = Field(
        default="auto", description="torch.distributed backend; auto = nccl on GPU, gloo on CPU."
    )


class DeepSpeedSettings(Strict):
    """DeepSpeed engine settings; the full DeepSpeed dict is built by `solar_ray.train.deepspeed_config`."""

    zero_stage: int = Field(default=2, description="ZeRO stage 0-3 (3 shards parameters, gradients and optimiser).")
    bf16: bool | None = Field(
        default=None, description="bf16 mixed precision. Default (null): on for GPU training, off (fp32) on CPU."
    )
    offload_optimizer: bool = Field(
        default=False, description="ZeRO-Offload the optimiser state to CPU memory (ZeRO 1-3, GPU training)."
    )

    @model_validator(mode="after")
    def _stage_in_range(self) -> DeepSpeedSettings:
        if not 0 <= self.zero_stage <= 3:
            raise ValueError(f"zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}")
        return self


class OptimSettings(Strict):
    """Optimiser, schedule and batch shape."""

    learning_rate: float = Field(default=1e-4, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW decoupled weight decay.")
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1, description="Share of steps spent warming up linearly.")
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = Field(
        default="cosine", description="Learning-rate schedule after warmup."
    )
    per_device_batch_size: int = Field(default=4, ge=1, description="Sequences per worker per micro-batch.")
    gradient_accumulation_steps: int | None = Field(
        default=None, ge=1, description="Micro-batches per optimiser step. Default: from global_batch_size, else 1."
    )
    global_batch_size: int | None = Field(
        default=None, ge=1, description="Sequences per optimiser step over all workers (must divide evenly)."
    )
    epochs: float = Field(default=1.0, gt=0, description="Passes over the training set (when max_steps is unset).")
    max_steps: int | None = Field(default=None, ge=1, description="Optimiser steps to run; overrides epochs.")
    max_grad_norm: float = Field(default=1.0, ge=0, description="Gradient clipping norm (0 = off).")
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations to save memory.")
    max_length: int = Field(default=512, ge=8, description="Tokens per sequence (pretraining block size).")
    seed: int = Field(default=0, description="Seed for model init of new heads, data order and dropout.")


class RunSettings(Strict):
    """Where a run lives and how it survives failures. A rerun with the same name resumes."""

    name: str | None = Field(default=None, description="Ray Train run name. Default: the output directory's name.")
    storage_path: LocalPath = Field(
        default="runs/ray", description="Ray Train storage (local dir or cloud URI; shared storage on a cluster)."
    )
    checkpoint_every: int = Field(default=50, ge=1, description="Save a resumable checkpoint every N steps.")
    keep_checkpoints: int = Field(default=2, ge=1, description="Checkpoints to keep (the newest).")
    max_failures: int = Field(default=1, ge=-1, description="Worker failures to recover from (-1: unlimited).")
    # Every step still lands in metrics.jsonl; this is how often workers print and call ray.train.report, which
    # waits for the Train controller's poll (every 2 s in Ray 2.60), so reporting every tiny step doubles its time.
    log_every: int = Field(default=10, ge=1, description="Print and report metrics to Ray/Tune every N steps.")
    eval_every: int | None = Field(default=None, ge=1, description="Eval loss every N steps (needs test split).")

    @property
    def eval_steps(self) -> int:
        """Steps between evaluations of a test split: eval_every, else at each checkpoint."""
        return self.eval_every or self.checkpoint_every


class TrainStageConfig(StageConfig):
    """Fields every training stage has: input artifacts plus the four settings groups."""

    model: LocalPath = Field(description="Input model artifact: a Hugging Face model directory.")
    dataset: LocalPath = Field(description="Input dataset artifact: a directory holding train.parquet (+ test.parquet).")
    scaling: ScalingSettings = Field(default_factory=ScalingSettings, description="Ray Train workers.")
    deepspeed: DeepSpeedSettings = Field(default_factory=DeepSpeedSettings, description="DeepSpeed engine.")
    optim: OptimSettings = Field(default_factory=OptimSettings, description="Optimiser and batch shape.")
    run: RunSettings = Field(default_factory=RunSettings, description="Run name, storage, checkpoints, failures.")

    @model_validator(mode="after")
    def _batch_divides(self) -> TrainStageConfig:
        self.gradient_accumulation_steps()  # raises ValueError when the global batch does not divide
        return self

    def gradient_accumulation_steps(self) -> int:
        o, workers = self.optim, self.scaling.num_workers
        per_step = o.per_device_batch_size * workers
        if o.global_batch_size is None:
            return o.gradient_accumulation_steps or 1
        if o.global_batch_size % per_step:
            raise ValueError(
                f"optim.global_batch_size {o.global_batch_size} is not a multiple of per_device_batch_size "
                f"{o.per_device_batch_size} x num_workers {workers} = {per_step}; use a multiple of {per_step}"
            )
        accum = o.global_batch_size // per_step
        if o.gradient_accumulation_steps not in (None, accum):
            raise ValueError(
                f"optim.gradient_accumulation_steps {o.gradient_accumulation_steps} disagrees with global_batch_size "
                f"{o.global_batch_size} / ({per_step}) = {accum}; set only one of them"
            )
        return accum

    def run_name(self) -> str:
        return self.run.name or Path(self.output or "train").name


# ------------------------------------------------------------------------------ checks before any worker starts


def check_inputs(config: TrainStageConfig, required_columns: tuple[str, ...]) -> dict[str, int]:
    """Model dir exists, dataset has a non-empty train split with the needed columns. Returns split row counts."""
    import pyarrow.parquet as pq

    from solar_ray.artifacts import require_model_dir

    require_model_dir(config.model)
    dataset = Path(config.dataset)
    train = dataset / "train.parquet"
    if not train.is_file():
        raise ArtifactError(f"{dataset}: not a dataset artifact (no train.parquet); run the data stage first")
    counts = {}
    for split in ("train", "test"):
        path = dataset / f"{split}.parquet"
        if not path.is_file():
            continue
        meta = pq.read_metadata(path)
        names = meta.schema.to_arrow_schema().names  # top-level columns (meta.schema lists nested leaves)
        missing = [c for c in required_columns if c not in names]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {', '.join(missing)} for stage '{config.stage}' "
                f"(has {', '.join(names)}); expected {', '.join(required_columns)}"
            )
        counts[split] = meta.num_rows
    if counts["train"] == 0:
        raise DataError(f"{train}: dataset is empty (0 rows); nothing to train on")
    return counts


def resolve_hardware(config: TrainStageConfig, cluster_gpus: int, gpus_obtainable: bool | None = None) -> dict[str, object]:
    """Pick GPU/CPU, precision and backend; GPU-only options on a machine without GPUs are a ConfigError.

    `gpus_obtainable`: the cluster has GPUs or an autoscaler that can add GPU nodes (default: it has GPUs now).
    Whether the cluster is big enough for the workers is `check_capacity`'s question."""
    s, ds = config.scaling, config.deepspeed
    obtainable = bool(cluster_gpus) if gpus_obtainable is None else gpus_obtainable
    if s.use_gpu and not obtainable:
        raise ConfigError("scaling.use_gpu is true but the Ray cluster has no GPU and no autoscaler that can add "
                          "GPU nodes; set scaling.use_gpu=false")
    use_gpu = bool(cluster_gpus) if s.use_gpu is None else s.use_gpu
    if not use_gpu:
        if ds.bf16:
            raise ConfigError("deepspeed.bf16 is true but training runs on CPU (no GPU); set deepspeed.bf16=false")
        if s.backend == "nccl":
            raise ConfigError("scaling.backend is nccl, which needs GPUs; use scaling.backend=gloo on CPU")
        if ds.offload_optimizer:
            raise ConfigError("deepspeed.offload_optimizer needs GPU training; set deepspeed.offload_optimizer=false")
    bf16 = use_gpu if ds.bf16 is None else ds.bf16
    backend = s.backend if s.backend != "auto" else ("nccl" if use_gpu else "gloo")
    return {"use_gpu": use_gpu, "bf16": bf16, "backend": backend}


def worker_bundles(config: TrainStageConfig, use_gpu: bool) -> list[dict[str, float]]:
    """The Ray bundles of the run's workers, as the launcher's ScalingConfig asks for them."""
    bundle = {"CPU": config.scaling.cpus_per_worker, **({"GPU": 1.0} if use_gpu else {})}
    return [dict(bundle) for _ in range(config.scaling.num_workers)]


def check_capacity(config: TrainStageConfig, hw: dict[str, object]) -> None:
    """Wait for the cluster (or its autoscaler) to hold every worker, or fail at once with one line."""
    from solar_ray.capacity import ensure_capacity

    ensure_capacity(f"stage '{config.stage}' ({config.run_name()})", worker_bundles(config, bool(hw["use_gpu"])))


def planned_steps(config: TrainStageConfig, train_rows: int) -> int:
    """Optimiser steps of the run: max_steps, else epochs over `train_rows` sequences (at least one step)."""
    o = config.optim
    if o.max_steps:
        return o.max_steps
    per_step = o.per_device_batch_size * config.scaling.num_workers * config.gradient_accumulation_steps()
    steps = int(o.epochs * (train_rows // per_step))
    if steps < 1:
        raise DataError(
            f"{config.dataset}: {train_rows} training sequences are fewer than one global batch of {per_step}; "
            "lower optim.per_device_batch_size / gradient accumulation or add data"
        )
    return steps


# ------------------------------------------------------------------ the stage contract (solar_ray/contract.py)

RAY_STORAGE_KEY = "run.storage_path"
NAMING_KEYS = ("run.name",)  # the Ray Train run's name: two runs of one recipe make the same model


def needs(config: TrainStageConfig):
    from solar_ray.contract import StageNeeds

    s = config.scaling
    unit = "GPU" if s.use_gpu is True else "CPU" if s.use_gpu is False else "GPU if present"
    what = f"{s.num_workers} x {unit} worker{'s' if s.num_workers != 1 else ''}, ZeRO-{config.deepspeed.zero_stage}"
    return StageNeeds(workers=s.num_workers, cpus_per_worker=s.cpus_per_worker, gpus_per_worker=1,
                      on_gpu=s.use_gpu, what=what)


def ray_state(config: TrainStageConfig) -> list[Path]:
    from solar_ray.contract import local_runs

    return local_runs(config.run.storage_path, [config.run_name()])


def model_config(config: TrainStageConfig, sub: str, models):
    return models.config(config.model)  # training keeps its input model's architecture
