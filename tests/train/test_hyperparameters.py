"""A DPO config's `hyperparameters_from`: a sweep's best_config.json overrides its keys, validated."""

import json

import pytest

from solar_ray.config import build_config
from solar_ray.errors import ArtifactError, ConfigError
from solar_ray.train.dpo import Config, run
from solar_ray.train.hyperparameters import require_hyperparameters


def dpo_tree(tmp_path, best):
    path = tmp_path / "best_config.json"
    if best is not None:
        path.write_text(json.dumps(best))
    return {"stage": "dpo", "model": str(tmp_path / "sft"), "dataset": str(tmp_path / "prefs"), "beta": 0.1,
            "optim": {"learning_rate": 5e-7, "epochs": 2}, "hyperparameters_from": str(path)}


def test_the_sweeps_best_values_override_the_configs_own(tmp_path):
    config = build_config(dpo_tree(tmp_path, {"beta": 0.3, "optim.learning_rate": 2e-6}), "dpo_cand.yaml")
    assert (config.beta, config.optim.learning_rate, config.optim.epochs) == (0.3, 2e-6, 2)
    again = Config.model_validate(config.model_dump())  # applying twice changes nothing
    assert again == config


@pytest.mark.parametrize("best, message", [
    ({"model": "/elsewhere"}, "key 'model' is not a hyper-parameter"),
    ({"optim.learnig_rate": 1e-6}, "learnig_rate"),
    ({"betta": 0.2}, "key 'betta' is not a hyper-parameter"),
    ({"beta": -1}, "beta"),
])
def test_a_bad_key_or_value_is_one_line_naming_the_file(tmp_path, best, message):
    with pytest.raises(ConfigError, match=message) as err:
        build_config(dpo_tree(tmp_path, best), "dpo_cand.yaml")
    assert "\n" not in str(err.value)


def test_a_missing_file_validates_but_cannot_train(tmp_path):
    """A pipeline validates every stage before its sweep ran; the stage itself then needs the file."""
    config = build_config(dpo_tree(tmp_path, None), "dpo_cand.yaml")
    assert config.beta == 0.1
    with pytest.raises(ArtifactError, match="best_config.json not found .*sweep stage"):
        require_hyperparameters(config)
    with pytest.raises(ArtifactError, match="best_config.json not found"):
        run(config)
