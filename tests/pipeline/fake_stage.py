"""A fast stand-in stage for testing the pipeline runner: adds its inputs' numbers to its own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from solar_ray.artifacts import atomic_dir, write_lineage
from solar_ray.config import StageConfig, dump_config


class Config(StageConfig):
    stage: Literal["fake"] = "fake"
    value: int = Field(default=0, description="This stage's own number.")
    inputs: dict[str, str] = Field(default_factory=dict, description="Role -> input artifact path.")
    sleep: float = Field(default=0.0, description="Seconds to sleep before finishing (to be killed mid-stage).")


def run(config: Config) -> Path:
    total = config.value + sum(int((Path(p) / "value.txt").read_text()) for p in config.inputs.values())
    with atomic_dir(config.output, force=config.force) as tmp:
        (tmp / "value.txt").write_text(str(total))
        time.sleep(config.sleep)
        write_lineage(tmp, "fake", dump_config(config), parents=config.inputs)
    return Path(config.output)
