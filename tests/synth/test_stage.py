"""The synth_math stage end to end on Ray: scripted engine (every outcome), transformers engine, resume, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import tests.synth.stub_engines  # noqa: F401  (registers engine "scripted")
from solar_ray.artifacts import read_lineage
from solar_ray.config import load_config
from solar_ray.errors import ArtifactError, ConfigError
from solar_ray.synth.engines import EngineOptions, EngineStartError, SamplingSettings, VLLMEngine, vllm_build
from solar_ray.synth.generate import block_path, generate_blocks
from solar_ray.synth.stage import Config, run
from solar_ray.synth.validate import select_seeds

REPO = Path(__file__).resolve().parents[2]
YAML = REPO / "experiments" / "tiny" / "synth_math.yaml"


def test_scripted_engine_end_to_end(ray_session, seed_file, benchmarks_dir, tmp_path):
    out = tmp_path / "synth"
    config = Config(seed_data=str(seed_file.parent), model="unused/by-the-stub", engine="scripted", output=str(out),
                    sampling={"n": 2, "seed": 3}, actors=2, batch_size=2, block_size=3,
                    system_prompt="Solve the problem.",
                    decontamination={"benchmarks_dir": str(benchmarks_dir), "benchmarks": ["gsm8k"], "ngram": 8})
    assert run(config) == out

    report = json.loads((out / "report.json").read_text())
    counts = report["counts"]
    # 10 seed rows: 1 without answer, 1 contaminated -> 8 seeds x 2 samples = 16 samples.
    assert counts["seed_rows"] == 10 and counts["seeds_used"] == 8 and counts["samples"] == 16
    assert counts["kept"] == 3  # seeds 0, 1, 8 once each; each second sample repeats the first
    assert counts["yield"] == round(3 / 16, 4)  # rows kept / samples generated, what sizing sampling.n needs
    assert {k: v for k, v in counts.items() if k.startswith("rejected_")} == {
        "rejected_duplicate": 5,  # the second sample of seeds 0, 1, 5, 8 and both samples of seed 6 (= seed 0)
        "rejected_generation_failed": 2, "rejected_answer_mismatch": 2, "rejected_unparseable": 2,
        "rejected_contaminated": 2, "rejected_no_seed_answer": 1, "rejected_seed_contaminated": 1,
    }
    assert counts["rejected"] == 15 and counts["kept"] + counts["rejected"] - 2 == counts["samples"]

    instruct = pd.read_parquet(out / "instruct" / "train.parquet")
    assert len(instruct) == 3 and set(instruct.source) == {"synth_math_instruct"}
    first = list(instruct.messages[0])
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert first[1]["content"] == "Restated: What is $2+3$?"
    assert first[2]["content"] == "In other words, Adding gives $2+3=\\boxed{5}$."

    alignment = pd.read_parquet(out / "alignment" / "train.parquet")
    row = alignment.iloc[1]
    assert list(alignment.columns) == ["prompt", "chosen", "rejected", "source"]
    assert list(row.prompt) == [{"role": "user", "content": "Restated: Compute $10 \\cdot 4$."}]
    assert row.chosen[0]["content"] == "In other words, $10 \\cdot 4 = \\boxed{40}$."
    assert row.rejected[0]["content"] == "$10 \\cdot 4 = \\boxed{40}$."

    rejected = pd.read_parquet(out / "rejected.parquet")
    assert len(rejected) == 15
    failed = rejected[rejected.reason == "generation_failed"]
    assert failed.seed_id.tolist() == [4, 4] and failed.detail.iloc[0] == "RuntimeError: scripted failure for this prompt"

    for sub in ("instruct", "alignment"):
        lineage = read_lineage(out / sub)
        assert lineage["engine"] == "scripted" and lineage["sampling"]["n"] == 2
        assert len(lineage["prompts_hash"]) == 16 and lineage["metrics"]["kept"] == 3
    top = read_lineage(out)
    assert top["metrics"]["rejected_duplicate"] == 5 and top["parents"][0]["name"] == "seed_data"
    assert not list(tmp_path.glob(".synth.*")), "work blocks and temp dirs are gone after success"


def test_rerun_skips_finished_blocks(ray_session, seed_file, tmp_path):
    seeds, _ = select_seeds(seed_file, json_rows(seed_file))
    engine = tests.synth.stub_engines.ScriptedEngine
    work = tmp_path / "work"
    args = (work, engine, "m", SamplingSettings(n=1), EngineOptions())
    generations, stats = generate_blocks(seeds, *args, block_size=4, batch_size=2, actors=1)
    assert stats["blocks"] == 3 and stats["blocks_resumed"] == 0 and len(generations) == len(seeds)
    # Mark block 0 as if an earlier run had written it, and lose block 1 as if the run died while writing it.
    marked = pd.read_parquet(block_path(work, 0)).assign(completion="from the first run")
    marked.to_parquet(block_path(work, 0))
    block_path(work, 1).unlink()
    generations, stats = generate_blocks(seeds, *args, block_size=4, batch_size=2, actors=1)
    assert stats["blocks_resumed"] == 2 and sorted(generations.block.unique()) == [0, 1, 2]
    assert set(generations[generations.block == 0].completion) == {"from the first run"}
    assert generations[generations.block == 1].completion.str.contains("Restated").any()


def json_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_transformers_engine_end_to_end_from_the_shipped_yaml(ray_session, seed_file, tiny_math_model, tmp_path):
    out = tmp_path / "synth_tf"
    config = load_config(YAML, [
        f"seed_data={seed_file}", f"model={tiny_math_model}", f"output={out}", "sampling.max_tokens=6",
        "sampling.n=1", "max_seed_rows=6", "batch_size=3", "actors=1", "decontamination.benchmarks_dir=null",
        "decontamination.math_test=null",
    ])
    run(config)
    counts = json.loads((out / "report.json").read_text())["counts"]
    # A random-init model does not write the layout: every sample is rejected, but both datasets exist.
    assert counts["seeds_used"] == 6 and counts["samples"] == 6
    assert counts["kept"] + counts["rejected"] == 6 and counts.get("rejected_generation_failed", 0) == 0
    assert len(pd.read_parquet(out / "instruct" / "train.parquet")) == counts["kept"]
    assert len(pd.read_parquet(out / "alignment" / "train.parquet")) == counts["kept"]
    generation = json.loads((out / "report.json").read_text())["generation"]
    assert generation["new_tokens"] > 0 and generation["tokens_per_second"] > 0
    assert read_lineage(out)["engine"] == "transformers"


def test_transformers_engine_samples_n_completions(tiny_math_model):
    from solar_ray.synth.engines import TransformersEngine

    engine = TransformersEngine(str(tiny_math_model), SamplingSettings(max_tokens=5, n=3, seed=1), EngineOptions())
    result = engine.generate(["What is $2+3$?", "Solve $x/2 = 3$. Multiply"], stop=["\n\n###"])
    assert [len(r) for r in result] == [3, 3]
    assert all(0 < c.num_tokens <= 5 and isinstance(c.text, str) for r in result for c in r)


def test_shipped_yaml_is_valid():
    config = load_config(YAML)
    assert config.engine == "transformers" and config.actors == 2 and config.sampling.n == 2
    assert config.answer_mark == "gsm8k"  # the tiny GSM8K reads `#### n`


def test_bad_config_and_inputs_are_one_clear_line(seed_file, tmp_path):
    with pytest.raises(ConfigError, match="unknown engine 'sglang'; known engines: .*transformers, vllm"):
        load_config(YAML, ["engine=sglang"])
    with pytest.raises(ConfigError, match="temperature 0 gives n identical samples"):
        load_config(YAML, ["sampling.temperature=0", "sampling.n=4"])
    with pytest.raises(ArtifactError, match=r"model '\S*no/such/model': directory not found"):
        run(Config(seed_data=str(seed_file), model="no/such/model", output=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(vllm_build() is not None, reason="vllm is installed here; the preflight would pass")
def test_vllm_without_vllm_names_the_fallback():
    with pytest.raises(EngineStartError, match="vllm is not installed here .* set engine: transformers"):
        VLLMEngine.preflight("unused", EngineOptions())


def test_cli_reports_a_missing_model_in_one_line(seed_file, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "solar_ray.cli", "synth-math", str(seed_file), str(tmp_path / "missing"),
         str(tmp_path / "out"), "--n", "2"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: model '{tmp_path / 'missing'}': directory not found "
                                                  "(expected a local HF model directory, e.g. WORLD/base or an sft "
                                                  "stage's output, or a hub id org/name)"]
    assert not (tmp_path / "out").exists()


@pytest.mark.vllm
def test_vllm_engine_generates(tiny_math_model):
    from solar_ray.synth.engines import VLLMEngine as Engine

    options = EngineOptions(gpu_memory_utilization=0.3, max_model_len=1024, dtype="float32")
    Engine.preflight(str(tiny_math_model), options)
    engine = Engine(str(tiny_math_model), SamplingSettings(max_tokens=8, n=2, seed=0), options)
    result = engine.generate(["What is $2+3$?", "Compute $10 \\cdot 4$."], stop=["\n\n###"])
    assert [len(r) for r in result] == [2, 2] and all(0 < c.num_tokens <= 8 for r in result for c in r)


def test_tiny_world_produces_both_datasets(ray_session, tiny_world, tmp_path):
    """The shipped YAML on the tiny world (seed, base model, benchmarks), shortened: both datasets and lineage."""
    world = Path(tiny_world)
    out = tmp_path / "synth_world"
    config = load_config(YAML, [
        f"seed_data={world / 'data' / 'math'}", f"model={world / 'base'}", f"output={out}", "max_seed_rows=4",
        "sampling.max_tokens=4", "sampling.n=1", "actors=1", "batch_size=4",
        f"decontamination.benchmarks_dir={world / 'data' / 'benchmarks'}",
        f"decontamination.math_test={world / 'data' / 'math' / 'test.jsonl'}",
    ])
    run(config)
    counts = json.loads((out / "report.json").read_text())["counts"]
    assert counts["seed_rows"] == 4 and counts["samples"] == counts["seeds_used"] > 0
    for sub in ("instruct", "alignment"):
        assert (out / sub / "train.parquet").is_file()
        assert read_lineage(out / sub)["parents"][1]["name"] == "model"
