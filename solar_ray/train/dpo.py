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

from solar_ray.train.common import TrainStageConfig

LOSS_TYPES = ("sigmoid", "sigmoid_norm", "hinge", "ipo", "robust", "exo_pair", "bco_pair", "sppo_hard", "nca_pair", "apo_zero",
              "apo_down", "discopop", "aot", "aot_unpaired", "sft")


class Config(TrainStageConfig):
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


def prepare(config: Config, hw: dict[str, Any]):
    from solar_ray.train.hf import hf_loop_config
    from solar_ray.train.launcher import Launch

    loop_config = hf_loop_config(config, hw, ("prompt", "chosen", "rejected"))
    loop_config["args"].update(beta=config.beta, loss_type=[config.loss_type])
    return Launch(train_loop, loop_config, datasets={}, split_datasets=[])


def run(config: Config) -> Path:
    from solar_ray.train.hyperparameters import require_hyperparameters
    from solar_ray.train.launcher import run as launch_run

    return launch_run(require_hyperparameters(config))


def train_loop(cfg: dict[str, Any]) -> None:
    """Ray Train worker: TRL DPOTrainer; TRL builds the frozen reference from the same model path."""
    from solar_ray.train.hf import hf_dataset, load_policy, train_with_ray

    def build(output_dir: str, callbacks: list):
        from trl import DPOConfig, DPOTrainer

        # Arguments first: they register the DeepSpeed config, so under ZeRO-3 the models load already sharded.
        args = DPOConfig(output_dir=output_dir, **cfg["args"])
        model, tokenizer = load_policy(cfg)
        rows = cfg["rows"]
        return DPOTrainer(
            model=model,
            ref_model=None,
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

    return training(config, models, pairs=True, reference=True)
