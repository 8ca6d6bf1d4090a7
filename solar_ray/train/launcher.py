"""One launcher for every training stage: stage config -> Ray Train TorchTrainer -> model artifact.

A stage module (pretrain, sft, dpo) provides `prepare(config) -> Launch`: its per-worker train loop, the loop's
config dict (everything a worker needs: workers read no module globals) and its Ray datasets. This module turns
the stage config's launch settings into ScalingConfig / RunConfig / FailureConfig / CheckpointConfig, runs it,
and writes the artifact from the run's last checkpoint (which holds the exported model and metrics history).

Public API:
    fit(config, callbacks=None) -> ray.train.Result     # one training run; use it from a Tune driver function
    run(config) -> Path                                 # fit + write the model artifact at config.output
Resume: starting a run with the same `run.name` and `run.storage_path` continues from its last checkpoint;
inside one run, a dead worker restarts the group from the last checkpoint (`run.max_failures`).
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from solar_ray.config import absolute_unless_uri, dump_config
from solar_ray.errors import SolarRayError
from solar_ray.train.common import TrainStageConfig, check_capacity, resolve_hardware
from solar_ray.train.worker import EXPORT_DIR, read_metrics


@dataclasses.dataclass
class Launch:
    """What a stage hands the launcher."""

    train_loop: Callable[[dict[str, Any]], None]
    loop_config: dict[str, Any]
    datasets: dict[str, Any]
    split_datasets: list[str]  # datasets sharded across workers; the rest are given whole to every worker


def hardware(config: TrainStageConfig) -> dict[str, Any]:
    """GPU or CPU, precision and backend for this cluster; raises ConfigError for GPU-only options on CPU."""
    from solar_ray.capacity import gpus_obtainable
    from solar_ray.ray_session import cluster_gpus, init_ray

    init_ray()
    hw = resolve_hardware(config, cluster_gpus(), gpus_obtainable())
    check_capacity(config, hw)
    return hw


def build_trainer(config: TrainStageConfig, launch: Launch, hw: dict[str, Any], callbacks: list | None = None):
    from ray.data import ExecutionOptions
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from solar_ray.ray_session import no_dashboard

    if no_dashboard():
        from solar_ray.patches.ray_train_callbacks import skip_placement_group_cleaner

        skip_placement_group_cleaner()
    s, r = config.scaling, config.run
    return TorchTrainer(
        launch.train_loop,
        train_loop_config=launch.loop_config,
        scaling_config=ScalingConfig(
            num_workers=s.num_workers, use_gpu=hw["use_gpu"], resources_per_worker={"CPU": s.cpus_per_worker}
        ),
        torch_config=TorchConfig(backend=hw["backend"]),
        run_config=RunConfig(
            name=config.run_name(),
            storage_path=absolute_unless_uri(r.storage_path),  # Ray needs an absolute path or a URI
            failure_config=FailureConfig(max_failures=r.max_failures),
            # +1: the final checkpoint (exported model) must not evict the newest resumable one.
            checkpoint_config=CheckpointConfig(num_to_keep=r.keep_checkpoints + 1),
            callbacks=callbacks,
        ),
        datasets=launch.datasets,
        # Ordered, locality-free sharding: a restarted worker group sees the same rows in the same order,
        # which exact resume (same loss at every step) relies on.
        dataset_config=DataConfig(
            datasets_to_split=launch.split_datasets,
            execution_options=ExecutionOptions(preserve_order=True),
            enable_shard_locality=False,
        ),
    )


def fit(config: TrainStageConfig, callbacks: list | None = None, loop_overrides: dict[str, Any] | None = None):
    """Validate inputs, launch the stage's TorchTrainer and return its `ray.train.Result`.

    Inside a Tune trial (driver function), per-step metrics reach Tune through Ray's TuneReportCallback,
    added here automatically.
    """
    from solar_ray.stages import stage_module

    hw = hardware(config)
    launch = stage_module(config.stage).prepare(config, hw)
    launch.loop_config.update(loop_overrides or {})  # tests: fault injection
    callbacks = list(callbacks or [])
    if _in_tune_trial():
        from ray.tune.integration.ray_train import TuneReportCallback

        callbacks.append(TuneReportCallback())
    result = build_trainer(config, launch, hw, callbacks).fit()
    if result.error is not None:
        raise result.error
    return result


def _in_tune_trial() -> bool:
    # private library API, a plain use kept here: listed and checked in solar_ray/patches/__init__.py
    from ray.tune.trainable.trainable_fn_utils import _in_tune_session

    return _in_tune_session()


def write_artifact(config: TrainStageConfig, result: Any) -> Path:
    """Copy the exported model out of the run's final checkpoint and write metrics + lineage atomically."""
    from solar_ray.artifacts import atomic_dir, write_json, write_lineage

    if result.checkpoint is None:
        raise SolarRayError(f"run '{config.run_name()}' finished without a checkpoint; see the Ray Train logs above")
    with result.checkpoint.as_directory() as ckpt, atomic_dir(config.output, force=config.force) as out:
        export = Path(ckpt) / EXPORT_DIR
        if not export.is_dir():
            raise SolarRayError(f"{ckpt}: last checkpoint holds no exported model ({EXPORT_DIR}/)")
        shutil.copytree(export, out, dirs_exist_ok=True)
        history = read_metrics(ckpt)
        shutil.copy(Path(ckpt) / "metrics.jsonl", out / "metrics.jsonl")
        summary = summarise(history)
        write_json(out / "metrics.json", summary)
        write_lineage(
            out, config.stage, dump_config(config),
            parents={"model": config.model, "dataset": config.dataset},
            metrics=summary, run={"name": config.run_name(), "path": result.path},
        )
    return Path(config.output)


def summarise(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary of a metrics history: steps, first/last/min loss, last eval loss and DPO rewards, mean throughput."""
    train = [row for row in history if "loss" in row]
    summary: dict[str, Any] = {"steps": max((row.get("step", 0) for row in history), default=0)}
    if train:
        summary.update(first_loss=train[0]["loss"], final_loss=train[-1]["loss"], min_loss=min(r["loss"] for r in train))
        speeds = [r["tokens_per_second"] for r in train if r.get("tokens_per_second")]
        if speeds:
            summary["mean_tokens_per_second"] = sum(speeds) / len(speeds)
    for key in ("eval_loss", "rewards/accuracies", "rewards/margins"):
        values = [row[key] for row in history if key in row]
        if values:
            summary[f"final_{key}"] = values[-1]
    return summary


def run(config: TrainStageConfig) -> Path:
    """Train, write the model artifact, then delete the run's Ray storage. Stops early (no worker started) when
    the output already exists or would overwrite an input."""
    from solar_ray.artifacts import refuse_existing_output, refuse_output_among_inputs

    refuse_existing_output(config.output, config.force)
    refuse_output_among_inputs(config.output, {"model": config.model, "dataset": config.dataset})
    result = fit(config)
    out = write_artifact(config, result)
    prune_run_storage(result)
    return out


def prune_run_storage(result: Any) -> None:
    """Delete a finished run's Ray Train folder (every checkpoint, ~340 GB of ZeRO-3 states for a 10.7B stage).

    Call only after the artifact is written (atomically): until then the folder is what a rerun resumes from, and
    its final checkpoint is what a rerun hands back without training again. Local or cloud (s3://, gs://) alike.
    """
    result.filesystem.delete_dir(result.path)
