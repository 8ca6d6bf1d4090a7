"""One experiment seed reaches every stage's seeds, nested ones included."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from solar_ray.pipeline import Pipeline

TINY = Path(__file__).parents[2] / "experiments" / "tiny" / "pipeline.yaml"


def seeds(tree: dict, prefix: str = "") -> dict[str, int]:
    found = {}
    for key, value in tree.items():
        if key == "seed" and isinstance(value, int):
            found[prefix + key] = value
        elif isinstance(value, dict):
            found.update(seeds(value, f"{prefix}{key}."))
    return found


def test_the_experiment_seed_offsets_every_stage_seed(tmp_path):
    plain = Pipeline(TINY, output=str(tmp_path / "a"))
    other = Pipeline(TINY, output=str(tmp_path / "b"), seed=3)
    reached = set()
    for name in plain.order:
        before, after = seeds(plain.configs[name].model_dump()), seeds(other.configs[name].model_dump())
        assert after == {key: value + 3 for key, value in before.items()}, name
        reached |= {f"{plain.configs[name].stage}:{key}" for key in before}
    # the base's init (the world's content keeps its own language_seed), data sampling, training, synthetic data and the contamination test
    assert {"tiny:seed", "data:seed", "pretrain:optim.seed", "sft:optim.seed", "dpo:optim.seed",
            "synth_math:sampling.seed", "contamination:seed"} <= reached
    assert Pipeline(TINY).root.name == "tiny" and Pipeline(TINY, seed=3).root.name == "tiny_seed3"


def test_cli_takes_the_seed(tmp_path, monkeypatch):
    import solar_ray.pipeline as pipeline
    from solar_ray.cli import app

    built = []
    monkeypatch.setattr(pipeline.Pipeline, "plan", lambda self, *args, **kwargs: built.append(self.experiment.seed) or [])
    result = CliRunner().invoke(app, ["pipeline", str(TINY), "--seed", "2", "--dry-run", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert built == [2]
    assert CliRunner().invoke(app, ["pipeline", str(TINY), "--seed", "-1", "--dry-run"]).exit_code == 2
