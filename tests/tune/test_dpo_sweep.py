"""DPO sweep on a tiny model: 4 trials, each a Ray Train DPO run driven from a Tune function, reporting per step
so ASHA stops the weak ones; stopped trials give their workers back; the report and best config are readable."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from solar_ray.config import validate
from solar_ray.errors import SolarRayError
from solar_ray.tune import dpo_sweep
from tests.train import fixtures


@pytest.fixture(scope="module")
def dpo_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo_sweep_inputs")
    model = fixtures.build_tiny_model(root / "model")  # 2 layers x 64 hidden: a DPO step takes well under 1 s
    dataset = fixtures.write_dataset(root / "prefs", fixtures.preference_rows(32))
    return {"model": str(model), "dataset": str(dataset)}


def sweep_tree(tmp_path, dpo_inputs, **extra):
    tree = {
        "stage": "dpo_sweep", "output": str(tmp_path / "sweep"), "storage_path": str(tmp_path / "ray"),
        "base": {
            **dpo_inputs,
            # 0.9 CPU per worker: two 1-worker trials (+ 0.01 CPU drivers) fit on the 2-CPU test Ray at once.
            "scaling": {"num_workers": 1, "cpus_per_worker": 0.9}, "deepspeed": {"zero_stage": 2},
            # No warm-up: step 1 already moves the policy, so the rung-2 margins separate the learning rates.
            "optim": {"max_length": 48, "per_device_batch_size": 4, "max_steps": 4, "learning_rate": 1e-3,
                      "warmup_ratio": 0.0, "lr_scheduler": "constant_with_warmup"},
            "run": {"log_every": 1, "checkpoint_every": 100},
        },
        # Grid order: the first key varies fastest, so trials 0-1 (run first, two at a time) take the strong
        # learning rate and trials 2-3 one that barely moves the policy: by the time a weak trial reaches rung 2
        # the strong ones are recorded there, and ASHA stops it.
        "space": {"beta": {"grid": [0.1, 0.5]}, "optim.learning_rate": {"grid": [3e-3, 1e-7]}},
        "search": {"algorithm": "grid", "num_samples": 1, "metric": "rewards/margins", "mode": "max"},
        "scheduler": {"grace_period": 2, "reduction_factor": 2, "max_t": 4},
    }
    tree.update(extra)
    return tree


def live_cpu_placement_groups(wait_s: float = 15.0) -> list:
    from ray.util import placement_group_table

    deadline = time.monotonic() + wait_s
    while True:
        live = [pg["bundles"] for pg in placement_group_table().values() if pg["state"] != "REMOVED"]
        if not live or time.monotonic() > deadline:
            return live
        time.sleep(0.5)


def test_dpo_sweep_with_asha_stops_weak_trials_and_reports(ray_session, dpo_inputs, tmp_path):
    config = validate(dpo_sweep.Config, sweep_tree(tmp_path, dpo_inputs), "dpo_sweep.yaml")
    assert dpo_sweep.concurrent_trials(config, config.dpo_config({})) == 2
    out = dpo_sweep.run(config)

    header, *rows = [row.split(",") for row in (out / "trials.csv").read_text().splitlines()]
    assert header == ["trial", "status", "beta", "optim.learning_rate", "rewards/margins", "iterations"]
    assert len(rows) == 4 and all(row[1] == "TERMINATED" for row in rows)
    iterations = {float(row[3]): [] for row in rows}
    for row in rows:
        iterations[float(row[3])].append(int(row[5]))
    # Every trial reported per step; ASHA stopped both weak (lr 1e-7) trials at rung 2, a strong one ran to max_t.
    assert iterations[1e-7] == [2, 2] and max(iterations[3e-3]) == 4
    best = json.loads((out / "best.json").read_text())
    assert best["config"]["optim.learning_rate"] == 3e-3
    best_config = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best_config["stage"] == "dpo" and best_config["beta"] == best["config"]["beta"]
    assert best_config["optim"]["learning_rate"] == best["config"]["optim.learning_rate"]
    # best_config.json: the searched keys only, what a DPO config's hyperparameters_from takes in a pipeline.
    searched = json.loads((out / "best_config.json").read_text())
    assert searched == {"beta": best["config"]["beta"], "optim.learning_rate": 3e-3}
    from solar_ray.train.dpo import Config as DpoConfig

    trained = DpoConfig(**{**dpo_inputs, "hyperparameters_from": str(out / "best_config.json")})
    assert (trained.beta, trained.optim.learning_rate) == (searched["beta"], 3e-3)
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["metrics"]["trials"] == 4 and lineage["best"] == best
    # Each trial trained under its own Train run, next to the Tune experiment.
    assert len(list((tmp_path / "ray" / "sweep-train").iterdir())) == 4
    # Stopped trials gave their workers' placement groups back (else the next sweep would wait forever).
    assert live_cpu_placement_groups() == []

    # `solar-ray report` rewrites the report from the Tune experiment; Ray's own tools read the same directory.
    (out / "report.md").unlink()
    proc = subprocess.run([sys.executable, "-m", "solar_ray.cli", "report", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = (out / "report.md").read_text()
    assert "## Best configuration" in report and "rewards/margins" in report and report.count("| TERMINATED |") == 4
    assert "<table>" in (out / "report.html").read_text()
    for plot in ("learning_curves.png", "objective_vs_beta.png", "objective_vs_optim_learning_rate.png"):
        assert (out / plot).stat().st_size > 1000
    from ray import tune

    analysis = tune.ExperimentAnalysis(lineage["experiment"])
    assert analysis.get_best_config("rewards/margins", "max", scope="last") == best["config"]


def test_a_sweep_can_search_on_a_held_out_metric(ray_session, dpo_inputs, tmp_path):
    # A dataset with a test split: every report carries the newest eval_* values, from a first evaluation before
    # any step on, so Tune's metric is in each of them (it stops a sweep at the first report without it).
    data = fixtures.preference_rows(40)
    dataset = fixtures.write_dataset(tmp_path / "prefs", data[:32], data[32:])
    tree = sweep_tree(tmp_path, {**dpo_inputs, "dataset": str(dataset)},
                      space={"optim.learning_rate": {"grid": [3e-3, 1e-7]}}, scheduler=None,
                      search={"algorithm": "grid", "num_samples": 1, "metric": "eval_rewards/accuracies",
                              "mode": "max"})
    tree["base"]["optim"]["max_steps"] = 2
    tree["base"]["run"]["eval_every"] = 2
    out = dpo_sweep.run(validate(dpo_sweep.Config, tree, "dpo_sweep.yaml"))
    header, *rows = [row.split(",") for row in (out / "trials.csv").read_text().splitlines()]
    assert "eval_rewards/accuracies" in header and all(row[1] == "TERMINATED" for row in rows) and len(rows) == 2
    from ray import tune

    for results in tune.ExperimentAnalysis(json.loads((out / "lineage.json").read_text())["experiment"]) \
            .trial_dataframes.values():
        assert results["eval_rewards/accuracies"].notna().all()
        first = results.iloc[0]
        assert first["step"] == 0 and ("loss" not in results or pd.isna(first["loss"]))  # scored before step 1
        assert results["step"].max() == 2 and results["loss"].notna().any()


def test_unknown_dpo_key_is_one_line(dpo_inputs, tmp_path):
    tree = sweep_tree(tmp_path, dpo_inputs, space={"optim.momentum": {"choice": [0.9]}},
                      search={"metric": "loss", "mode": "min"})
    with pytest.raises(SolarRayError, match="space.optim.momentum: the DPO config has no key") as info:
        validate(dpo_sweep.Config, tree, "dpo_sweep.yaml")
    assert "\n" not in str(info.value)


def test_trial_too_big_for_the_cluster_is_one_line(ray_session, dpo_inputs, tmp_path):
    tree = sweep_tree(tmp_path, dpo_inputs)
    tree["base"]["scaling"] = {"num_workers": 2, "cpus_per_worker": 1}
    config = validate(dpo_sweep.Config, tree, "dpo_sweep.yaml")
    with pytest.raises(SolarRayError, match=r"one trial needs 2.01 CPU .* local Ray has 2") as info:
        dpo_sweep.run(config)
    assert "\n" not in str(info.value) and not Path(config.output).exists()


def test_missing_base_model_fails_before_any_trial(dpo_inputs, tmp_path):
    tree = sweep_tree(tmp_path, {**dpo_inputs, "model": str(tmp_path / "no_model")})
    config = validate(dpo_sweep.Config, tree, "dpo_sweep.yaml")
    with pytest.raises(SolarRayError, match="no_model"):
        dpo_sweep.run(config)
    assert not (tmp_path / "ray").exists()
