"""A fast stand-in stage for testing the pipeline runner: adds its inputs' numbers to its own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from solar_ray.artifacts import atomic_dir, write_lineage
from solar_ray.config import StageConfig, Strict, dump_config
from solar_ray.errors import DataError
from solar_ray.train.common import ScalingSettings


class Run(Strict):
    """Like a training stage's `run`: a named run under a storage path, resumed from its checkpoint by name."""

    name: str | None = Field(default=None, description="Run name. Default: the output directory's name.")
    storage_path: str = Field(default="", description="Where runs keep checkpoints ('' = no checkpoints).")


class Config(StageConfig):
    stage: Literal["fake"] = "fake"
    value: int = Field(default=0, description="This stage's own number.")
    inputs: dict[str, str] = Field(default_factory=dict, description="Role -> input artifact path.")
    sleep: float = Field(default=0.0, description="Seconds to sleep before finishing (to be killed mid-stage).")
    run: Run = Field(default_factory=Run, description="Checkpointed run settings.")
    scaling: ScalingSettings | None = Field(default=None, description="Workers it would reserve, as training does.")
    fail: bool = Field(default=False, description="Fail after sleeping.")

    def run_name(self) -> str:
        return self.run.name or Path(self.output or "fake").name


def run(config: Config) -> Path:
    if config.fail:
        time.sleep(config.sleep)
        raise DataError(f"{config.output}: bad row 3")
    total = config.value + sum(int((Path(p) / "value.txt").read_text()) for p in config.inputs.values())
    if config.run.storage_path:  # as Ray Train does: a run of this name that has a checkpoint resumes from it
        checkpoint = Path(config.run.storage_path) / config.run_name() / "checkpoint.txt"
        if checkpoint.is_file():
            total = int(checkpoint.read_text())
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_text(str(total))
    with atomic_dir(config.output, force=config.force) as tmp:
        (tmp / "value.txt").write_text(str(total))
        time.sleep(config.sleep)
        write_lineage(tmp, "fake", dump_config(config), parents=config.inputs)
    return Path(config.output)


# The stage contract (solar_ray/contract.py), as a real stage declares it.
RAY_STORAGE_KEY = "run.storage_path"
NAMING_KEYS = ("run.name",)


def needs(config: Config):
    from solar_ray.contract import StageNeeds

    if config.scaling is None:
        return StageNeeds()
    s = config.scaling
    return StageNeeds(workers=s.num_workers, cpus_per_worker=s.cpus_per_worker, gpus_per_worker=1, on_gpu=s.use_gpu,
                      what=f"{s.num_workers} x fake workers")


def ray_state(config: Config) -> list[Path]:
    return [Path(config.run.storage_path) / config.run_name()] if config.run.storage_path else []
