"""`stage: sft` - supervised fine-tuning with TRL's SFTTrainer inside Ray Train, on DeepSpeed.

Features: conversations (`messages`) rendered with the model's chat template (SOLAR's: `### User:` /
`### Assistant:`, EOS after every assistant turn); loss on assistant tokens only (`assistant_only_loss`, from the
template's {% generation %} markers); ZeRO 0-3; warmup + cosine; gradient accumulation and checkpointing;
checkpoints every `run.checkpoint_every` steps and automatic resume; eval loss on the artifact's test split;
export of a consolidated HF model directory with tokenizer, chat template, metrics and lineage.

Raises before any worker starts: ArtifactError (model or dataset missing), DataError (empty dataset, no
`messages` column), ConfigError (ZeRO stage, a global batch that does not divide, GPU-only options on CPU).

    solar-ray run experiments/tiny/sft.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from solar_ray.train.common import TrainStageConfig


class Config(TrainStageConfig):
    stage: Literal["sft"] = "sft"
    assistant_only_loss: bool = Field(
        default=True, description="Train on assistant tokens only (needs {% generation %} in the chat template)."
    )


def prepare(config: Config, hw: dict[str, Any]):
    from solar_ray.train.hf import hf_loop_config
    from solar_ray.train.launcher import Launch

    loop_config = hf_loop_config(config, hw, ("messages",))
    loop_config["args"]["assistant_only_loss"] = config.assistant_only_loss
    return Launch(train_loop, loop_config, datasets={}, split_datasets=[])


def run(config: Config) -> Path:
    from solar_ray.train.launcher import run as launch_run

    return launch_run(config)


def train_loop(cfg: dict[str, Any]) -> None:
    """Ray Train worker: TRL SFTTrainer on the rows in `cfg` (every rank holds them; the trainer shards)."""
    from solar_ray.train.hf import hf_dataset, load_policy, train_with_ray

    def build(output_dir: str, callbacks: list):
        from trl import SFTConfig, SFTTrainer

        # Arguments first: they register the DeepSpeed config, so under ZeRO-3 the models load already sharded.
        args = SFTConfig(output_dir=output_dir, **cfg["args"])
        model, tokenizer = load_policy(cfg)
        rows = cfg["rows"]
        return SFTTrainer(
            model=model,
            args=args,
            train_dataset=hf_dataset(rows["train"]),
            eval_dataset=hf_dataset(rows["test"]) if "test" in rows else None,
            processing_class=tokenizer,
            callbacks=callbacks,
        )

    train_with_ray(cfg, build)


# The stage contract (solar_ray/contract.py): what it asks of a cluster, where its Ray state lives.
from solar_ray.train.common import RAY_STORAGE_KEY, model_config, needs, ray_state  # noqa: E402,F401


def workload(config: Config, models):
    from solar_ray.plan.estimate import training

    return training(config, models)
