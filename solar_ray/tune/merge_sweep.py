"""`stage: merge_sweep` - Ray Tune search over a merge method's parameters, each trial merged in memory and evaluated.

Features:
1. candidates: two or more model dirs (the first is the base: config, tokenizer, dtypes); their state dicts are
   loaded ONCE by the driver and shared with every trial through Ray's object store (`tune.with_parameters`);
2. any registered merge method (solar_ray/merge/methods/); searched keys (`space:`): `weight` (linear, two
   candidates: weights (a, 1 - a)), `weights.<candidate>` and `densities.<candidate>` (per-model values the method
   takes; unsearched candidates weigh 1), any of the method's own parameters by name (`t`, `density`, `lambda`,
   `seed`, ...), and `t_attn` / `t_mlp` (SLERP by tensor family, `t` or 0.5 elsewhere); `parameters:` fixes the
   method's other parameters. Every searched value is checked against the method when the config is read, so a
   range leaving it (a density of 1.5) fails before any trial;
3. a trial builds the base architecture without initialising it, writes the merge into it with
   `solar_ray.merge.merge_into_model` (no checkpoint written) and scores it with
   `solar_ray.evaluate.runner.evaluate_model` on `tasks` / `limit`; it reports every score ("ARC", ..., "H6")
   plus `mean` (mean over the tasks run);
4. grid / random / Optuna search (space.py); a rerun after a killed driver resumes the Tune experiment (sweep.py);
5. output: `best_model/` exported by the merge stage itself (solar_ray.merge.stage.run: same engine, same bits
   as the in-memory trial), the sweep report (report.md/html, trials.csv, best.json, plots) and lineage.json.

Raises ConfigError (one line) for: an empty space, an unknown space key or one that does not fit the method, a
searched value the method refuses,
fewer than two candidates, a metric no trial reports; ArtifactError for a candidate model dir missing.

    solar-ray run experiments/tiny/merge_sweep.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from solar_ray.config import LocalPath
from solar_ray.errors import ConfigError
from solar_ray.merge.plugin import MergeSpec, check_method_name, get_method, method_names
from solar_ray.merge.schedule import FAMILY_FILTERS, family_schedule
from solar_ray.tune.space import SweepConfig


class Config(SweepConfig):
    """A merge sweep: candidates, method, what is searched, and how each trial is scored."""

    stage: Literal["merge_sweep"] = Field(default="merge_sweep", description="Always 'merge_sweep'.")
    candidates: dict[str, LocalPath] = Field(description="Name -> model dir, in order; the first is the base.")
    method: str = Field(default="linear", description=f"Merge method of every trial: {', '.join(method_names())}.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The method's parameters that are not searched, e.g. {lambda: 1.0}."
    )
    tasks: list[str] = Field(default=["arc_challenge"], description="Eval tasks (suite or lm-eval names) per trial.")
    limit: int | None = Field(default=None, ge=1, description="Items per task per trial (None = all).")
    data_dir: LocalPath = Field(description="Benchmark data dir (WORLD/data/benchmarks layout) the eval reads.")
    batch_size: int = Field(default=16, ge=1, description="lm-eval batch size.")
    max_gen_toks: int | None = Field(default=None, ge=1, description="Cap on generated tokens (GSM8K); null = "
                                     "lm-eval's 256, which must fit in the candidates' context.")
    cpus_per_trial: float = Field(default=1, gt=0, description="CPUs Tune reserves for one trial.")
    gpus_per_trial: float = Field(default=0, ge=0, description="GPUs Tune reserves for one trial (device cuda).")
    device: str = Field(default="cpu", description="Where a trial's merged model is scored: cpu or cuda.")
    vocab: Literal["error", "base"] = Field(default="error", description="Merge vocabulary rule (see merge stage).")
    export_best: bool = Field(default=True, description="Write the best merge to output/best_model/.")

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        return check_method_name(value)

    @model_validator(mode="after")
    def _space_fits_method(self) -> Config:
        if len(self.candidates) < 2:
            raise ValueError(f"candidates: a merge needs at least 2 models, got {len(self.candidates)}")
        allowed = searchable_keys(self.method, list(self.candidates))
        for key in self.space:
            if key == "weight" and self.method == "linear" and len(self.candidates) != 2:
                raise ValueError("space.weight is (a, 1 - a) for exactly 2 candidates; use weights.<name>")
            if key not in allowed:
                raise ValueError(f"space.{key}: not a {self.method} merge parameter; expected one of: "
                                 f"{', '.join(allowed)}")
        # every bound of every searched key (the others at their first value) must fit the method: a value it
        # refuses fails now, not in a trial
        first = {key: extreme_values(param)[0] for key, param in self.space.items()}
        for key, param in self.space.items():
            for value in extreme_values(param):
                try:
                    MergeSpec.build(self.method, len(self.candidates),
                                    **merge_arguments(self, {**first, key: value}))
                except ConfigError as exc:
                    raise ValueError(f"space.{key}: value {value!r} does not fit {self.method}: {exc}") from None
        return self


def searchable_keys(method: str, candidates: list[str]) -> list[str]:
    """The space keys a sweep of `method` over `candidates` may search."""
    plugin = get_method(method)
    others = candidates[1:] if plugin.task_vectors else candidates
    keys = ["weight"] if method == "linear" else []
    keys += [f"{plural}.{name}" for key, plural in (("weight", "weights"), ("density", "densities"))
             if key in plugin.per_model for name in others]
    params = [info.alias or name for name, info in plugin.Params.model_fields.items()]
    keys += params + (list(FAMILY_FILTERS) if "t" in params else [])
    return keys


def extreme_values(param) -> list[Any]:
    """The values of a searched parameter that bound what a trial can draw."""
    if param.grid is not None or param.choice is not None:
        return list(param.grid if param.grid is not None else param.choice)
    if param.randint is not None:
        return [param.randint[0], param.randint[1] - 1]  # [low, high)
    return list(param.uniform or param.loguniform)


def merge_arguments(config: Config, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's params -> `weights`, `densities` and method parameters for the merge engine (the trial, the
    export and the config check share this)."""
    names = list(config.candidates)
    plugin = get_method(config.method)
    arguments: dict[str, Any] = dict(config.parameters)
    weights = densities = None
    if "weight" in params:
        a = float(params["weight"])
        weights = [a, 1.0 - a]
    elif any(key.startswith("weights.") for key in params):
        weights = [None if plugin.task_vectors and i == 0 else float(params.get(f"weights.{name}", 1.0))
                   for i, name in enumerate(names)]
    if any(key.startswith("densities.") for key in params):
        densities = [params.get(f"densities.{name}") for name in names]
    for key, value in params.items():
        if "." not in key and key != "weight" and key not in FAMILY_FILTERS:
            arguments[key] = value
    if any(key in params for key in FAMILY_FILTERS):
        arguments["t"] = family_schedule(float(params.get("t", arguments.get("t", 0.5))), params.get("t_attn"),
                                         params.get("t_mlp"))
    return {"weights": weights, "densities": densities, **arguments}


def load_candidates(config: Config) -> list[dict[str, Any]]:
    """State dicts of the candidates (safetensors, CPU); ArtifactError names a missing dir."""
    from safetensors.torch import load_file

    from solar_ray.artifacts import require_model_dir

    state_dicts = []
    for name, path in config.candidates.items():
        try:
            require_model_dir(path)
        except Exception as exc:
            from solar_ray.errors import ArtifactError

            raise ArtifactError(f"candidates.{name}: {exc}") from None
        state = {}
        for shard in sorted(Path(path).glob("*.safetensors")):
            state.update(load_file(shard))
        state_dicts.append(state)
    return state_dicts


def trial(params: dict[str, Any], config_dict: dict[str, Any], state_dicts: list[dict[str, Any]]) -> None:
    """Tune trial: merge in memory into an uninitialised base model, evaluate, report the scores once."""
    import torch
    from ray import tune

    scores = merge_and_evaluate(Config(**config_dict), params, state_dicts, torch.get_num_threads())
    tune.report(scores)


def merge_and_evaluate(config: Config, params: dict[str, Any], state_dicts: list[dict[str, Any]],
                       threads: int | None = None) -> dict[str, float]:
    """Build the base architecture, merge into it (no checkpoint), score it; returns the scores + `mean`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.initialization import no_init_weights

    from solar_ray.evaluate.runner import evaluate_model
    from solar_ray.merge.core import merge_into_model

    base = next(iter(config.candidates.values()))
    with no_init_weights():  # every weight is overwritten by the merge: skip the random init
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base),
                                                 dtype=next(iter(state_dicts[0].values())).dtype)
    merge_into_model(model, state_dicts, config.method, vocab=config.vocab, threads=threads,
                     **merge_arguments(config, params))
    model.to(config.device).eval()
    scores = evaluate_model(model, AutoTokenizer.from_pretrained(base), tasks=config.tasks, limit=config.limit,
                            data_dir=config.data_dir, device=config.device, batch_size=config.batch_size,
                            max_gen_toks=config.max_gen_toks)
    scores["mean"] = sum(scores.values()) / len(scores)
    return scores


def run(config: Config) -> Path:
    """Run (or resume) the sweep, export the best merge, write the report and lineage into `config.output`."""
    from solar_ray.config import dump_config
    from solar_ray.evaluate.suites import resolve_tasks
    from solar_ray.evaluate.tasks import check_data
    from solar_ray.merge import stage as merge_stage
    from solar_ray.tune.sweep import check_output, run_tuner, sweep_artifact

    check_output(config, "best model")
    check_data(config.data_dir, resolve_tasks(config.tasks))  # bad data fails before any trial starts
    state_dicts = load_candidates(config)
    # Reused trial processes: a fresh one spends ~5 s importing torch/transformers/lm-eval and warming lm-eval
    # up, several times the evaluation of a tiny model (bench/bench_tune.py).
    resources = {"cpu": config.cpus_per_trial, **({"gpu": config.gpus_per_trial} if config.gpus_per_trial else {})}
    run_tuner(config, trial, {"config_dict": dump_config(config), "state_dicts": state_dicts}, resources,
              reuse_actors=True)
    del state_dicts

    with sweep_artifact(config, "merge_sweep", parents=dict(config.candidates)) as (tmp, best):
        if config.export_best:
            arguments = merge_arguments(config, best["config"])
            weights = arguments.pop("weights") or [None] * len(config.candidates)
            densities = arguments.pop("densities") or [None] * len(config.candidates)
            merge_stage.run(merge_stage.Config(
                output=str(tmp / "best_model"), method=config.method, parameters=arguments, vocab=config.vocab,
                models={name: {"path": path, "weight": w, "density": d}
                        for (name, path), w, d in zip(config.candidates.items(), weights, densities, strict=True)},
            ))
    return Path(config.output)


def needs(config: Config):
    """With `search.max_concurrent_trials`, what that many trials reserve at once, so the sweep runs beside other
    stages (the tiny one beside the evaluations); without it, the whole cluster."""
    from solar_ray.contract import StageNeeds
    from solar_ray.tune.space import needs as sweep_needs

    trial = StageNeeds(workers=1, cpus_per_worker=config.cpus_per_trial, gpus_per_worker=config.gpus_per_trial,
                       on_gpu=bool(config.gpus_per_trial), what="one trial process (merge + H6)")
    return sweep_needs(config, trial)


# The rest of the stage contract (solar_ray/contract.py), the same for every sweep.
from solar_ray.tune.space import NAMING_KEYS, RAY_STORAGE_KEY, ray_state  # noqa: E402,F401
