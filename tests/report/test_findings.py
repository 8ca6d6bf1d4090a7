import pytest

from solar_ray.config import validate
from solar_ray.errors import ConfigError
from solar_ray.report.findings import Finding, judge


def scores(**values):
    return {name: {"h6": value, "gsm8k": value} for name, value in values.items()}


def finding(kind, **kw):
    return Finding(claim="c", kind=kind, eval="e", **kw)


def test_improves_needs_a_gap_beyond_the_noise():
    f = finding("improves", baseline=["a", "b"], treatment="m")
    assert judge(f, scores(a=(40, 1), b=(45, 1), m=(50, 1)))["verdict"] == "reproduced"
    assert judge(f, scores(a=(40, 1), b=(45, 1), m=(46, 1)))["verdict"] == "cannot tell"  # best baseline is b
    assert judge(f, scores(a=(40, 1), b=(45, 1), m=(30, 1)))["verdict"] == "not reproduced"


def test_drops_then_recovers():
    f = finding("drops_then_recovers", models=["base", "dus", "cpt"])
    assert judge(f, scores(base=(50, 1), dus=(30, 1), cpt=(55, 1)))["verdict"] == "reproduced"
    assert judge(f, scores(base=(50, 1), dus=(60, 1), cpt=(65, 1)))["verdict"] == "not reproduced"
    assert judge(f, scores(base=(50, 5), dus=(45, 5), cpt=(50, 5)))["verdict"] == "cannot tell"


def test_similar_and_missing_scores():
    f = finding("similar", models=["m1", "m2", "m3"])
    assert judge(f, scores(m1=(50, 2), m2=(51, 2), m3=(49, 2)))["verdict"] == "reproduced"
    assert judge(f, scores(m1=(50, 1), m2=(60, 1), m3=(49, 1)))["verdict"] == "not reproduced"
    result = judge(f, scores(m1=(50, 1)))
    assert result["verdict"] == "cannot tell" and "m2" in result["evidence"]


def test_unknown_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown finding kind"):
        validate(Finding, {"claim": "c", "kind": "better", "eval": "e"}, "exp.yaml")
