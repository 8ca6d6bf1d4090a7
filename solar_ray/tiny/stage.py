"""`stage: tiny` - build the tiny world (model + tokenizer + datasets) as one artifact directory."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from solar_ray.config import StageConfig

# The modules whose code decides the world's files: its language, datasets, layout, tokenizer and base model.
GENERATOR_SOURCES = tuple(Path(__file__).with_name(name) for name in ("language.py", "datasets.py", "build.py",
                                                                      "model.py"))


def generator_digest() -> str:
    """The world generator's source, hashed. A world is current by its config, and a new solar-ray (or an edit)
    can change its files under the same seeds: its digest in the config re-builds it, and what was made from it."""
    digest = hashlib.sha256()
    for source in GENERATOR_SOURCES:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


class Config(StageConfig):
    stage: Literal["tiny"] = "tiny"
    seed: int = Field(default=0, description="The base model's initialisation; the experiment seed moves it.")
    language_seed: int = Field(
        default=0, ge=0,
        description="The world's content: its creatures, facts, myths and scripts, every dataset and benchmark item, "
                    "and the tokenizer trained on them. The experiment seed leaves it alone (a re-run with another "
                    "seed keeps its data and benchmarks, as it would on hub datasets); set it for another world.",
    )
    generator: str = Field(
        default_factory=generator_digest,
        description="The world generator's source digest, filled in by solar-ray (leave it out): a world built by "
                    "other generator code is built again.",
    )

    @field_validator("generator")
    @classmethod
    def _this_generator(cls, value: str) -> str:
        if value != (current := generator_digest()):
            raise ValueError(f"{value!r} is not this solar-ray's world generator ({current}); leave the key out")
        return value


def run(config: Config) -> Path:
    from solar_ray.tiny.build import build_tiny_world

    return build_tiny_world(Path(config.output or "runs/tiny"), seed=config.seed,
                            language_seed=config.language_seed, force=config.force, config=config)


# ------------------------------------------------------------------ the stage contract (solar_ray/contract.py)


def model_config(config: Config, sub: str, models) -> dict | None:
    """The base model's config before the world is built (its vocabulary at most the BPE trainer's target)."""
    from solar_ray.tiny.model import MODEL_SHAPE, VOCAB_SIZE

    return {"model_type": "llama", "vocab_size": VOCAB_SIZE, **MODEL_SHAPE} if sub == "base" else None
