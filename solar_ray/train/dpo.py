"""`stage: dpo` - direct preference optimisation with TRL's DPOTrainer inside Ray Train, on DeepSpeed.

Features: preference rows in TRL's conversational format (`prompt` messages, `chosen` / `rejected` assistant
turns) rendered with the model's chat template; a frozen reference model loaded from the same input model and
wrapped by TRL for DeepSpeed (sharded, inference-only, under ZeRO-3); `beta` and `loss_type` from the config;
rewards/accuracies and rewards/margins logged per step; checkpoints, automatic resume and export as in SFT.

Raises before any worker starts: ArtifactError (model or dataset missing), DataError (empty dataset, missing
prompt/chosen/rejected), ConfigError (ZeRO stage, a global batch that does not divide, GPU-only options on CPU).

    solar-ray run experiments/tiny/dpo.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from solar_ray.train import hf
from solar_ray.train.common import TrainStageConfig
from solar_ray.train.hf import TrlRecipe

LOSS_TYPES = ("sigmoid", "sigmoid_norm", "hinge", "ipo", "robust", "exo_pair", "bco_pair", "sppo_hard", "nca_pair", "apo_zero",
              "apo_down", "discopop", "aot", "aot_unpaired", "sft")


class Config(TrainStageConfig):
    """A field named like a TRL DPOConfig field reaches TRL under that name (solar_ray.train.hf): add one here to
    expose another TRL setting."""

    stage: Literal["dpo"] = "dpo"
    beta: float = Field(default=0.1, gt=0, description="DPO temperature: how far the policy may move from the reference.")
    loss_type: Literal[LOSS_TYPES] = Field(default="sigmoid", description="DPO loss (TRL loss_type); sigmoid = the paper's.")

    # A sweep's best config as an ordinary input (solar_ray.train.hyperparameters): its keys override these.
    hyperparameters_from: str | None = Field(default=None, description="A sweep's best_config.json ({dotted key: "
                                             "value}, e.g. beta, optim.learning_rate) whose values override this config's.")

    @model_validator(mode="before")
    @classmethod
    def _apply_hyperparameters(cls, data):
        from solar_ray.train.hyperparameters import apply_hyperparameters

        return apply_hyperparameters(data, cls.model_fields)


# ref_model None: TRL builds the frozen reference from the same model path.
RECIPE = TrlRecipe("DPOConfig", "DPOTrainer", columns=("prompt", "chosen", "rejected"), trainer_kwargs=(("ref_model", None),))


def prepare(config: Config, hw: dict[str, Any]):
    return hf.prepare(config, hw, RECIPE)


def run(config: Config) -> Path:
    from solar_ray.train.hyperparameters import require_hyperparameters
    from solar_ray.train.launcher import run as launch_run

    return launch_run(require_hyperparameters(config))


# The stage contract (solar_ray/contract.py): what it asks of a cluster, where its Ray state lives.
from solar_ray.train.common import RAY_STORAGE_KEY, model_config, needs, ray_state  # noqa: E402,F401

# hyperparameters_from: its values are applied to the config before it is compared (solar_ray.train.hyperparameters).
NAMING_KEYS = ("run.name", "hyperparameters_from")


def workload(config: Config, models):
    from solar_ray.plan.estimate import training

    return training(config, models, pairs=True, reference=True)
