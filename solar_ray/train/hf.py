"""What SFT and DPO share: a TRL trainer inside a Ray Train worker, on DeepSpeed, with exact resume.

A TRL stage is its config plus a `TrlRecipe` (TRL's config and trainer classes, the dataset columns).

Driver side, `prepare`: check the inputs and put the rows in Ray's object store (no worker needs the dataset's
path: multi-node safe). Worker side, `train_loop`: build the TRL config, in which every stage setting named like a
field of TRL's config class passes under its name (learning_rate, max_length, beta, loss_type, ...), so exposing
another TRL field takes only a field in the stage config; `trainer_arguments` holds just the values we derive or
rename. Then build the trainer, hand a checkpoint to Ray every `run.checkpoint_every` steps (DeepSpeed engine,
optimiser, scheduler, each rank's RNG, the trainer state with its log history and data position), resume from
Ray's last checkpoint, and export the model.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from solar_ray.train.common import TrainStageConfig, check_inputs, planned_steps


@dataclasses.dataclass(frozen=True)
class TrlRecipe:
    """What differs between the TRL stages: TRL's config and trainer classes (names in `trl`) and the columns."""

    config_class: str  # e.g. "SFTConfig"
    trainer_class: str  # e.g. "SFTTrainer"
    columns: tuple[str, ...]  # dataset columns the trainer reads
    trainer_kwargs: tuple[tuple[str, Any], ...] = ()  # e.g. (("ref_model", None),): TRL builds the reference


def prepare(config: TrainStageConfig, hw: dict[str, Any], recipe: TrlRecipe):
    """Driver side of a TRL stage: check inputs, ship the rows, and build the workers' loop config."""
    import pyarrow.parquet as pq
    import ray

    from solar_ray.train.launcher import Launch

    counts = check_inputs(config, recipe.columns)
    splits = {}
    for split in ("train", "test"):
        if counts.get(split):
            table = pq.read_table(Path(config.dataset) / f"{split}.parquet", columns=list(recipe.columns))
            splits[split] = ray.put(table.to_pylist())
    loop_config = {
        "model": config.model, "rows": splits, "recipe": recipe, "backend": hw["backend"],
        "log_every": config.run.log_every,
        "args": trainer_arguments(config, hw, planned_steps(config, counts["train"]), has_eval="test" in splits),
        "by_name": settings_by_name(config),
    }
    return Launch(train_loop, loop_config, datasets={}, split_datasets=[])


def settings_by_name(config: TrainStageConfig) -> dict[str, Any]:
    """Settings handed to TRL under their own name when its config class has that field: the optimiser's and
    the stage's own (beta, loss_type, assistant_only_loss, ...)."""
    own = {name: getattr(config, name) for name in type(config).model_fields.keys() - TrainStageConfig.model_fields.keys()}
    return {**config.optim.model_dump(), **own}


def trainer_arguments(config: TrainStageConfig, hw: dict[str, Any], total_steps: int, has_eval: bool) -> dict[str, Any]:
    """The TrainingArguments values we derive or rename (the rest pass by name, see `settings_by_name`)."""
    from solar_ray.train.deepspeed_config import deepspeed_config

    o, r, workers = config.optim, config.run, config.scaling.num_workers
    accum = config.gradient_accumulation_steps()
    return {
        "per_device_train_batch_size": o.per_device_batch_size,
        "per_device_eval_batch_size": o.per_device_batch_size,
        "gradient_accumulation_steps": accum,
        "lr_scheduler_type": o.lr_scheduler,
        "warmup_steps": o.warmup_ratio,  # a float < 1 is a ratio of the total steps in transformers 5
        "max_steps": total_steps,
        "data_seed": o.seed,
        "logging_steps": 1,  # every step into the log history (metrics.jsonl); Ray reports every run.log_every
        "save_strategy": "steps",
        "save_steps": r.checkpoint_every,
        "save_total_limit": r.keep_checkpoints,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": r.eval_steps if has_eval else None,
        # With a test split, the untrained model is scored first: the eval curve gets its start, and every
        # report to Ray/Tune carries the held-out metrics from the first one on (a sweep may search on them).
        "eval_on_start": has_eval,
        "bf16": hw["bf16"],
        "use_cpu": not hw["use_gpu"],
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "deepspeed": deepspeed_config(
            config.deepspeed.zero_stage, hw["bf16"], o.per_device_batch_size, accum, workers, o.max_grad_norm,
            config.deepspeed.offload_optimizer, for_hf_trainer=True,
        ),
    }


def trl_config(config_class: type, cfg: dict[str, Any], output_dir: str):
    """The TRL config object: derived arguments, plus every by-name setting that is a field of `config_class`."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    by_name = dict(cfg["by_name"])
    # transformers 5.2x renamed gradient_checkpointing (the old name still works, with a FutureWarning per worker).
    if "activation_checkpointing" in fields:
        by_name["activation_checkpointing"] = by_name.pop("gradient_checkpointing")
    args = {name: value for name, value in by_name.items() if name in fields and name not in cfg["args"]}
    return config_class(output_dir=output_dir, **args, **cfg["args"])


def train_loop(cfg: dict[str, Any]) -> None:
    """Ray Train worker: the recipe's TRL trainer on the rows in `cfg` (every rank holds them; the trainer shards)."""
    import trl

    from solar_ray.patches.deepspeed_comm import skip_cpu_shm_op
    from solar_ray.train import worker

    skip_cpu_shm_op()
    worker.quiet_known_warnings()
    recipe: TrlRecipe = cfg["recipe"]

    def build(output_dir: str, callbacks: list):
        # Arguments first: they register the DeepSpeed config, so under ZeRO-3 the models load already sharded.
        args = trl_config(getattr(trl, recipe.config_class), cfg, output_dir)
        model, tokenizer = load_policy(cfg)
        rows = cfg["rows"]
        return getattr(trl, recipe.trainer_class)(
            model=model,
            args=args,
            train_dataset=hf_dataset(rows["train"]),
            eval_dataset=hf_dataset(rows["test"]) if "test" in rows else None,
            processing_class=tokenizer,
            callbacks=callbacks,
            **dict(recipe.trainer_kwargs),
        )

    train_with_ray(cfg, build)


def hf_dataset(ref: Any):
    import datasets
    import ray

    return datasets.Dataset.from_list(ray.get(ref))


def load_policy(cfg: dict[str, Any]):
    """The model to train and its tokenizer. Call after building the TrainingArguments (ZeRO-3 sharded load)."""
    import deepspeed
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # DeepSpeed's comm layer over Ray's process group: ZeRO-3's sharded load (zero.Init) needs the world size.
    deepspeed.init_distributed(dist_backend=cfg["backend"])

    dtype = torch.bfloat16 if cfg["args"]["bf16"] else torch.float32
    model = AutoModelForCausalLM.from_pretrained(cfg["model"], dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template is None:  # a base model's (Mistral-7B's has none, found by the rehearsal): SOLAR's
        # Alpaca-styled template; save_model exports it with the model
        from solar_ray.chat import SOLAR_CHAT_TEMPLATE

        tokenizer.chat_template = SOLAR_CHAT_TEMPLATE
    return model, tokenizer


def train_with_ray(cfg: dict[str, Any], build_trainer) -> None:
    """Worker body: `build_trainer(output_dir, callbacks)` returns a TRL trainer; train it, resume, export."""
    import ray.train
    from ray.train.huggingface.transformers import prepare_trainer

    from solar_ray.train import worker

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None and worker.is_final(checkpoint):
        worker.report_again(checkpoint)
        return
    # Each rank's own scratch directory: checkpoints leave it for Ray's storage as soon as they are saved.
    with tempfile.TemporaryDirectory(prefix="solar-ray-hf-") as output_dir:
        trainer = build_trainer(output_dir, trainer_callbacks(cfg["log_every"]))
        trainer = prepare_trainer(trainer)
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                worker.log_rank0(f"resuming from {directory}")
                trainer.train(resume_from_checkpoint=str(Path(directory) / CHECKPOINT_NAME))
        else:
            trainer.train()
        history = metrics_history(trainer.state.log_history)
        final = dict(history[-1]) if history else {}
        worker.report_final(lambda out: export_trainer(trainer, out), history, final)


def trainer_callbacks(log_every: int) -> list:
    return [_report_checkpoint_class()(), ProgressCallback(log_every)]


CHECKPOINT_NAME = "checkpoint"  # the HF checkpoint's folder inside a Ray checkpoint (as Ray's own callback names it)


def _report_checkpoint_class():
    from transformers import TrainerCallback

    class ReportCheckpoint(TrainerCallback):
        """Hands each saved HF checkpoint to Ray Train, every rank its own part, and keeps no copy behind.

        Ray's RayTrainReportCallback copies the checkpoint and leaves it in the rank's output dir, where
        transformers prunes old ones (save_total_limit) on rank 0 only: every other rank would keep each
        ZeRO-3 optimiser shard it ever saved (~1.7 TB on one 8-GPU node for a 10.7B SFT). Here the checkpoint
        is moved, not copied, into the directory Ray uploads, and deleted once Ray holds it; Ray's storage keeps
        the newest `run.keep_checkpoints` (CheckpointConfig), which is what resume reads.
        """

        def on_save(self, args, state, control, **kwargs):
            import ray.train
            from transformers.trainer_utils import get_last_checkpoint

            metrics: dict[str, Any] = {}
            for log in state.log_history:
                metrics.update(log)
            source = get_last_checkpoint(args.output_dir)
            with tempfile.TemporaryDirectory(prefix="solar-ray-report-", dir=args.output_dir) as staging:
                checkpoint = None
                if source is not None:
                    Path(source).rename(Path(staging) / CHECKPOINT_NAME)  # same file system: no copy
                    checkpoint = ray.train.Checkpoint.from_directory(staging)
                ray.train.report(metrics, checkpoint=checkpoint)

    return ReportCheckpoint


def export_trainer(trainer, out: Path) -> None:
    """Every rank: Trainer.save_model gathers ZeRO-3 shards; rank 0 writes safetensors + tokenizer."""
    trainer.model.config.use_cache = True
    trainer.save_model(str(out))
    (Path(out) / "training_args.bin").unlink(missing_ok=True)  # a pickle; artifacts are safetensors-only


def _progress_callback_class():
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Adds tokens_per_second to each log entry, logs from rank 0 and reports to Ray (and Tune) the newest value
        of every metric: a held-out (eval_*) metric stays in each report until the next evaluation, so a sweep
        can search on it although most steps are not evaluated (Tune wants its metric in every report)."""

        def __init__(self, log_every: int):
            self.log_every = log_every
            self.last: tuple[float, float] | None = None
            self.newest: dict[str, float] = {}

        def on_log(self, args, state, control, logs=None, **kwargs):
            import ray.train

            from solar_ray.train import worker

            entry = state.log_history[-1] if state.log_history else {}
            now, tokens = time.perf_counter(), entry.get("num_tokens")
            if tokens is not None and "loss" in entry:
                if self.last is not None and now > self.last[0]:
                    entry["tokens_per_second"] = (tokens - self.last[1]) / (now - self.last[0])
                self.last = (now, tokens)
            row = {k: v for k, v in entry.items() if isinstance(v, (int, float))}
            self.newest.update(row)
            # Every rank logs the same steps, so every rank reports the same times: report is a barrier.
            if ("loss" in row or "eval_loss" in row) and state.global_step % self.log_every == 0:
                worker.log_rank0(worker.format_row(row))
                ray.train.report(dict(self.newest))

    return Progress


def ProgressCallback(log_every: int):  # noqa: N802 - reads like the class it builds; transformers imported lazily
    return _progress_callback_class()(log_every)


def metrics_history(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trainer's log entries with a step and a loss (train or eval), numbers only."""
    rows = []
    for entry in log_history:
        if "loss" not in entry and "eval_loss" not in entry:
            continue  # the end-of-training summary (train_runtime, ...)
        rows.append({k: v for k, v in entry.items() if isinstance(v, (int, float))})
    return rows
