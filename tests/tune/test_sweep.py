import json
import shutil
from pathlib import Path

import pytest

from solar_ray.config import validate
from solar_ray.errors import ConfigError, WorkFailed
from solar_ray.tune.report import write_sweep_report
from solar_ray.tune.space import SweepConfig
from solar_ray.tune.sweep import experiment_path, run_tuner


def parabola(config):
    from ray import tune

    for step in range(1, 4):
        tune.report({"score": -((config["x"] - 0.3) ** 2) * step, "step": step})


def make_config(tmp_path, metric="score"):
    return validate(SweepConfig, {
        "stage": "x", "output": str(tmp_path / "out"), "storage_path": str(tmp_path / "ray"),
        "space": {"x": {"grid": [0.0, 0.3, 0.9]}},
        "search": {"algorithm": "grid", "num_samples": 1, "metric": metric, "mode": "max"},
    }, "sweep.yaml")


def test_grid_sweep_reports_best_trial_table_and_plots(ray_session, tmp_path):
    config = make_config(tmp_path)
    results = run_tuner(config, parabola, {}, {"cpu": 1})
    assert len(results) == 3 and not results.errors
    out = tmp_path / "report"
    out.mkdir()
    summary = write_sweep_report(experiment_path(config), out, "score", "max")
    assert summary["best"]["config"] == {"x": 0.3} and summary["trials"] == 3
    assert json.loads((out / "best.json").read_text())["score"] == 0.0
    assert (out / "trials.csv").read_text().count("\n") == 4
    assert (out / "objective_vs_x.png").stat().st_size > 1000 and (out / "learning_curves.png").exists()
    assert "| x |" in (out / "report.md").read_text()

    # Rerunning the same sweep restores the finished experiment instead of starting new trials.
    again = run_tuner(config, parabola, {}, {"cpu": 1})
    assert sorted(r.path for r in again) == sorted(r.path for r in results)


def test_metric_no_trial_reports_is_an_error(ray_session, tmp_path):
    with pytest.raises(ConfigError, match="'accuracy' was never reported; trials report: .*score"):
        run_tuner(make_config(tmp_path, metric="accuracy"), parabola, {}, {"cpu": 1})


def fails_once(config):
    """Dies (like an OOM-killed process) the first time each trial runs; the marker file makes the retry pass."""
    import os
    from pathlib import Path

    from ray import tune

    marker = Path(config["marker_dir"]) / f"x={config['x']}"
    if not marker.exists():
        marker.write_text("failed once\n")
        os._exit(1)
    tune.report({"score": config["x"]})


def test_failed_trials_are_retried_up_to_max_failures(ray_session, tmp_path):
    tree = {
        "stage": "x", "output": str(tmp_path / "out"), "storage_path": str(tmp_path / "ray"),
        "space": {"x": {"grid": [1, 2]}, "marker_dir": {"grid": [str(tmp_path)]}},
        "search": {"algorithm": "grid", "num_samples": 1, "metric": "score", "mode": "max"},
    }
    results = run_tuner(validate(SweepConfig, {**tree, "max_failures": 1}, "sweep.yaml"), fails_once, {}, {"cpu": 1})
    assert not results.errors and sorted(r.metrics["score"] for r in results) == [1, 2]
    assert len(list(tmp_path.glob("x=*"))) == 2  # each trial failed once, then its retry finished

    # Without retries the same failure is the trial's end.
    for marker in tmp_path.glob("x=*"):
        marker.unlink()
    tree["storage_path"] = str(tmp_path / "ray_no_retry")
    with pytest.raises(WorkFailed, match=r"^all 2 trials failed; the first \(out_\w+_00000_0_.*\): "):
        run_tuner(validate(SweepConfig, {**tree, "max_failures": 0}, "sweep.yaml"), fails_once, {}, {"cpu": 1})


def raises(config):
    raise ValueError(f"model dir runs/x{config['x']}: not found")


def test_every_trial_failing_is_one_line_naming_the_first_error_and_its_trace_file(ray_session, tmp_path):
    with pytest.raises(WorkFailed) as failed:
        run_tuner(make_config(tmp_path).model_copy(update={"max_failures": 0}), raises, {}, {"cpu": 1})
    message = str(failed.value)
    assert "\n" not in message
    # The first trial (x=0.0) by its own words, not "no trial reported metric": the searched-for cause.
    assert message.startswith("all 3 trials failed; the first (out_")
    assert "ValueError: model dir runs/x0.0: not found; full trace: " in message
    trace = message.rsplit("full trace: ", 1)[1]
    assert trace.endswith("error.txt") and 'raise ValueError(f"model dir' in open(trace).read()  # the stack



def test_a_tie_goes_to_the_first_trial_tune_generated_whatever_order_it_lists_them(monkeypatch, tmp_path):
    from solar_ray.tune import report

    def trials(order):
        rows = [{"trial": f"ab_{i:05d}", "status": "TERMINATED", "config": {"beta": beta}, "history": {},
                 "last": {"score": 0.75, "training_iteration": 6}} for i, beta in enumerate((0.1, 0.3))]
        return [rows[i] for i in order]

    for order in ((0, 1), (1, 0)):
        monkeypatch.setattr(report, "_trials", lambda _dir, order=order: trials(order))
        out = tmp_path / str(order)
        out.mkdir()
        assert write_sweep_report("unused", out, "score", "max")["best"]["config"] == {"beta": 0.1}
        assert write_sweep_report("unused", out, "score", "min")["best"]["config"] == {"beta": 0.1}


def reports_its_sweep(config, sweep):
    from ray import tune

    tune.report({"score": config["x"], "sweep": sweep})


def test_two_sweeps_of_one_function_at_once_keep_their_own_parameters(ray_session, tmp_path):
    # A pipeline runs two sweeps in threads of one driver (DPO Cand. 1's and Cand. 2's). Tune's registry and
    # tune.with_parameters key by the function: the trials of one sweep must still get that sweep's parameters.
    import threading

    def sweep(name, results):
        config = validate(SweepConfig, {
            "stage": "x", "output": str(tmp_path / name), "storage_path": str(tmp_path / "ray"),
            "space": {"x": {"grid": [1, 2, 3]}},
            "search": {"algorithm": "grid", "num_samples": 1, "metric": "score", "mode": "max"},
        }, f"{name}.yaml")
        results[name] = run_tuner(config, reports_its_sweep, {"sweep": name}, {"cpu": 0.5})

    results: dict = {}
    threads = [threading.Thread(target=sweep, args=(name, results)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["first", "second"]
    for name, grid in results.items():
        assert not grid.errors
        assert sorted((r.metrics["sweep"], r.metrics["score"]) for r in grid) == [(name, 1), (name, 2), (name, 3)]


def test_a_sweep_stopped_before_any_trial_was_saved_starts_over(ray_session, tmp_path):
    # A driver killed right after Tune wrote tuner.pkl leaves no trial state; restoring it made one trial with
    # none of the searched parameters, and the stage failed on the best trial's missing key.
    config = make_config(tmp_path)
    run_tuner(config, parabola, {}, {"cpu": 1})
    experiment = Path(experiment_path(config))
    for state in [*experiment.glob("experiment_state-*.json"), *experiment.glob("basic-variant-state-*.json")]:
        state.unlink()
    for trial_dir in [d for d in experiment.iterdir() if d.is_dir()]:
        shutil.rmtree(trial_dir)
    results = run_tuner(config, parabola, {}, {"cpu": 1})
    assert sorted(r.config["x"] for r in results) == [0.0, 0.3, 0.9]


def test_tune_state_of_another_trainable_is_one_line(ray_session, tmp_path):
    from ray import tune

    config = make_config(tmp_path)
    path = experiment_path(config)
    tune.Tuner(parabola, param_space={"x": 0.3}, run_config=tune.RunConfig(
        name=Path(path).name, storage_path=str(Path(path).parent))).fit()
    with pytest.raises(ConfigError, match=r"saved Tune state runs another trainable than 'out' .*delete the folder"):
        run_tuner(config, parabola, {}, {"cpu": 1})
