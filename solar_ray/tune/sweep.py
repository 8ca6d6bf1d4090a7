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
    trainable: Callable[[dict[str, Any]], None],
    resources: dict[str, float],
    scheduler: Any = None,
    max_concurrent: int | None = None,
    reuse_actors: bool = False,
):
    """Fit (or restore and finish) the sweep; returns Tune's ResultGrid.

    `max_concurrent` (default: search.max_concurrent_trials) caps the trials running at once; `reuse_actors`
    runs later trials in the finished trials' processes (imports and lazy library setup paid once per process).
    """
    from ray import tune

    from solar_ray.ray_session import init_ray

    init_ray()
    trainable = tune.with_resources(trainable, resources)
    path = experiment_path(config)
    if tune.Tuner.can_restore(path):
        # The experiment dir is our own (written by this stage), so restoring its pickled state is trusted.
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=True)
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
