"""Search spaces and search algorithms as config: `{uniform: [0.2, 0.8]}`, `{choice: [...]}`, `{grid: [...]}`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from solar_ray.config import LocalPath, StageConfig, Strict


class Param(Strict):
    """One searched parameter: exactly one of the keys below."""

    grid: list[Any] | None = Field(default=None, description="Every value, crossed with other grid params.")
    choice: list[Any] | None = Field(default=None, description="Sample one value uniformly.")
    uniform: tuple[float, float] | None = Field(default=None, description="[low, high] sampled uniformly.")
    loguniform: tuple[float, float] | None = Field(default=None, description="[low, high] sampled log-uniformly.")
    randint: tuple[int, int] | None = Field(default=None, description="[low, high) integers.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Param:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of grid, choice, uniform, loguniform, randint (got {given or 'none'})")
        values = self.grid if self.grid is not None else self.choice
        if values is not None and not values:
            raise ValueError("an empty list of values searches nothing")
        bounds = self.uniform or self.loguniform or self.randint
        if bounds is not None and not bounds[0] < bounds[1]:
            raise ValueError(f"expected [low, high] with low < high, got {list(bounds)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform bounds must be positive")
        return self

    def to_tune(self):
        from ray import tune

        if self.grid is not None:
            return tune.grid_search(self.grid)
        if self.choice is not None:
            return tune.choice(self.choice)
        if self.uniform is not None:
            return tune.uniform(*self.uniform)
        if self.loguniform is not None:
            return tune.loguniform(*self.loguniform)
        return tune.randint(*self.randint)


class Search(Strict):
    algorithm: Literal["grid", "random", "optuna"] = Field(
        default="random", description="grid: every grid value; random: Tune's sampler; optuna: TPE."
    )
    num_samples: int = Field(default=6, ge=1, description="Trials (grid: repeats of the whole grid).")
    metric: str = Field(description="The reported metric to optimise, e.g. h6 or rewards/accuracies.")
    mode: Literal["max", "min"] = Field(default="max", description="Maximise or minimise the metric.")
    seed: int = Field(default=0, description="Seed of the search algorithm.")
    max_concurrent_trials: int | None = Field(default=None, ge=1, description="Cap on trials at once.")


def param_space(space: dict[str, Param]) -> dict[str, Any]:
    """Flat dotted-key space -> Tune's param_space (keys stay dotted; trials apply them as overrides)."""
    return {key: param.to_tune() for key, param in space.items()}


def search_algorithm(search: Search, max_concurrent: int | None):
    """Tune search algorithm for the config: Optuna's TPE, or Tune's seeded random/grid generator.

    The cap on concurrent trials goes here, not into TuneConfig.max_concurrent_trials: Tune ignores that
    field (with a warning) for a BasicVariantGenerator instance, and every trial would start at once.
    """
    if search.algorithm == "optuna":
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        optuna = OptunaSearch(metric=search.metric, mode=search.mode, seed=search.seed)
        return ConcurrencyLimiter(optuna, max_concurrent) if max_concurrent else optuna
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=search.seed, max_concurrent=max_concurrent or 0)


class SweepConfig(StageConfig):
    """Fields every sweep stage has; the stage adds what a trial does."""

    space: dict[str, Param] = Field(description="Dotted key -> searched values; the trial applies them as overrides.")
    search: Search = Field(description="Search algorithm, trial count and the metric to optimise.")
    max_failures: int = Field(default=2, ge=0, description="Retries of a failed trial before it counts as errored.")
    storage_path: LocalPath = Field(
        default="runs/ray", description="Tune experiment storage (local dir or cloud URI); the pipeline sets it."
    )
    name: str | None = Field(default=None, description="Tune experiment name. Default: the output dir's name.")

    @model_validator(mode="after")
    def _space_fits_search(self) -> SweepConfig:
        if not self.space:
            raise ValueError("the search space is empty: give at least one entry under `space`")
        grids = [key for key, p in self.space.items() if p.grid is not None]
        if self.search.algorithm == "optuna" and grids:
            raise ValueError(f"optuna cannot search grid params ({', '.join(grids)}); use choice instead")
        if self.search.algorithm == "grid" and len(grids) != len(self.space):
            others = [key for key in self.space if key not in grids]
            raise ValueError(f"algorithm grid needs every param as grid: [...] (not: {', '.join(others)})")
        return self

    def experiment_name(self) -> str:
        from pathlib import Path

        return self.name or Path(self.output or "sweep").name


# -------------------------------------------------- the stage contract (solar_ray/contract.py), every sweep's
RAY_STORAGE_KEY = "storage_path"
NAMING_KEYS = ("name",)  # the Tune experiment's name


def needs(config: SweepConfig, per_trial=None, driver_cpus: float = 0.0):
    """What a sweep reserves: with `search.max_concurrent_trials` and what one trial takes (`per_trial`, a
    StageNeeds; `driver_cpus` beside it), that many trials' worth, so the sweep runs beside other stages; else the
    whole cluster."""
    from dataclasses import replace

    from solar_ray.contract import StageNeeds

    trials = config.search.max_concurrent_trials
    if not trials or per_trial is None:
        return StageNeeds(whole_cluster=True,
                          what=f"Ray Tune trials ({config.search.num_samples}), sized to the cluster")
    return replace(per_trial, workers=trials * per_trial.workers, driver_cpus=trials * driver_cpus,
                   what=f"Ray Tune trials ({config.search.num_samples}), {trials} at a time of {per_trial.what}")


def ray_state(config: SweepConfig):
    """The Tune experiment, and the Ray Train runs its trials start (`<experiment>-train`)."""
    from solar_ray.contract import local_runs

    return local_runs(config.storage_path, [config.experiment_name(), f"{config.experiment_name()}-train"])
