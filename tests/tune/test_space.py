import pytest

from solar_ray.config import validate
from solar_ray.errors import ConfigError
from solar_ray.tune.space import Param, SweepConfig

SEARCH = {"metric": "h6", "mode": "max"}


def sweep(space, **search):
    return validate(SweepConfig, {"stage": "x", "space": space, "search": {**SEARCH, **search}}, "sweep.yaml")


def test_params_map_to_tune_domains_with_their_bounds_and_scale():
    import numpy as np

    uniform = Param(uniform=(0.2, 0.8)).to_tune()
    assert (uniform.lower, uniform.upper) == (0.2, 0.8)
    log = Param(loguniform=(1e-6, 1e-4)).to_tune()
    assert (log.lower, log.upper) == (1e-6, 1e-4)
    # log scale: a tenth of draws below 10^-5.8 (uniform in the exponent), not 1% (uniform in the value)
    draws = np.asarray(log.sample(size=4000, random_state=np.random.RandomState(0)))
    assert ((draws >= 1e-6) & (draws <= 1e-4)).all()
    assert 0.08 < float(np.mean(draws < 10**-5.8)) < 0.12
    assert Param(choice=["sigmoid", "ipo"]).to_tune().categories == ["sigmoid", "ipo"]
    integers = Param(randint=(1, 3)).to_tune()
    assert (integers.lower, integers.upper) == (1, 3)
    assert set(integers.sample(size=200, random_state=np.random.RandomState(0))) == {1, 2}  # [low, high)
    assert Param(grid=[0.4, 0.5]).to_tune() == {"grid_search": [0.4, 0.5]}


@pytest.mark.parametrize(
    "param, message",
    [
        ({}, "exactly one"),
        ({"uniform": [0.8, 0.2]}, "low < high"),
        ({"choice": []}, "empty"),
        ({"loguniform": [0, 1]}, "positive"),
        ({"grid": [1], "choice": [2]}, "exactly one"),
    ],
)
def test_bad_params_are_one_line_errors(param, message):
    with pytest.raises(ConfigError, match=message):
        sweep({"weight": param})


def test_empty_space_and_algorithm_mismatch():
    with pytest.raises(ConfigError, match="search space is empty"):
        sweep({})
    with pytest.raises(ConfigError, match="optuna cannot search grid params \\(weight\\)"):
        sweep({"weight": {"grid": [0.5]}}, algorithm="optuna")
    with pytest.raises(ConfigError, match="needs every param as grid.*beta"):
        sweep({"weight": {"grid": [0.5]}, "beta": {"uniform": [0.0, 1.0]}}, algorithm="grid")
    assert sweep({"weight": {"grid": [0.5]}}, algorithm="grid").experiment_name() == "sweep"
