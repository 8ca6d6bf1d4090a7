"""The stage registry: `stage:` name -> module that defines `Config` (a StageConfig) and `run(config) -> Path`.

Stage modules keep heavy imports (torch, ray, transformers) inside functions, so validating a config or printing
`--help` stays fast.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from solar_ray.errors import ConfigError

STAGES: dict[str, str] = {
    "tiny": "solar_ray.tiny.stage",
    "fetch": "solar_ray.hub",
    "upscale": "solar_ray.upscale.stage",
    "merge": "solar_ray.merge.stage",
    "data": "solar_ray.data.stage",
    "pretrain": "solar_ray.train.pretrain",
    "sft": "solar_ray.train.sft",
    "dpo": "solar_ray.train.dpo",
    "synth_math": "solar_ray.synth.stage",
    "eval": "solar_ray.evaluate.stage",
    "contamination": "solar_ray.evaluate.contamination",
    "merge_sweep": "solar_ray.tune.merge_sweep",
    "dpo_sweep": "solar_ray.tune.dpo_sweep",
}


def stage_module(stage: str, source: str = "config") -> ModuleType:
    """The module implementing `stage`; a one-line ConfigError for an unknown stage."""
    if stage not in STAGES:
        raise ConfigError(f"{source}: unknown stage '{stage}'; known stages: {', '.join(sorted(STAGES))}")
    return importlib.import_module(STAGES[stage])


def run_stage(config) -> Path:
    """Run one validated stage config; returns the artifact directory it wrote."""
    return stage_module(config.stage).run(config)
