"""DPO sweep on the tiny world's base model: 4 trials, each a Ray Train DPO run driven from a Tune function,
reporting per step so ASHA can stop the weak ones; the report and the best DPO config are readable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from solar_ray.config import validate
from solar_ray.errors import SolarRayError
from solar_ray.tune import dpo_sweep
from tests.train import fixtures


def sweep_tree(tmp_path, tiny_world, **extra):
    dataset = fixtures.write_dataset(tmp_path / "prefs", fixtures.preference_rows(32))
    tree = {
        "stage": "dpo_sweep", "output": str(tmp_path / "sweep"), "storage_path": str(tmp_path / "ray"),
        "base": {
            "model": str(Path(tiny_world) / "base"), "dataset": str(dataset),
            "scaling": {"num_workers": 1}, "deepspeed": {"zero_stage": 2},
            "optim": {"max_length": 48, "per_device_batch_size": 4, "max_steps": 4, "learning_rate": 1e-3},
            "run": {"log_every": 1, "checkpoint_every": 100},
        },
        "space": {"beta": {"grid": [0.1, 0.5]}, "optim.learning_rate": {"grid": [1e-5, 3e-3]}},
        "search": {"algorithm": "grid", "num_samples": 1, "metric": "rewards/margins", "mode": "max",
                   "max_concurrent_trials": 2},  # 2 cores: two 1-worker trials at a time
        "scheduler": {"grace_period": 2, "reduction_factor": 2, "max_t": 4},
    }
    tree.update(extra)
    return tree


@pytest.mark.slow
def test_dpo_sweep_with_asha_reports_and_best_config(ray_session, tiny_world, tmp_path):
    config = validate(dpo_sweep.Config, sweep_tree(tmp_path, tiny_world), "dpo_sweep.yaml")
    out = dpo_sweep.run(config)
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 5 and "beta" in rows[0] and "optim.learning_rate" in rows[0]
    iterations = [int(row.rsplit(",", 1)[1]) for row in rows[1:]]
    assert max(iterations) == 4 and min(iterations) >= 2  # per-step reports; ASHA may stop some at rung 2
    best = json.loads((out / "best.json").read_text())
    best_config = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best_config["stage"] == "dpo" and best_config["beta"] == best["config"]["beta"]
    assert best_config["optim"]["learning_rate"] == best["config"]["optim.learning_rate"]
    assert (out / "learning_curves.png").exists() and "rewards/margins" in (out / "report.md").read_text()
    # Each trial trained under its own Train run, next to the Tune experiment.
    assert len(list((tmp_path / "ray" / "sweep-train").iterdir())) == 4


def test_unknown_dpo_key_is_one_line(tiny_world, tmp_path):
    tree = sweep_tree(tmp_path, tiny_world, space={"optim.momentum": {"choice": [0.9]}},
                      search={"metric": "loss", "mode": "min"})
    with pytest.raises(SolarRayError, match="space.optim.momentum: the DPO config has no key") as info:
        validate(dpo_sweep.Config, tree, "dpo_sweep.yaml")
    assert "\n" not in str(info.value)
