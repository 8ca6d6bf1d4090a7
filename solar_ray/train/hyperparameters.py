"""`hyperparameters_from`: a training config takes the best config of a sweep as an ordinary input.

A sweep stage (solar_ray.tune.dpo_sweep) writes `best_config.json`, {dotted key: value} of the searched keys of its
best trial. A training config naming that file gets those values over its own, before validation, so the trained
model is the sweep's best config at full length. The file is read when the config is validated and it exists: a
pipeline validates every stage before its sweep has run (the stage then re-validates before training, and
`require_hyperparameters` fails the run if the file is still missing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# What a sweep may not set: where data comes from and goes, and the pointer itself.
NOT_HYPERPARAMETERS = ("stage", "model", "dataset", "output", "force", "hyperparameters_from", "run")


def apply_hyperparameters(data: Any, fields: dict[str, Any]) -> Any:
    """pydantic before-validator body: `data` with the file's dotted keys set; ValueError names file and key."""
    from solar_ray.config import set_dotted

    if not isinstance(data, dict) or not data.get("hyperparameters_from"):
        return data
    path = Path(data["hyperparameters_from"])
    if not path.is_file():
        return data
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"hyperparameters_from: {path}: invalid JSON ({exc.msg})") from None
    if not isinstance(values, dict):
        raise ValueError(f"hyperparameters_from: {path}: expected a JSON object of dotted keys, got {type(values).__name__}")
    data = dict(data)
    for key, value in values.items():
        top = key.split(".", 1)[0]
        if top in NOT_HYPERPARAMETERS or top not in fields:
            raise ValueError(f"hyperparameters_from: {path}: key '{key}' is not a hyper-parameter of this config "
                             f"(expected e.g. beta, optim.learning_rate)")
        set_dotted(data, key, value)
    return data


def require_hyperparameters(config) -> Any:
    """The config re-validated with its `hyperparameters_from` file applied; ArtifactError if the file is missing."""
    from solar_ray.errors import ArtifactError

    source = getattr(config, "hyperparameters_from", None)
    if source is None:
        return config
    if not Path(source).is_file():
        raise ArtifactError(f"hyperparameters_from: {source} not found (run the sweep stage that writes it first)")
    return type(config).model_validate(config.model_dump())
