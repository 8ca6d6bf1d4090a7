"""Merge sweep on the tiny world: trials merge in memory and evaluate; the best merge is exported by the merge
stage and equals the in-memory merge; the report is readable; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from solar_ray.config import validate
from solar_ray.errors import ConfigError, SolarRayError
from solar_ray.tune import merge_sweep


def sweep_config(tmp_path, candidates, tiny_world, **extra):
    tree = {
        "stage": "merge_sweep", "output": str(tmp_path / "sweep"), "storage_path": str(tmp_path / "ray"),
        "candidates": candidates, "method": "linear", "tasks": ["winogrande"], "limit": 4,
        "data_dir": str(Path(tiny_world) / "data" / "benchmarks"),
        "space": {"weight": {"grid": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]}},
        "search": {"algorithm": "grid", "num_samples": 1, "metric": "mean", "mode": "max"},
    }
    tree.update(extra)
    return validate(merge_sweep.Config, tree, "merge_sweep.yaml")


def test_grid_merge_sweep_exports_best_and_reports(ray_session, tiny_world, candidates, tmp_path):
    from safetensors.torch import load_file

    config = sweep_config(tmp_path, candidates, tiny_world)
    out = merge_sweep.run(config)

    best = json.loads((out / "best.json").read_text())
    table = (out / "trials.csv").read_text().splitlines()
    assert len(table) == 7 and table[0].startswith("trial,status,weight,mean")
    scores = [float(row.split(",")[3]) for row in table[1:]]
    assert best["mean"] == max(scores) and best["config"]["weight"] in [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert "Best configuration" in (out / "report.md").read_text() and (out / "report.html").exists()
    assert (out / "objective_vs_weight.png").exists()
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["stage"] == "merge_sweep" and lineage["best"]["config"] == best["config"]

    # The exported best model equals the in-memory merge the trial scored.
    import torch

    from solar_ray.merge.core import merge_state_dicts

    state_dicts = merge_sweep.load_candidates(config)
    a = best["config"]["weight"]
    expected = merge_state_dicts("linear", state_dicts, weights=[a, 1 - a])
    exported = {}
    for shard in (out / "best_model").glob("*.safetensors"):
        exported.update(load_file(shard))
    assert set(expected) <= set(exported)
    assert all(torch.equal(expected[k], exported[k]) for k in expected)
    # The in-memory trial path scores the same merge the same way.
    again = merge_sweep.merge_and_evaluate(config, best["config"], state_dicts)
    assert again["mean"] == pytest.approx(best["mean"])


def test_slerp_space_maps_to_a_t_schedule(tiny_world, candidates, tmp_path):
    config = sweep_config(tmp_path, candidates, tiny_world, method="slerp",
                          space={"t_attn": {"uniform": [0, 1]}, "t_mlp": {"uniform": [0, 1]}},
                          search={"algorithm": "optuna", "metric": "mean"})
    assert merge_sweep.merge_arguments(config, {"t_attn": 0.2, "t_mlp": 0.7}) == {
        "weights": None, "densities": None, "t": {"self_attn": 0.2, "mlp": 0.7, "default": 0.5}}
    three = {**candidates, "third": candidates["base"]}
    config = sweep_config(tmp_path, three, tiny_world, space={"weights.noisy": {"uniform": [0, 2]}},
                          search={"metric": "mean"})
    assert merge_sweep.merge_arguments(config, {"weights.noisy": 0.5})["weights"] == [1.0, 0.5, 1.0]


def test_ties_density_space_is_validated_and_maps_to_the_merge(tiny_world, candidates, tmp_path):
    from ray.tune.search.sample import Float

    from solar_ray.tune.space import param_space

    three = {**candidates, "third": candidates["noisy"]}
    config = sweep_config(tmp_path, three, tiny_world, method="ties", parameters={"lambda": 0.9},
                          space={"density": {"uniform": [0.2, 0.8]}, "weights.third": {"choice": [0.5, 1.0]},
                                 "densities.noisy": {"grid": [0.3, 1.0]}},
                          search={"algorithm": "random", "metric": "mean"})
    domain = param_space(config.space)["density"]
    assert isinstance(domain, Float) and (domain.lower, domain.upper) == (0.2, 0.8)
    assert merge_sweep.merge_arguments(config, {"density": 0.25, "weights.third": 0.5, "densities.noisy": 0.3}) == {
        "weights": [None, 1.0, 0.5], "densities": [None, 0.3, None], "lambda": 0.9, "density": 0.25}
    bad_space = [
        ({"density": {"uniform": [0.2, 1.5]}},
         "space.density: value 1.5 does not fit ties: parameters.density: Input should be less than or equal to 1"),
        ({"densities.third": {"grid": [0.5, 0.0]}}, r"space.densities.third: value 0.0 .*outside \(0, 1\]"),
        ({"weights.base": {"uniform": [0, 1]}}, "space.weights.base: not a ties merge parameter"),
        ({"t": {"uniform": [0, 1]}}, "space.t: not a ties merge parameter; expected one of: weights.noisy"),
    ]
    for space, message in bad_space:
        with pytest.raises(SolarRayError, match=message) as info:
            sweep_config(tmp_path, three, tiny_world, method="ties", space=space, search={"metric": "mean"})
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("extra, message", [
    ({"space": {}}, "search space is empty"),
    ({"space": {"t": {"uniform": [0, 1]}}, "search": {"metric": "mean"}}, r"space.t: not a linear merge parameter"),
    ({"candidates": {"only": "x"}}, "at least 2 models"),
])
def test_bad_config_is_one_line(tiny_world, candidates, tmp_path, extra, message):
    given = extra.pop("candidates", candidates)
    with pytest.raises(SolarRayError, match=message) as info:
        sweep_config(tmp_path, given, tiny_world, **extra)
    assert "\n" not in str(info.value)


def test_missing_candidate_and_unreported_metric(ray_session, tiny_world, candidates, tmp_path):
    missing = {**candidates, "gone": str(tmp_path / "nowhere")}
    config = sweep_config(tmp_path, missing, tiny_world, space={"weights.gone": {"grid": [0.5]}})
    with pytest.raises(SolarRayError, match="candidates.gone: .*nowhere") as info:
        merge_sweep.run(config)
    assert "\n" not in str(info.value)
    config = sweep_config(tmp_path, candidates, tiny_world, space={"weight": {"grid": [0.5]}},
                          search={"algorithm": "grid", "metric": "h6"})
    with pytest.raises(SolarRayError, match="'h6' was never reported; trials report: .*Winogrande, mean"):
        merge_sweep.run(config)
    assert not Path(config.output).exists()


def test_trials_cap_generation_to_fit_the_candidates_context(tiny_world, candidates, tmp_path):
    """The tiny models' context is 256 tokens, lm-eval's default generation budget too: GSM8K needs the cap, and a
    trial without it stops in one line naming max_gen_toks (lm-eval's own assertion came one request later)."""
    config = sweep_config(tmp_path, candidates, tiny_world, tasks=["gsm8k"], limit=1, max_gen_toks=8)
    with pytest.raises(ConfigError, match=r"GSM8K generates up to 256 tokens \(lm-eval's default\).*set max_gen_toks"):
        merge_sweep.merge_and_evaluate(config.model_copy(update={"max_gen_toks": None}), {"weight": 0.5},
                                       merge_sweep.load_candidates(config))
    scores = merge_sweep.merge_and_evaluate(config, {"weight": 0.5}, merge_sweep.load_candidates(config))
    assert set(scores) == {"GSM8K", "mean"}
