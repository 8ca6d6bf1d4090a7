"""Run a Tune experiment for a sweep config, resuming it when its experiment directory already exists, and write
the sweep's artifact.

A sweep's Tune state lives at `<storage_path>/<name>/` (Ray's own layout, readable by `tune.ExperimentAnalysis`
and `Tuner.restore`); the stage artifact at `output` holds the report, the trial table, what the stage writes
for the best trial (a config, a model) and the lineage. Rerunning the same config after the driver was killed
picks up the finished trials and resumes the rest.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from solar_ray.errors import ConfigError, WorkFailed, root_cause
from solar_ray.tune.space import SweepConfig, param_space, search_algorithm

# Keys Tune adds to every result; left out when listing what a trial reported.
TUNE_BOOKKEEPING = {
    "timestamp", "checkpoint_dir_name", "done", "training_iteration", "trial_id", "date", "time_this_iter_s",
    "time_total_s", "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore",
}


# Tune's trainable registry is one per driver, and its writes are not thread-safe (see `register_trainable`).
_REGISTRY_LOCK = threading.Lock()


def register_trainable(config: SweepConfig, function: Callable[..., None], parameters: dict[str, Any],
                       resources: dict[str, float]) -> str:
    """`function(params, **parameters)` as a Tune trainable registered under this sweep's name; returns the name.

    Tune keeps a driver's trainables in one registry keyed by name, and `tune.with_parameters` keys the objects it
    hands the trials by the function's repr (Ray 2.60). Two sweeps of one driver that run the same function (a
    pipeline's parallel stages: DPO Cand. 1's and Cand. 2's sweeps) then overwrite each other's, and trials of one
    ran with the other's config: in the tiny main job one of Cand. 1's two trials trained Cand. 2's model. Two
    registrations at once can also fail ("dictionary changed size during iteration"). So every sweep registers a
    function of its own, named after its experiment, under a lock, and Tune gets the name.
    """
    from ray import tune

    def sweep_function(params: dict[str, Any], **kwargs: Any) -> None:
        function(params, **kwargs)

    name = config.experiment_name()
    sweep_function.__name__ = sweep_function.__qualname__ = name
    with _REGISTRY_LOCK:
        tune.register_trainable(name, tune.with_resources(tune.with_parameters(sweep_function, **parameters),
                                                           resources))
    return name


def experiment_path(config: SweepConfig) -> str:
    storage = config.storage_path
    if "://" not in storage:
        storage = str(Path(storage).resolve())
    return f"{storage.rstrip('/')}/{config.experiment_name()}"


def check_output(config: SweepConfig, holds: str) -> None:
    """Before any trial: `output` is given, and free unless `force` (a sweep's trials take long to redo)."""
    if config.output is None:
        raise ConfigError(f"output: missing; give the directory for the sweep report and {holds}")
    from solar_ray.artifacts import refuse_existing_output

    refuse_existing_output(config.output, config.force)


@contextlib.contextmanager
def sweep_artifact(config: SweepConfig, stage: str, parents: dict[str, str]) -> Iterator[tuple[Path, dict]]:
    """Write the sweep's artifact at `output` atomically: the sweep report first, then yields (the folder, the
    best trial's row) for the stage's own files, then the lineage (its metric, the trial count, the best trial)."""
    from solar_ray.artifacts import atomic_dir, write_lineage
    from solar_ray.config import dump_config
    from solar_ray.tune.report import write_sweep_report

    experiment = experiment_path(config)
    with atomic_dir(config.output, force=config.force) as tmp:
        summary = write_sweep_report(experiment, tmp, config.search.metric, config.search.mode)
        best = summary["best"]
        yield tmp, best
        write_lineage(tmp, stage, dump_config(config), parents=parents,
                      metrics={config.search.metric: best[config.search.metric], "trials": summary["trials"]},
                      best=best, experiment=experiment)


def run_tuner(
    config: SweepConfig,
    function: Callable[..., None],
    parameters: dict[str, Any],
    resources: dict[str, float],
    scheduler: Any = None,
    max_concurrent: int | None = None,
    reuse_actors: bool = False,
):
    """Fit (or restore and finish) the sweep of `function(params, **parameters)`; returns Tune's ResultGrid.

    `parameters` reach each trial through Ray's object store (`tune.with_parameters`); `max_concurrent` (default:
    search.max_concurrent_trials) caps the trials running at once; `reuse_actors` runs later trials in the
    finished trials' processes (imports and lazy library setup paid once per process).
    """
    from ray import tune

    from solar_ray.ray_session import init_ray

    init_ray()
    trainable = register_trainable(config, function, parameters, resources)
    path = experiment_path(config)
    restore = tune.Tuner.can_restore(path)
    if restore and "://" not in path and not any(Path(path).glob("experiment_state-*.json")):
        # A driver stopped before Tune saved any trial leaves only tuner.pkl, and restoring that makes one trial
        # with none of the searched parameters (Ray 2.60): start over instead.
        shutil.rmtree(path)
        restore = False
    if restore:
        # The experiment dir is our own (written by this stage), so restoring its pickled state is trusted.
        try:
            tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
        except ValueError as exc:
            if "Invalid `trainable`" not in str(exc):
                raise
            raise ConfigError(f"{path}: this sweep's saved Tune state runs another trainable than {trainable!r} "
                              "(written by another version of solar-ray); delete the folder to start the sweep "
                              "over") from None
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(config.space),
            tune_config=tune.TuneConfig(
                metric=config.search.metric,
                mode=config.search.mode,
                num_samples=config.search.num_samples,
                search_alg=search_algorithm(config.search, max_concurrent or config.search.max_concurrent_trials),
                scheduler=scheduler,
                reuse_actors=reuse_actors,
            ),
            run_config=tune.RunConfig(
                name=config.experiment_name(),
                storage_path=path.rsplit("/", 1)[0],
                failure_config=tune.FailureConfig(max_failures=config.max_failures),
                verbose=1,
            ),
        )
    try:
        results = tuner.fit()
    except tune.TuneError as exc:
        # Tune's strict metric check stops the sweep when trials never report the searched metric.
        match = re.search(r"Result: (\{.*\})", str(exc))
        if "did not include the specified metric" not in str(exc) or not match:
            raise
        keys = set(re.findall(r"'([^']+)': ", match.group(1))) - TUNE_BOOKKEEPING
        reported = sorted(key for key in keys if not key.startswith("config/"))
        raise ConfigError(
            f"search.metric '{config.search.metric}' was never reported; trials report: {', '.join(reported)}"
        ) from None
    raise_if_every_trial_failed(results, path)
    return results


def raise_if_every_trial_failed(results, experiment: str) -> None:
    """One line naming the first failed trial's own error and its error file, instead of a report with no scores.

    The first by trial id (Tune numbers trials in creation order), so a rerun names the same one.
    """
    failed = [result for result in results if result.error]
    if not failed or len(failed) < len(results):
        return
    first = min(failed, key=lambda result: Path(result.path).name if result.path else "")
    trace = Path(first.path) / "error.txt" if first.path else None
    where = f"; full trace: {trace}" if trace and trace.is_file() else f"; trials under {experiment}"
    raise WorkFailed(f"all {len(results)} trials failed; the first ({Path(first.path or '?').name}): "
                     f"{root_cause(first.error)}{where}")


def trial_table(results) -> list[dict[str, Any]]:
    """One row per trial: id, status, searched params, last metric values."""
    rows = []
    for result in results:
        metrics = result.metrics or {}
        rows.append({
            "trial": metrics.get("trial_id", Path(result.path).name if result.path else "?"),
            "status": "ERROR" if result.error else "TERMINATED",
            "iterations": metrics.get("training_iteration", 0),
            "config": dict(result.config or {}),
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
            "path": result.path,
        })
    return rows
