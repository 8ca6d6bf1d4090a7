"""A stand-in stage that is as noisy as the real ones: Ray task, actor and Ray Data output, a library warning,
driver prints. Each line names the stage, so a test can check which log file it landed in."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Literal

from pydantic import Field

from solar_ray.artifacts import atomic_dir, write_lineage
from solar_ray.config import StageConfig, dump_config
from solar_ray.errors import DataError


class Config(StageConfig):
    stage: Literal["noisy"] = "noisy"
    inputs: dict[str, str] = Field(default_factory=dict, description="Role -> input artifact path.")
    fail: bool = Field(default=False, description="Fail after making noise.")
    sleep: float = Field(default=0.0, description="Seconds to sleep before finishing.")
    ray: bool = Field(default=True, description="Make noise in Ray workers too (needs Ray).")
    crash: bool = Field(default=False, description="Fail with an unexpected error (not a SolarRayError).")


def run(config: Config) -> Path:
    name = Path(config.output).name
    if config.ray:
        ray_noise(name)
    print(f"noise from the driver thread of {name}")
    warnings.warn(f"a library warning in {name}", UserWarning, stacklevel=1)
    time.sleep(config.sleep)
    if config.fail:
        raise DataError(f"{config.output}: bad row 3")
    if config.crash:
        raise RuntimeError("worker died: " + "x" * 400)
    with atomic_dir(config.output, force=config.force) as tmp:
        (tmp / "value.txt").write_text("1")
        write_lineage(tmp, "noisy", dump_config(config), parents=config.inputs)
    return Path(config.output)


def ray_noise(name: str) -> None:
    import ray

    @ray.remote
    def task() -> None:
        print(f"noise from a Ray task of {name}", flush=True)
        print(f"noise on a Ray task's stderr of {name}", file=sys.stderr, flush=True)

    @ray.remote
    class Actor:
        def speak(self) -> None:
            print(f"noise from a Ray actor of {name}", flush=True)

    ray.get(task.remote())
    actor = Actor.remote()
    ray.get(actor.speak.remote())
    ray.kill(actor)
    rows = ray.data.range(64).map_batches(lambda batch: batch).take_all()
    print(f"noise from the driver thread of {name}: {len(rows)} rows from Ray Data")
