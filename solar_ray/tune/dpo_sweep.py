"""`stage: dpo_sweep` - Ray Tune over DPO hyper-parameters; each trial is one Ray Train DPO run (Train V2 pattern).

Features:
1. `base:` a DPO stage config (path to a `stage: dpo` YAML, or an inline mapping), `overrides:` dotted keys set
   on it for every trial (launch settings); `space:` dotted keys of it (beta, loss_type, optim.learning_rate,
   optim.epochs, ...) applied as overrides per trial;
2. each trial is a Tune driver function that calls `solar_ray.train.launcher.fit` (TorchTrainer); the launcher
   adds Ray's TuneReportCallback inside a trial, so every `run.log_every` steps the training metrics
   (loss, rewards/accuracies, rewards/margins, ...) reach Tune and ASHA can stop weak trials early;
3. every trial's Train run has its own name (`<sweep>-<trial id>`) and storage under
   `<storage_path>/<sweep>-train/`, so a retried trial (up to `max_failures`) resumes its own checkpoint;
4. trials at once = what the workers fit on the cluster (`concurrent_trials`; Train V2 reserves the workers
   apart from the trial); a trial stopped by ASHA frees its workers (solar_ray/patches/ray_train_callbacks.py);
5. a rerun after a killed driver resumes the Tune experiment (sweep.py);
6. output: the sweep report (report.md/html, trials.csv, best.json, plots), `best_config.json` (the best
   trial's searched keys, {dotted key: value}: a DPO config's `hyperparameters_from` input, so a pipeline trains
   the candidate with them), `best_config.yaml` (the base DPO config with them: `solar-ray run` it) and
   lineage.json.

Raises ConfigError (one line) for: an empty space, a space key the DPO config does not have (checked against
the DPO config before any trial starts), a trial bigger than the local Ray, a metric no trial reports; plus the
DPO stage's own input errors.

    solar-ray run experiments/tiny/dpo_sweep.yaml
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from solar_ray.config import Strict, dump_config
from solar_ray.tune.space import SweepConfig


class AshaSettings(Strict):
    """Asynchronous successive halving: stop the worse trials at rungs grace_period * reduction_factor^k."""

    grace_period: int = Field(default=1, ge=1, description="Reports a trial gets before it may be stopped.")
    reduction_factor: float = Field(default=2, gt=1, description="Keep 1/reduction_factor of the trials per rung.")
    max_t: int = Field(default=100, ge=1, description="Most reports (training_iteration) of a trial.")


class Config(SweepConfig):
    """A DPO sweep: the DPO config to vary, the searched overrides and the early-stopping scheduler."""

    stage: Literal["dpo_sweep"] = Field(default="dpo_sweep", description="Always 'dpo_sweep'.")
    base: str | dict[str, Any] = Field(description="The DPO stage config: a YAML path or an inline mapping.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Dotted keys set on the base config for "
                                      "every trial, e.g. scaling.cpus_per_worker: 0.9 to fit two trials on 2 CPUs.")
    scheduler: AshaSettings | None = Field(default_factory=AshaSettings,
                                           description="ASHA early stopping (null: run every trial to the end).")
    # Tune refuses an all-zero resource request; the driver only waits on its TorchTrainer, so 0.01 CPU.
    driver_cpus: float = Field(default=0.01, gt=0, description="CPUs of a trial's driver function (workers ask "
                               "for their own through the DPO config's scaling section).")

    @model_validator(mode="after")
    def _resolve_base_and_check_space(self) -> Config:
        dpo = self.dpo_config({})  # base + overrides, validated: its paths are absolute (config.LocalPath)
        # The base as the validated DPO config and each override as the value it validated to: the trials
        # (working directory: their own folder) receive absolute paths, for the base's keys and the overrides'.
        self.base = dump_config(dpo)
        self.overrides = {key: get_dotted(self.base, key) for key in self.overrides}
        for key in self.space:
            node: Any = dpo
            for part in key.split("."):
                fields = type(node).model_fields if hasattr(type(node), "model_fields") else {}
                if part not in fields:
                    raise ValueError(f"space.{key}: the DPO config has no key '{key}' (known top-level keys: "
                                     f"{', '.join(type(dpo).model_fields)})")
                node = getattr(node, part)
        return self

    def base_tree(self) -> dict[str, Any]:
        from solar_ray.config import resolve_extends

        return dict(self.base) if isinstance(self.base, dict) else resolve_extends(Path(self.base))

    def dpo_config(self, params: dict[str, Any], run_name: str | None = None, storage: str | None = None):
        """The DPO stage config of one trial: base + the trial's dotted overrides (+ its own Train run)."""
        from copy import deepcopy

        from solar_ray.config import set_dotted, validate
        from solar_ray.train.dpo import Config as DpoConfig

        tree = deepcopy(self.base_tree())
        tree.setdefault("stage", "dpo")
        tree.setdefault("output", str(Path(self.output or "dpo_sweep") / "best_model"))
        for key, value in {**self.overrides, **params}.items():
            set_dotted(tree, key, value)
        if run_name is not None:
            set_dotted(tree, "run.name", run_name)
            set_dotted(tree, "run.storage_path", storage)
        source = self.base if isinstance(self.base, str) else "base"
        return validate(DpoConfig, tree, source)


def get_dotted(tree: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        tree = tree[part]
    return tree


def trial(params: dict[str, Any], config_dict: dict[str, Any]) -> None:
    """Tune driver function: one Ray Train DPO run; per-step metrics reach Tune through TuneReportCallback."""
    from ray import tune

    from solar_ray.patches.ray_train_callbacks import FreeWorkersOnControllerDeath
    from solar_ray.train.launcher import fit

    config = Config(**config_dict)
    context = tune.get_context()
    storage = f"{config_dict['storage_path'].rstrip('/')}/{config.experiment_name()}-train"
    fit(config.dpo_config(params, run_name=f"{config.experiment_name()}-{context.get_trial_id()}", storage=storage),
        callbacks=[FreeWorkersOnControllerDeath()])  # an ASHA-stopped trial must give its workers' CPUs back


def concurrent_trials(config: Config, base) -> int:
    """Trials whose Train workers fit on the cluster at once (capped by search.max_concurrent_trials).

    Train V2 gives each run its own placement group for the workers, apart from the trial's (which holds only
    the driver), so Tune cannot see what a trial really needs. Starting more trials than the workers fit makes
    them wait on each other's placement groups (worker-group start timeouts, retries: the sweep stalls).
    E.g. 2 CPUs, 1 worker x 1 CPU + 0.01 driver -> 1 trial at a time; with cpus_per_worker 0.9 -> 2.
    """
    import math

    from solar_ray.errors import ConfigError
    from solar_ray.ray_session import cluster_cpus, cluster_gpus, remote_cluster
    from solar_ray.train.launcher import hardware

    use_gpu = hardware(base)["use_gpu"]  # starts or joins Ray
    workers = base.scaling.num_workers
    per_trial = {"CPU": (config.driver_cpus + workers * base.scaling.cpus_per_worker, cluster_cpus())}
    if use_gpu:
        per_trial["GPU"] = (workers, cluster_gpus())
    fits = min(math.floor(have / need + 1e-9) for need, have in per_trial.values())
    if fits == 0:
        if remote_cluster():  # a cluster may autoscale: let Tune wait for nodes
            return config.search.max_concurrent_trials or 1
        kind, (need, have) = next((k, v) for k, v in per_trial.items() if v[1] < v[0])
        raise ConfigError(f"base.scaling: one trial needs {need:g} {kind} (driver_cpus + num_workers x "
                          f"cpus_per_worker) but the local Ray has {have:g}; lower scaling.num_workers or "
                          "scaling.cpus_per_worker")
    return min(fits, config.search.max_concurrent_trials or fits)


def scheduler(config: Config):
    if config.scheduler is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    s = config.scheduler
    return ASHAScheduler(time_attr="training_iteration", grace_period=s.grace_period,
                         reduction_factor=s.reduction_factor, max_t=s.max_t)


def run(config: Config) -> Path:
    """Run (or resume) the sweep; write the report, the best DPO config and lineage into `config.output`."""
    import yaml

    from solar_ray.artifacts import write_json
    from solar_ray.train.common import check_inputs
    from solar_ray.tune.sweep import check_output, run_tuner, sweep_artifact

    check_output(config, "best config")
    base = config.dpo_config({})
    check_inputs(base, ("prompt", "chosen", "rejected"))  # missing model/dataset fails before any trial
    # Loading the config made every path absolute (base, overrides, storage): trials run in their own folders.
    run_tuner(config, trial, {"config_dict": dump_config(config)}, {"cpu": config.driver_cpus}, scheduler(config),
              max_concurrent=concurrent_trials(config, base))

    with sweep_artifact(config, "dpo_sweep", parents={"model": base.model, "dataset": base.dataset}) as (tmp, best):
        best_dpo = config.dpo_config(best["config"])
        write_json(tmp / "best_config.json", {key: best["config"][key] for key in config.space})
        (tmp / "best_config.yaml").write_text(
            f"# solar-ray run {Path(config.output) / 'best_config.yaml'}\n"
            + yaml.safe_dump(dump_config(best_dpo), sort_keys=False))
    return Path(config.output)


# The stage contract (solar_ray/contract.py), the same for every sweep.
from solar_ray.tune.space import NAMING_KEYS, RAY_STORAGE_KEY, ray_state  # noqa: E402,F401


def needs(config: Config):
    """With `search.max_concurrent_trials`, what that many trials reserve at once (each: its Train workers, its
    driver's CPUs beside them), so the sweep runs beside other stages; without it, the whole cluster."""
    from solar_ray.train.common import needs as train_needs
    from solar_ray.tune.space import needs as sweep_needs

    return sweep_needs(config, train_needs(config.dpo_config({})), config.driver_cpus)
