"""What SFT and DPO share: a TRL trainer inside a Ray Train worker, on DeepSpeed, with exact resume.

Driver side: `hf_loop_config` turns the stage config into the workers' config (rows travel through Ray's object
store, so no worker needs the dataset's path - multi-node safe). Worker side: `train_with_ray` builds the TRL
trainer from a recipe function, wraps it with Ray's `prepare_trainer` + `RayTrainReportCallback` (HF checkpoints
every `run.checkpoint_every` steps, from every rank: DeepSpeed engine, optimiser, scheduler, each rank's RNG, the
trainer state with its log history and data position), resumes from Ray's last checkpoint, and exports the model.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from solar_ray.train.common import TrainStageConfig, check_inputs, planned_steps


def hf_loop_config(config: TrainStageConfig, hw: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    """Check inputs, put the rows in the object store, and map our settings onto TrainingArguments fields."""
    import pyarrow.parquet as pq
    import ray

    from solar_ray.train.deepspeed_config import deepspeed_config

    counts = check_inputs(config, columns)
    splits = {}
    for split in ("train", "test"):
        if counts.get(split):
            table = pq.read_table(Path(config.dataset) / f"{split}.parquet", columns=list(columns))
            splits[split] = ray.put(table.to_pylist())
    o, r, workers = config.optim, config.run, config.scaling.num_workers
    accum = config.gradient_accumulation_steps()
    total_steps = planned_steps(config, counts["train"])
    has_eval = "test" in splits
    args = {
        "per_device_train_batch_size": o.per_device_batch_size,
        "per_device_eval_batch_size": o.per_device_batch_size,
        "gradient_accumulation_steps": accum,
        "learning_rate": o.learning_rate,
        "weight_decay": o.weight_decay,
        "lr_scheduler_type": o.lr_scheduler,
        "warmup_steps": o.warmup_ratio,  # a float < 1 is a ratio of the total steps in transformers 5
        "max_steps": total_steps,
        "max_grad_norm": o.max_grad_norm,
        checkpointing_field(): o.gradient_checkpointing,
        "max_length": o.max_length,
        "seed": o.seed,
        "data_seed": o.seed,
        "logging_steps": 1,  # every step into the log history (metrics.jsonl); Ray reports every run.log_every
        "save_strategy": "steps",
        "save_steps": r.checkpoint_every,
        "save_total_limit": r.keep_checkpoints,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": (r.eval_every or r.checkpoint_every) if has_eval else None,
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
    return {"model": config.model, "rows": splits, "args": args, "backend": hw["backend"], "log_every": r.log_every}


def checkpointing_field() -> str:
    """TrainingArguments' name for activation checkpointing: transformers 5.2x renamed gradient_checkpointing
    (the old name still works, with a FutureWarning from every worker)."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


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
        from solar_ray.chat import SOLAR_CHAT_TEMPLATE  # Alpaca-styled template; save_model exports it with the model

        tokenizer.chat_template = SOLAR_CHAT_TEMPLATE
    return model, tokenizer


def train_with_ray(cfg: dict[str, Any], build_trainer) -> None:
    """Worker body: `build_trainer(output_dir, callbacks)` returns a TRL trainer; train it, resume, export."""
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

    from solar_ray.train import worker

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None and worker.is_final(checkpoint):
        worker.report_again(checkpoint)
        return
    with tempfile.TemporaryDirectory(prefix="solar-ray-hf-") as output_dir:
        trainer = build_trainer(output_dir, [RayTrainReportCallback(), ProgressCallback(cfg["log_every"])])
        trainer = prepare_trainer(trainer)
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                worker.log_rank0(f"resuming from {directory}")
                trainer.train(resume_from_checkpoint=str(Path(directory) / RayTrainReportCallback.CHECKPOINT_NAME))
        else:
            trainer.train()
        history = metrics_history(trainer.state.log_history)
        final = dict(history[-1]) if history else {}
        worker.report_final(lambda out: export_trainer(trainer, out), history, final)


def export_trainer(trainer, out: Path) -> None:
    """Every rank: Trainer.save_model gathers ZeRO-3 shards; rank 0 writes safetensors + tokenizer."""
    trainer.model.config.use_cache = True
    trainer.save_model(str(out))
    (Path(out) / "training_args.bin").unlink(missing_ok=True)  # a pickle; artifacts are safetensors-only


def _progress_callback_class():
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Adds tokens_per_second to each log entry, logs from rank 0 and reports the entry to Ray (and Tune)."""

        def __init__(self, log_every: int):
            self.log_every = log_every
            self.last: tuple[float, float] | None = None

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
            # Every rank logs the same steps, so every rank reports the same times: report is a barrier.
            if ("loss" in row or "eval_loss" in row) and state.global_step % self.log_every == 0:
                worker.log_rank0(worker.format_row(row))
                ray.train.report(row)

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
