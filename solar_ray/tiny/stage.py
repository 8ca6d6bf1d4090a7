"""`stage: tiny` - build the tiny world (model + tokenizer + datasets) as one artifact directory."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from solar_ray.config import StageConfig


class Config(StageConfig):
    stage: Literal["tiny"] = "tiny"
    seed: int = Field(default=0, description="The base model's initialisation; the experiment seed moves it.")
    language_seed: int = Field(
        default=0, ge=0,
        description="The world's content: its creatures, facts, myths and scripts, every dataset and benchmark item, "
                    "and the tokenizer trained on them. The experiment seed leaves it alone (a re-run with another "
                    "seed keeps its data and benchmarks, as it would on hub datasets); set it for another world.",
    )


def run(config: Config) -> Path:
    from solar_ray.tiny.build import build_tiny_world

    return build_tiny_world(Path(config.output or "runs/tiny"), seed=config.seed,
                            language_seed=config.language_seed, force=config.force, config=config)


# ------------------------------------------------------------------ the stage contract (solar_ray/contract.py)


def model_config(config: Config, sub: str, models) -> dict | None:
    """The base model's config before the world is built (its vocabulary at most the BPE trainer's target)."""
    from solar_ray.tiny.model import MODEL_SHAPE, VOCAB_SIZE

    return {"model_type": "llama", "vocab_size": VOCAB_SIZE, **MODEL_SHAPE} if sub == "base" else None
