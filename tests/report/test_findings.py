import statistics

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


def test_similar_needs_the_interval_inside_the_margin():
    f = finding("similar", models=["m1", "m2", "m3"], margin=5.0)
    # widest pair m2 - m3 = 2, 90% interval 1.645 * sqrt(2) * 1 = 2.33: reaches 4.33 < 5
    assert judge(f, scores(m1=(50, 1), m2=(51, 1), m3=(49, 1)))["verdict"] == "reproduced"
    # the same gaps with wide errors (low power): the interval reaches past the margin, so no evidence of likeness
    assert judge(f, scores(m1=(50, 4), m2=(51, 4), m3=(49, 4)))["verdict"] == "cannot tell"
    assert judge(f, scores(m1=(50, 1), m2=(60, 1), m3=(49, 1)))["verdict"] == "not reproduced"
    result = judge(f, scores(m1=(50, 1)))
    assert result["verdict"] == "cannot tell" and "m2" in result["evidence"]


def test_trade_off_needs_both_directions():
    f = finding("trade_off", metric="gsm8k", against="arc", baseline=["v1"], treatment="v2")
    both = {"v1": {"gsm8k": (40, 1), "arc": (60, 1)}, "v2": {"gsm8k": (50, 1), "arc": (50, 1)}}
    assert judge(f, both)["verdict"] == "reproduced"
    gain_only = {"v1": {"gsm8k": (40, 1), "arc": (60, 1)}, "v2": {"gsm8k": (50, 1), "arc": (60, 1)}}
    assert judge(f, gain_only)["verdict"] == "cannot tell"
    assert judge(f, {**gain_only, "v2": {"gsm8k": (50, 1), "arc": (70, 1)}})["verdict"] == "not reproduced"


def test_a_missing_standard_error_is_an_error_never_zero():
    f = finding("improves", baseline=["a"], treatment="m")
    result = judge(f, scores(a=(40, None), m=(90, 1)))
    assert result["verdict"] == "error" and "no standard error" in result["evidence"]


@pytest.mark.parametrize("spec, message", [
    ({"kind": "better"}, "unknown finding kind"),
    ({"kind": "similar", "models": ["a", "b"]}, "margin"),
    ({"kind": "improves", "baseline": ["a"]}, "treatment"),
    ({"kind": "trade_off", "baseline": ["a"], "treatment": "b"}, "against"),
])
def test_incomplete_findings_are_config_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        validate(Finding, {"claim": "c", "eval": "e", **spec}, "exp.yaml")


def test_training_loss_is_lower_is_better():
    f = finding("drops_then_recovers", metric="loss", models=["base", "cpt@start", "cpt"])
    loss = {"base": (1.63, 0.01), "cpt@start": (1.70, 0.01), "cpt": (1.20, 0.01)}
    result = judge(f, {name: {"loss": value} for name, value in loss.items()})
    assert result["verdict"] == "reproduced"  # the loss rose after up-scaling, then fell below both
    assert result["evidence"].startswith("loss (lower is better): cpt@start - base = +0.07")
    flipped = {"base": (1.70, 0.01), "cpt@start": (1.63, 0.01), "cpt": (1.20, 0.01)}
    assert judge(f, {n: {"loss": v} for n, v in flipped.items()})["verdict"] == "not reproduced"
    better = finding("improves", metric="loss", baseline=["a", "b"], treatment="m")
    # the best baseline is the lower loss (b); m beats it clearly
    assert judge(better, {"a": {"loss": (2.0, 0.01)}, "b": {"loss": (1.5, 0.01)}, "m": {"loss": (1.2, 0.01)}})[
        "evidence"].endswith("m - b = -0.30 (± 0.03) [independent]")


def test_loss_scores_average_the_first_and_last_steps_of_training_stages(tmp_path):
    import json

    from solar_ray.report.pipeline_report import loss_scores

    losses = [3.0, 2.0, 2.2, 1.8, 2.0, 1.0, 1.1, 0.9, 1.0, 1.0, 1.2, 0.8, 1.0]
    (tmp_path / "cpt").mkdir()
    rows = [{"step": i + 1, "loss": v} for i, v in enumerate(losses)] + [{"step": 13, "eval_loss": 0.5}]
    (tmp_path / "cpt" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "short").mkdir()
    (tmp_path / "short" / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    scores = loss_scores(tmp_path, {"cpt": "pretrain", "short": "sft", "eval_x": "eval"})
    assert set(scores) == {"cpt", "cpt@start"}  # too few steps, or not a training stage: no loss score
    assert scores["cpt@start"]["loss"][0] == pytest.approx(2.2)
    assert scores["cpt"]["loss"][0] == pytest.approx(1.0)
    assert scores["cpt"]["loss"][1] == pytest.approx((0.02 / 5) ** 0.5)  # sample variance 0.08 / 4, over 5 steps


def test_models_alike_at_chance_show_nothing():
    f = finding("similar", models=["m1", "m2"], margin=10.0)
    alike = scores(m1=(30, 3), m2=(31, 3))
    assert judge(f, alike)["verdict"] == "reproduced"
    result = judge(f, alike, chance=29.2)
    assert result["verdict"] == "cannot tell" and "within the noise of chance (29.20)" in result["evidence"]
    assert judge(f, scores(m1=(60, 3), m2=(61, 3)), chance=29.2)["verdict"] == "reproduced"  # alike, and learnt


@pytest.mark.parametrize("experiment", ["tiny", "solar_10_7b"])
def test_shipped_experiments_judge_every_claim_on_models_they_score(experiment):
    from pathlib import Path

    from solar_ray.pipeline import Pipeline

    pipe = Pipeline(Path(__file__).parents[2] / "experiments" / experiment / "pipeline.yaml")
    scored = {model for config in pipe.configs.values() if config.stage == "eval" for model in config.models}
    findings = pipe.experiment.report.findings
    assert len([f for f in findings if f.metric != "loss"]) >= 13
    assert {f.kind for f in findings} >= {"improves", "trade_off", "drops_then_recovers", "similar"}
    for f in findings:
        if f.metric != "loss":
            assert set(f.models + f.baseline + [f.treatment] * bool(f.treatment)) <= scored, f.claim


def test_verdict_table_puts_runs_side_by_side():
    from solar_ray.report.findings import verdict_table

    f = finding("improves", baseline=["a"], treatment="m")
    one = [judge(f, scores(a=(40, 1), m=(50, 1)))]
    two = [judge(f, scores(a=(40, 1), m=(41, 1))), {"claim": "other", "verdict": "error", "evidence": "x"}]
    lines = verdict_table({"seed 0": one, "seed 1": two}).splitlines()
    assert lines[0] == "| claim | seed 0 | seed 1 | every run |"
    assert lines[2] == "| c | reproduced (+10.00 ± 1.41 se) | cannot tell (+1.00 ± 1.41 se) | differs |"
    assert lines[3] == "| other | - | error | differs |"
    assert lines[-1] == "Reproduced in every run: 0 of 2 claims."


def write_run(root, seed: int, items: dict[str, list[int]], claim: str = "m beats a on ARC") -> None:
    """A pipeline output as the report reads it: pipeline.json (graph, findings), one eval stage's per-item ARC
    results for each model, and the run's own findings.json."""
    import json

    from solar_ray.report.pipeline_report import RunScores

    f = Finding(claim=claim, kind="improves", metric="arc", baseline=["a"], treatment="m", eval="eval")
    state = {"experiment": "tiny", "seed": seed, "graph": {"eval": {"kind": "eval", "parents": []}},
             "report": {"findings": [f.model_dump()]}}
    summaries = {model: {"ARC": {"value": sum(v) / len(v), "stderr": 0.1, "items": {
        "arc_challenge": {"ids": [f"arc-{i}" for i in range(len(v))], "values": v}}}} for model, v in items.items()}
    (root / "eval").mkdir(parents=True)
    (root / "report").mkdir()
    (root / "pipeline.json").write_text(json.dumps(state))
    (root / "eval" / "summary.json").write_text(json.dumps(summaries))
    (root / "eval" / "lineage.json").write_text("{}")
    run = RunScores(root)
    (root / "report" / "findings.json").write_text(json.dumps([run.verdict(f) for f in run.spec.findings]))


def test_report_compares_the_findings_of_several_runs_and_pools_their_items(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from solar_ray.cli import app

    a = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0]
    write_run(tmp_path / "tiny", 0, {"a": a, "m": [1, 1, 0, 0, 1, 0, 0, 1, 1, 0]})  # +0.2: 2 of 10 items won
    write_run(tmp_path / "tiny_seed1", 1, {"a": a, "m": [1, 0, 1, 0, 1, 1, 0, 0, 1, 0]})  # +0.2, other items
    write_run(tmp_path / "other" / "tiny", 0, {"a": a, "m": a})  # no gain: +0 against tiny's +20
    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them
    result = CliRunner().invoke(app, ["report", "tiny", "tiny_seed1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "| claim | tiny (seed 0) | tiny_seed1 (seed 1) | every run | pooled |"
    # each run alone: +20 points, se 13.33 (2 of 10 items differ): cannot tell. Pooled, the four items won once
    # each count half: +20, se sqrt(4 * 0.25 - 10 * 0.04) / 3 / sqrt(10) * 100 = 8.16, so its interval clears zero
    assert lines[2] == ("| m beats a on ARC | cannot tell (+20.00 ± 13.33 se) | cannot tell (+20.00 ± 13.33 se) "
                        "| cannot tell | reproduced (+20.00 ± 8.16 se); runs' sd 0.00 |")
    assert lines[-2] == "Reproduced in every run: 0 of 1 claims."
    assert lines[-1].startswith("Reproduced with the runs pooled: 1 of 1 claims (the runs taken as they are")
    same_name = CliRunner().invoke(app, ["report", "tiny", "other/tiny"]).output.splitlines()
    assert same_name[0] == "| claim | tiny (seed 0) | other/tiny (seed 0) | every run | pooled |"  # kept apart
    assert same_name[2].endswith(f"; runs' sd {statistics.stdev([20, 0]):.2f} |")  # whole runs that disagree
    missing = CliRunner().invoke(app, ["report", "tiny", "elsewhere"])
    assert missing.exit_code != 0 and str(missing.exception) == "elsewhere: not a pipeline output (no pipeline.json)"
    (tmp_path / "tiny_seed1" / "report" / "findings.json").unlink()
    unreported = CliRunner().invoke(app, ["report", "tiny", "tiny_seed1"])
    assert "tiny_seed1/report/findings.json: no findings (run `solar-ray report tiny_seed1` first)" == str(
        unreported.exception)


def test_runs_of_other_worlds_do_not_pool(tmp_path):
    from solar_ray.report.pipeline_report import compare_runs

    write_run(tmp_path / "world0", 0, {"a": [1, 0, 1], "m": [1, 1, 1]})
    write_run(tmp_path / "world1", 0, {"a": [1, 0, 1, 0], "m": [1, 1, 1, 0]})
    lines = compare_runs([tmp_path / "world0", tmp_path / "world1"]).splitlines()
    assert lines[2].endswith("| error |")  # not a number: the runs answered different items, and the table says so
    assert lines[-1] == (f"Not pooled (1 claim), e.g.: a in {tmp_path / 'world0'} (seed 0) and a in "
                         f"{tmp_path / 'world1'} (seed 0) answered different arc_challenge items (3 vs 4); a paired "
                         "comparison needs the same")


def test_a_difference_too_small_to_tell_says_what_this_run_could_detect():
    f = finding("improves", baseline=["a"], treatment="m")
    told = judge(f, scores(a=(40, 1), m=(50, 1)))
    assert "power" not in told["evidence"]  # a clear difference needs no power statement
    untold = judge(f, scores(a=(40, 3), m=(42, 4)))
    # independent: se = hypot(3, 4) = 5; 95% half-width 9.80; 80% power from (1.96 + 0.8416) x 5 = 14.01
    assert untold["verdict"] == "cannot tell"
    assert "(± 9.80; 80% power from 14.01)" in untold["evidence"]
    alike = judge(f, scores(a=(0, 0), m=(0, 0)))  # every item pair agrees: no variance to size a test by
    assert alike["verdict"] == "cannot tell" and "m - a = +0.00 (± 0.00)" in alike["evidence"]
