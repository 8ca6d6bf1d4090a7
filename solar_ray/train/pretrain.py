"""`stage: pretrain` - continual pretraining (causal LM) on packed blocks, on the DeepSpeed engine under Ray Train.

Features: text documents from a dataset artifact are tokenised and packed into `optim.max_length` blocks with Ray
Data and streamed to the workers as shards; DeepSpeed ZeRO 0-3; warmup + cosine (or linear) schedule; gradient
accumulation and clipping; gradient checkpointing; a checkpoint every `run.checkpoint_every` steps holding the
engine (model, optimiser, scheduler), every rank's RNG, the data position and the metrics so far; automatic
resume; eval loss on the artifact's test split; export of a consolidated HF model directory.

Raises (before any worker starts): ArtifactError for a missing model or dataset, DataError for an empty dataset or
one too short for a single block or batch, ConfigError for a ZeRO stage out of range, a global batch that does
not divide, or GPU-only options (bf16, nccl, use_gpu) without GPUs.

    solar-ray run experiments/tiny/pretrain.yaml
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from solar_ray.errors import DataError
from solar_ray.train.common import TrainStageConfig, check_inputs, planned_steps


class Config(TrainStageConfig):
    stage: Literal["pretrain"] = "pretrain"
    text_column: str = Field(default="text", description="Column of train.parquet holding the documents.")


def prepare(config: Config, hw: dict[str, Any]):
    """Pack the data (driver side, before any worker starts) and build the workers' loop config."""
    from solar_ray.data.packing import pack_dataset
    from solar_ray.train.deepspeed_config import deepspeed_config
    from solar_ray.train.launcher import Launch

    counts = check_inputs(config, (config.text_column,))
    o, workers = config.optim, config.scaling.num_workers
    datasets = {}
    for split, name in (("train", "train"), ("test", "validation")):
        if split in counts and counts[split] > 0:
            rows = read_documents(Path(config.dataset) / f"{split}.parquet")
            # Materialised once here: block order is then fixed, so a restarted worker group reads the same
            # shards in the same order (exact resume), and packing is not redone every epoch.
            datasets[name] = pack_dataset(rows, config.model, o.max_length, config.text_column).materialize()
    blocks = datasets["train"].count()
    accum = config.gradient_accumulation_steps()
    # streaming_split(equal=True) gives each worker blocks // workers rows per pass over the data.
    micro_per_pass = (blocks // workers) // o.per_device_batch_size
    if micro_per_pass < accum:
        raise DataError(
            f"{config.dataset}/train.parquet: packs into {blocks} blocks of {o.max_length} tokens, fewer than one "
            f"global batch ({o.per_device_batch_size} x {workers} workers x {accum}); lower optim.max_length or "
            "the batch size, or add data"
        )
    total_steps = planned_steps(config, blocks)
    # passes x (blocks // workers) rows per worker cover total_steps x accum micro-batches
    passes = math.ceil(total_steps * accum / micro_per_pass)
    datasets["train"] = repeated_passes(datasets["train"], passes, o.seed)
    loop_config = {
        "model": config.model,
        "seed": o.seed,
        "total_steps": total_steps,
        "micro_batches_per_pass": micro_per_pass,
        "micro_batch_size": o.per_device_batch_size,
        "accum": accum,
        "block_size": o.max_length,
        "learning_rate": o.learning_rate,
        "weight_decay": o.weight_decay,
        "warmup_steps": round(o.warmup_ratio * total_steps),
        "lr_scheduler": o.lr_scheduler,
        "gradient_checkpointing": o.gradient_checkpointing,
        "zero_stage": config.deepspeed.zero_stage,
        "bf16": hw["bf16"],
        "checkpoint_every": config.run.checkpoint_every,
        "log_every": config.run.log_every,
        "eval_every": config.run.eval_every,
        "has_validation": "validation" in datasets,
        "backend": hw["backend"],
        "deepspeed": deepspeed_config(
            config.deepspeed.zero_stage, hw["bf16"], o.per_device_batch_size, accum, workers,
            o.max_grad_norm, config.deepspeed.offload_optimizer, learning_rate=o.learning_rate,
            weight_decay=o.weight_decay,
        ),
    }
    return Launch(train_loop, loop_config, datasets, split_datasets=list(datasets))


def read_documents(path: Path):
    """A data artifact's parquet file as a Ray Dataset read by one task, whichever Ray reader is set. Documents are
    packed within a block, so the blocks, and so the model, must not depend on how a reader splits the file: Ray
    Data's V1 reader cut the tiny world's file, and a 7-row test file, into 4 blocks by its parallelism heuristics
    where its DataSourceV2 reads a file in one task; read in one task by either, the blocks are cut by Ray's target
    block size alone, and the tiny world packs the same 360 blocks, the same stream of passes."""
    import ray.data

    return ray.data.read_parquet(str(path), override_num_blocks=1)


def repeated_passes(blocks, passes: int, seed: int):
    """The packed blocks as one Ray Data stream of `passes` passes, each after the first in its own seeded order.

    One stream for the whole run: each new iteration of a streaming_split shard restarts Ray Data's executor,
    which cost 2-4 s per epoch on 2 busy cores - every 8 steps in the tiny pipeline (measured); one stream pays it
    once. The passes are not the same blocks unioned again: streaming_split(equal=True) then handed every worker
    the same rows at most steps (308 of 460 micro-batch rows in the tiny base's stream, measured), so two data-
    parallel workers trained on duplicate batches and half the data each step went unseen. Seeded, so a restarted
    worker group reads the same stream. Materialised here, in the driver before the workers start: Ray Data's
    shuffle tasks need CPUs, and once a run's workers hold them (two one-CPU runs at once on two cores, as
    pipeline_upscaling.yaml runs them) the stream never came.
    """
    if passes <= 1:
        return blocks
    return blocks.union(*[blocks.random_shuffle(seed=seed + k) for k in range(1, passes)]).materialize()


def run(config: Config) -> Path:
    from solar_ray.train.launcher import run as launch_run

    return launch_run(config)


# ------------------------------------------------------------------------------------- inside each worker


def train_loop(cfg: dict[str, Any]) -> None:
    """Ray Train worker: the DeepSpeed pretraining loop. Everything it needs is in `cfg`."""
    import time

    import ray.train
    import torch
    import torch.distributed as dist

    from solar_ray.patches.deepspeed_comm import skip_cpu_shm_op
    from solar_ray.train import worker
    from solar_ray.train.export import export_engine

    skip_cpu_shm_op()
    worker.quiet_known_warnings()
    rank = ray.train.get_context().get_world_rank()
    torch.manual_seed(cfg["seed"])
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None and worker.is_final(checkpoint):
        worker.report_again(checkpoint)  # the run already finished: hand its result back
        return

    engine = setup_engine(cfg)
    state = {"step": 0, "micro": 0}  # optimiser steps done; micro-batches of this worker's stream consumed
    history: list[dict[str, Any]] = []
    if checkpoint is not None:
        state, history = load_checkpoint(engine, checkpoint, rank)
        worker.log_rank0(f"resumed at step {state['step']} (pass {state['micro'] // cfg['micro_batches_per_pass']})")
    worker.log_rank0(f"torch threads per worker: {torch.get_num_threads()}")

    shard = ray.train.get_dataset_shard("train")
    accum, total = cfg["accum"], cfg["total_steps"]
    tokens_per_step = cfg["micro_batch_size"] * cfg["block_size"] * accum * dist.get_world_size()
    losses, started = [], time.perf_counter()
    for index, batch in enumerate(shard.iter_torch_batches(batch_size=cfg["micro_batch_size"], drop_last=True)):
        if index < state["micro"]:
            continue  # data position: these micro-batches were trained on before the checkpoint
        input_ids = batch["input_ids"].to(engine.device, dtype=torch.long)  # [micro, block]
        loss = engine(input_ids=input_ids, labels=input_ids).loss
        engine.backward(loss)  # DeepSpeed divides by the accumulation steps itself
        engine.step()  # steps the optimiser and scheduler only at the accumulation boundary
        losses.append(loss.detach().float())
        state["micro"] = index + 1
        if len(losses) < accum:
            continue
        state["step"] += 1
        # Wall time since the previous step ended: includes its report / checkpoint, the honest cost.
        now = time.perf_counter()
        row = step_metrics(state["step"], losses, engine, tokens_per_step, now - started)
        started = now
        if cfg["eval_every"] and state["step"] % cfg["eval_every"] == 0:
            row["eval_loss"] = eval_loss(engine, cfg)
        history.append(row)
        save = state["step"] % cfg["checkpoint_every"] == 0 and state["step"] < total
        if save:
            save_checkpoint(engine, state, history, rank, row)
        elif state["step"] % cfg["log_every"] == 0:
            ray.train.report(row)
            worker.log_rank0(worker.format_row(row))
        worker.maybe_inject_failure(cfg, state["step"], rank)
        losses = []
        if state["step"] >= total:
            break
    if state["step"] < total:  # prepare() sizes the stream for total steps; a short one is a bug, not bad input
        raise RuntimeError(f"rank {rank}: data stream ended at step {state['step']} of {total}")

    final = dict(history[-1]) if history else {"step": state["step"]}
    if cfg["has_validation"] and "eval_loss" not in final:
        final["eval_loss"] = eval_loss(engine, cfg)
        history.append({"step": state["step"], "eval_loss": final["eval_loss"]})
    worker.report_final(
        lambda out: export_engine(engine, cfg["zero_stage"], cfg["model"], out), history, final
    )


def setup_engine(cfg: dict[str, Any]):
    """Model + AdamW + warmup/decay schedule wrapped by deepspeed.initialize (torch.distributed is Ray's)."""
    import deepspeed
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if cfg["bf16"] else torch.float32
    sharded_load = None
    if cfg["zero_stage"] == 3:
        from transformers.integrations import HfDeepSpeedConfig

        # ZeRO-3: each rank materialises only its shard while loading (zero.Init), never the whole model.
        # transformers reads this object through a weak reference, so it must stay alive while loading.
        deepspeed.init_distributed(dist_backend=cfg["backend"])
        sharded_load = HfDeepSpeedConfig(cfg["deepspeed"])
    model = AutoModelForCausalLM.from_pretrained(cfg["model"], dtype=dtype)
    del sharded_load
    if cfg["gradient_checkpointing"]:
        model.gradient_checkpointing_enable()
    model.config.use_cache = False
    engine, _, _, _ = deepspeed.initialize(
        model=model, config=cfg["deepspeed"], dist_init_required=False, **optimizer_arguments(model, cfg)
    )
    return engine


def optimizer_arguments(model, cfg: dict[str, Any]) -> dict[str, Any]:
    """deepspeed.initialize's optimiser arguments: our torch AdamW and its schedule, or, when the DeepSpeed config
    names an optimiser (ZeRO-Offload), the parameters for DeepSpeed to build its own and the schedule to put on it."""
    import torch
    from transformers import get_scheduler

    def schedule(optimizer):
        return get_scheduler(
            cfg["lr_scheduler"], optimizer, num_warmup_steps=cfg["warmup_steps"], num_training_steps=cfg["total_steps"]
        )

    if "optimizer" in cfg["deepspeed"]:
        return {"model_parameters": [p for p in model.parameters() if p.requires_grad], "lr_scheduler": schedule}
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    return {"optimizer": optimizer, "lr_scheduler": schedule(optimizer)}


def step_metrics(step: int, losses: list, engine, tokens: int, seconds: float) -> dict[str, Any]:
    """Loss of one optimiser step, averaged over its micro-batches and over all workers."""
    import time

    import torch
    import torch.distributed as dist

    loss = torch.stack(losses).mean()
    dist.all_reduce(loss, op=dist.ReduceOp.SUM)
    return {
        "step": step,
        "loss": loss.item() / dist.get_world_size(),
        "learning_rate": engine.get_lr()[0],
        "tokens_per_second": tokens / max(seconds, 1e-9),
        "step_seconds": seconds,
        "timestamp": time.time(),  # wall clock, for launch-to-first-step and progress plots
    }


def eval_loss(engine, cfg: dict[str, Any]) -> float:
    """Mean causal-LM loss over this worker's validation shard, averaged over workers."""
    import ray.train
    import torch
    import torch.distributed as dist

    shard = ray.train.get_dataset_shard("validation")
    if shard is None:
        return float("nan")
    engine.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in shard.iter_torch_batches(batch_size=cfg["micro_batch_size"]):
            input_ids = batch["input_ids"].to(engine.device, dtype=torch.long)
            total += engine(input_ids=input_ids, labels=input_ids).loss.float().item() * len(input_ids)
            count += len(input_ids)
    engine.train()
    return mean_over_ranks(total, count, collective_device(dist.get_backend(), engine.device))


def collective_device(backend: str, device) -> Any:
    """Where a tensor must live for a collective on `backend`: NCCL reduces GPU tensors only (a CPU tensor is an
    error), gloo reduces CPU tensors."""
    import torch

    return torch.device(device) if backend == "nccl" else torch.device("cpu")


def mean_over_ranks(total: float, count: int, device) -> float:
    """sum(total) / sum(count) over all ranks (every rank calls), reduced on `device`."""
    import torch
    import torch.distributed as dist

    stats = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
    dist.all_reduce(stats, op=dist.ReduceOp.SUM)
    return (stats[0] / stats[1].clamp(min=1)).item()


def save_checkpoint(engine, state: dict[str, Any], history: list, rank: int, row: dict[str, Any]) -> None:
    """Every rank writes its part (engine shards, its RNG); Ray merges them into one checkpoint directory."""
    import tempfile

    import ray.train

    from solar_ray.train import worker

    with tempfile.TemporaryDirectory(prefix="solar-ray-ckpt-") as tmp:
        engine.save_checkpoint(f"{tmp}/deepspeed", tag="state", client_state={"solar_ray": dict(state)})
        worker.save_rng(Path(tmp) / f"rng_rank{rank}.pt")
        if rank == 0:
            worker.write_metrics(tmp, history)
        ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    worker.log_rank0(worker.format_row(row) + "  (checkpoint)")


def load_checkpoint(engine, checkpoint, rank: int) -> tuple[dict[str, Any], list]:
    from solar_ray.train import worker

    with checkpoint.as_directory() as directory:
        _, client_state = engine.load_checkpoint(f"{directory}/deepspeed", tag="state")
        worker.load_rng(Path(directory) / f"rng_rank{rank}.pt")
        history = worker.read_metrics(directory)
    return dict(client_state["solar_ray"]), history


# The stage contract (solar_ray/contract.py): what it asks of a cluster, where its Ray state lives.
from solar_ray.train.common import NAMING_KEYS, RAY_STORAGE_KEY, model_config, needs, ray_state  # noqa: E402,F401


def workload(config: Config, models):
    from solar_ray.plan.estimate import training

    return training(config, models, packed=True)
