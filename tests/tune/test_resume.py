"""A sweep whose driver is killed (SIGKILL, mid-sweep) resumes to completion when the same command is rerun:
finished trials are not rerun, the output equals what each trial's merge scores, and no partial output is left
by the killed run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from solar_ray.tune import merge_sweep

WEIGHTS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]


def saved_trial_status(experiment: Path) -> dict[str, str]:
    """Trial id -> status in the newest experiment state Tune saved (what a restore starts from)."""
    states = sorted(experiment.glob("experiment_state-*.json"))
    if not states:
        return {}
    try:
        trial_data = json.loads(states[-1].read_text())["trial_data"]
    except (json.JSONDecodeError, KeyError):  # caught mid-write
        return {}
    return {state["trial_id"]: state["status"] for state in (json.loads(t) for t, _ in trial_data)}


def result_lines(experiment: Path, trial_id: str) -> list[str]:
    (trial_dir,) = experiment.glob(f"{experiment.name}_{trial_id}_*")  # trials are named after their sweep
    return (trial_dir / "result.json").read_text().splitlines()


def test_killed_sweep_driver_resumes_without_rerunning_finished_trials(tiny_world, candidates, tmp_path):
    config_path = tmp_path / "merge_sweep.yaml"
    tree = {
        "stage": "merge_sweep", "output": str(tmp_path / "sweep"), "storage_path": str(tmp_path / "ray"),
        "candidates": candidates, "method": "linear", "tasks": ["winogrande"], "limit": 60,
        "data_dir": str(Path(tiny_world) / "data" / "benchmarks"),
        "space": {"weight": {"grid": WEIGHTS}},
        # One trial at a time, so the kill lands between finished and unfinished trials.
        "search": {"algorithm": "grid", "num_samples": 1, "metric": "mean", "mode": "max",
                   "max_concurrent_trials": 1},
    }
    config_path.write_text(yaml.safe_dump(tree))
    command = [sys.executable, "-m", "solar_ray.cli", "run", str(config_path)]
    # Tune saves its experiment state at most every 10 s by default; save every second so that what finished
    # before the kill is on disk (a production sweep loses at most those 10 s of trials).
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    experiment = tmp_path / "ray" / "sweep"

    with (tmp_path / "first.log").open("w") as log:
        driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 240
        finished: list[str] = []
        while time.monotonic() < deadline and driver.poll() is None:
            finished = [t for t, status in saved_trial_status(experiment).items() if status == "TERMINATED"]
            if len(finished) >= 2:
                break
            time.sleep(0.2)
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and what it started in its session
        driver.wait()
    assert driver.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-2000:]
    assert 2 <= len(finished) < len(WEIGHTS), f"kill landed outside the sweep: {finished}"
    assert not Path(tree["output"]).exists()  # no partial output
    before = {trial: result_lines(experiment, trial) for trial in finished}

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]

    with (Path(tree["output"]) / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(float(row["weight"]) for row in rows) == WEIGHTS and {row["status"] for row in rows} == {"TERMINATED"}
    # Finished trials were restored, not rerun: same trial, same single result line.
    assert set(finished) <= {row["trial"] for row in rows}
    assert all(result_lines(experiment, trial) == lines and len(lines) == 1 for trial, lines in before.items())
    # Same output as uninterrupted trials: each trial's score is its merge's score, and the best is the max.
    config = merge_sweep.Config(**tree)
    state_dicts = merge_sweep.load_candidates(config)
    for row in rows:
        expected = merge_sweep.merge_and_evaluate(config, {"weight": float(row["weight"])}, state_dicts)["mean"]
        assert float(row["mean"]) == float(f"{expected:.4g}")
    best = json.loads((Path(tree["output"]) / "best.json").read_text())
    assert f"{best['mean']:.4g}" == max(rows, key=lambda row: float(row["mean"]))["mean"]
    assert (Path(tree["output"]) / "best_model" / "config.json").is_file()
