"""`stage: eval` end to end on Ray (two models side by side), the CLI, and bad input caught before evaluation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from solar_ray.config import load_config
from solar_ray.errors import ArtifactError, ConfigError, DataError
from solar_ray.evaluate.runner import check_models, evaluate_model, evaluate_models, make_lm
from solar_ray.evaluate.stage import Config, run


def test_h6_on_ray_writes_results_summary_and_tables(ray_session, tmp_path, eval_model, bench_dir):
    out = run(Config(stage="eval", models={"base": str(eval_model), "copy": str(eval_model)}, data_dir=str(bench_dir),
                     output=str(tmp_path / "eval"), limit={"default": 3, "gsm8k": 2}, max_gen_toks=8, workers=2))
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"base", "copy"}
    assert set(summary["base"]) == {"H6", "ARC", "HellaSwag", "MMLU", "TruthfulQA", "Winogrande", "GSM8K"}
    assert summary["base"]["H6"]["value"] == pytest.approx(summary["copy"]["H6"]["value"])  # same weights: scored once
    assert set(summary["base"]["MMLU"]["subjects"]) == {"anatomy", "astronomy"}
    # per-item scores, kept for paired comparisons: the same items for both models, and the same model agrees
    assert set(summary["base"]["MMLU"]["items"]) == {"mmlu_anatomy", "mmlu_astronomy"}
    assert summary["base"]["ARC"]["items"] == summary["copy"]["ARC"]["items"]
    assert len(summary["base"]["GSM8K"]["items"]["gsm8k"]["values"]) == 2  # its own limit; the others the default
    assert len(summary["base"]["ARC"]["items"]["arc_challenge"]["values"]) == 3
    results = json.loads((out / "results" / "base.json").read_text())
    assert results["n-shot"]["arc_challenge"] == 25 and "mmlu_anatomy" in results["results"]
    table = (out / "table.md").read_text()
    assert table.splitlines()[0] == "| Model | H6 | ARC | HellaSwag | MMLU | TruthfulQA | Winogrande | GSM8K |"
    assert "**" in table  # best per column in bold
    assert (out / "table.csv").read_text().startswith("model,H6,ARC")
    assert (out / "h6.png").stat().st_size > 1000
    assert json.loads((out / "lineage.json").read_text())["stage"] == "eval"


def test_identical_weights_are_scored_once_and_a_shared_cache_serves_later_stages(ray_session, tmp_path, eval_model,
                                                                                  bench_dir, monkeypatch):
    import solar_ray.evaluate.runner as runner

    calls = []

    def counted(models, *args, **kwargs):
        calls.append(sorted(models))
        return evaluate_models(models, *args, **kwargs)

    monkeypatch.setattr(runner, "evaluate_models", counted)
    twin = shutil.copytree(eval_model, tmp_path / "twin")  # the same files: the same content hash
    common = {"stage": "eval", "data_dir": str(bench_dir), "tasks": ["winogrande"], "limit": 3, "workers": 1,
              "cache_dir": str(tmp_path / "cache")}
    first = run(Config(**common, models={"a": str(eval_model), "b": str(twin)}, output=str(tmp_path / "e1")))
    assert calls == [["a"]]  # b has a's weights: scored once
    later = run(Config(**common, models={"c": str(twin)}, output=str(tmp_path / "e2")))
    assert calls == [["a"]]  # a later stage reads the shared cache
    summary = lambda out: json.loads((out / "summary.json").read_text())  # noqa: E731
    assert summary(first)["b"] == summary(first)["a"] == summary(later)["c"]
    other = run(Config(**{**common, "limit": 2}, models={"c": str(twin)}, output=str(tmp_path / "e3")))
    assert calls == [["a"], ["c"]]  # other settings: scored again
    assert len(summary(other)["c"]["Winogrande"]["items"]["winogrande"]["values"]) == 2


def test_a_model_another_stage_is_scoring_is_waited_for_and_a_dead_claim_is_taken_over(tmp_path, eval_model,
                                                                                       bench_dir):
    import threading

    from solar_ray.evaluate.stage import ScoreCache

    config = Config(stage="eval", data_dir=str(bench_dir), models={"m": str(eval_model)},
                    cache_dir=str(tmp_path / "cache"), output=str(tmp_path / "e"))
    first, second = ScoreCache(config, ["winogrande"]), ScoreCache(config, ["winogrande"])
    assert first.to_score() == {"m": str(eval_model)}
    assert second.to_score() == {}  # first holds the claim: second waits instead of scoring it too
    result = {"results": {"winogrande": {"acc,none": 0.5}}, "items": {}}
    threading.Timer(0.3, first.store, args=({"m": result},)).start()
    assert second.wait_for_others() == {} and second.complete({}) == {"m": result}

    key = first.keys["m"]
    (tmp_path / "cache" / f"{key}.json").unlink()
    third, fourth = ScoreCache(config, ["winogrande"]), ScoreCache(config, ["winogrande"])
    assert third.to_score() and not fourth.to_score()
    third.release()  # third failed before storing: fourth scores the model itself
    assert fourth.wait_for_others() == {"m": str(eval_model)}
    fourth.release()
    (tmp_path / "cache" / f"{key}.claim").write_text(f"{__import__('socket').gethostname()} 999999999 1")
    assert ScoreCache(config, ["winogrande"]).to_score() == {"m": str(eval_model)}  # its process is gone


def test_unknown_task_fails_before_evaluation(tmp_path, eval_model, bench_dir):
    with pytest.raises(ConfigError, match="unknown task or suite 'arc_hard'"):
        evaluate_models({"m": str(eval_model)}, ["arc_hard"], bench_dir)


def test_missing_field_names_file_row_and_field(tmp_path, eval_model, bench_dir):
    bad = tmp_path / "bench"
    shutil.copytree(bench_dir, bad)
    rows = [json.loads(line) for line in (bad / "winogrande/validation.jsonl").read_text().splitlines()]
    del rows[2]["option2"]
    (bad / "winogrande/validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"winogrande/validation.jsonl: row 3 lacks field 'option2'"):
        evaluate_models({"m": str(eval_model)}, "h6", bad)


def test_model_dir_that_does_not_load(tmp_path, eval_model, bench_dir):
    broken = tmp_path / "broken"
    shutil.copytree(eval_model, broken)
    for weights in broken.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(ArtifactError, match="model 'broken'.*no weights"):
        evaluate_models({"broken": str(broken)}, "h6", bench_dir)
    (broken / "model.safetensors").write_bytes(b"x")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="config.json does not load"):
        evaluate_models({"broken": str(broken)}, "h6", bench_dir)


def test_gpu_backend_without_gpu_is_refused(ray_session, eval_model, bench_dir):
    with pytest.raises(ConfigError, match="needs a GPU"):
        evaluate_models({"m": str(eval_model)}, "arc", bench_dir, backend="vllm")


def test_cli_reports_bad_input_in_one_line(tmp_path, eval_model):
    proc = subprocess.run([sys.executable, "-m", "solar_ray.cli", "eval", str(tmp_path / "o"), "--model",
                           str(eval_model), "--data", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: benchmark data directory not found "
                                                "(expected e.g. WORLD/data/benchmarks)"]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["eval_h6.yaml", "contamination.yaml"])
def test_shipped_configs_validate(name):
    from pathlib import Path

    config = load_config(Path(__file__).parents[2] / "experiments/tiny" / name)
    assert config.stage in {"eval", "contamination"}


def test_the_task_generation_cap_wins_over_the_model_generation_config(eval_model, tmp_path):
    """A model that saves max_new_tokens in its generation_config still generates at most the task's max_gen_toks."""
    from lm_eval.api.instance import Instance
    from transformers import GenerationConfig

    model = tmp_path / "model"
    shutil.copytree(eval_model, model)
    GenerationConfig(bos_token_id=1, eos_token_id=2, max_new_tokens=64).save_pretrained(model)
    lm = make_lm(model, batch_size=2)

    def generate(max_gen_toks: int) -> str:
        kwargs = {"until": ["never-generated"], "max_gen_toks": max_gen_toks, "do_sample": False}
        return lm.generate_until([Instance("generate_until", {}, ("the", kwargs), 0)])[0]

    short, long = generate(3), generate(12)
    assert short and long.startswith(short) and len(short) < len(long)  # greedy: the short one is a prefix


def test_generation_budget_must_fit_the_context(tmp_path, eval_model, bench_dir):
    """lm-eval asserts max_gen_toks < the model's context at its first GSM8K request; the check says so first, in
    one line naming the model and max_gen_toks, and lets through a budget that fits or a suite that generates
    nothing."""
    short = tmp_path / "short"
    shutil.copytree(eval_model, short)
    config = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 256}))
    with pytest.raises(ConfigError, match=r"model 'short'.*GSM8K generates up to 256 tokens \(lm-eval's default\), "
                                          r"not less than its 256-token context.*set max_gen_toks"):
        evaluate_models({"short": str(short)}, "h6", bench_dir)
    with pytest.raises(ConfigError, match=r"up to 300 tokens \(max_gen_toks\)"):
        check_models({"short": str(short)}, ["gsm8k"], 300)
    check_models({"short": str(short)}, ["gsm8k"], 32)
    check_models({"short": str(short)}, ["arc_challenge", "winogrande"], None)
    with pytest.raises(ConfigError, match=r"model 'short' \(.*short/config.json\): GSM8K generates up to 256 tokens"):
        evaluate_model(str(short), tasks="gsm8k", data_dir=bench_dir)  # a model by path, in this process


def test_cli_limit_takes_a_count_or_per_task_counts():
    from solar_ray.evaluate.cli import parse_limit

    assert parse_limit("30") == 30
    assert parse_limit("default=30, gsm8k=60") == {"default": 30, "gsm8k": 60}
    assert parse_limit(None) is None
    assert parse_limit("all") is None  # every item, as the help says
    assert parse_limit("default=30,gsm8k=all") == {"default": 30, "gsm8k": None}
    with pytest.raises(ConfigError, match="--limit 'gsm8k=most'"):
        parse_limit("gsm8k=most")


def test_cli_per_task_limit_reaches_the_config(tmp_path, eval_model):
    # an unknown task key is refused by the config's own check, so the mapping got there
    proc = subprocess.run([sys.executable, "-m", "solar_ray.cli", "eval", str(tmp_path / "o"), "--model",
                           str(eval_model), "--data", str(tmp_path), "--limit", "default=3,gsm8kk=2"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "unknown task 'gsm8kk'" in proc.stderr
    assert not (tmp_path / "o").exists()
