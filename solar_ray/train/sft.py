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

from solar_ray.train import hf
from solar_ray.train.common import TrainStageConfig
from solar_ray.train.hf import TrlRecipe


class Config(TrainStageConfig):
    """A field named like a TRL SFTConfig field reaches TRL under that name (solar_ray.train.hf): add one here to
    expose another TRL setting."""

    stage: Literal["sft"] = "sft"
    assistant_only_loss: bool = Field(
        default=True, description="Train on assistant tokens only (needs {% generation %} in the chat template)."
    )
    train_sampling_strategy: Literal["random", "group_by_length"] = Field(
        default="random", description="Order of examples into micro-batches: random, or grouped by length "
        "(within random mega-batches; less padding where lengths vary, e.g. OpenOrca's system prompts)."
    )


RECIPE = TrlRecipe("SFTConfig", "SFTTrainer", columns=("messages",))


def prepare(config: Config, hw: dict[str, Any]):
    return hf.prepare(config, hw, RECIPE)


def run(config: Config) -> Path:
    from solar_ray.train.launcher import run as launch_run

    return launch_run(config)


# The stage contract (solar_ray/contract.py): what it asks of a cluster, where its Ray state lives.
from solar_ray.train.common import NAMING_KEYS, RAY_STORAGE_KEY, model_config, needs, ray_state  # noqa: E402,F401


def workload(config: Config, models):
    from solar_ray.plan.estimate import training

    return training(config, models)
