"""Every shipped experiment config validates, every pipeline dry-runs, and the paper's numbers are the paper's."""

from pathlib import Path

import pytest

from solar_ray.config import load_config, read_yaml, resolve_extends
from solar_ray.pipeline import Pipeline

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
CONFIGS = sorted(EXPERIMENTS.rglob("*.yaml"))


def is_fragment(path):
    """Shared settings that other configs extend (no stage of their own)."""
    tree = resolve_extends(path)
    return "stage" not in tree and "stages" not in tree


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_config_validates_and_starts_with_its_command(path):
    first = path.read_text().splitlines()[0]
    if is_fragment(path):
        assert first.startswith("# "), path
        users = [p for p in path.parent.glob("*.yaml") if read_yaml(p).get("extends") == path.name]
        assert users, f"{path} is extended by no config"
        return
    assert first.startswith("# solar-ray "), f"{path}: first line should be the command that runs it"
    if "stages" in read_yaml(path):
        Pipeline(path)
    else:
        load_config(path)


@pytest.mark.parametrize("name", ["tiny", "solar_10_7b"])
def test_pipeline_dry_run_lists_every_stage_with_inputs_and_resources(name, tmp_path):
    pipe = Pipeline(EXPERIMENTS / name / "pipeline.yaml", output=str(tmp_path / name))
    plan = pipe.plan(pipe.select())
    assert [row["stage"] for row in plan] == pipe.order and len(plan) == len(pipe.experiment.stages)
    assert all(row["status"] == "will run" and row["resources"] for row in plan)
    kinds = {row["kind"] for row in plan}
    assert {"upscale", "pretrain", "data", "synth_math", "sft", "dpo", "merge", "eval", "contamination"} <= kinds
    for stage in pipe.order:  # every stage writes under the one output root
        assert Path(pipe.configs[stage].output).is_relative_to(tmp_path / name)


def test_solar_10_7b_keeps_the_papers_numbers(tmp_path):
    pipe = Pipeline(EXPERIMENTS / "solar_10_7b" / "pipeline.yaml", output=str(tmp_path))
    c = pipe.configs
    assert c["mistral_7b"].repo_id == "mistralai/Mistral-7B-v0.1"
    assert (c["dus"].drop, c["dus"].as_llama, c["dus"].max_position_embeddings) == (8, True, 4096)
    caps = {name: s.cap for stage in ("data_sft_v3", "data_dpo_v2") for name, s in c[stage].sources.items()}
    assert caps == {"alpaca_gpt4": 52000, "open_orca": 100000, "synth_math_instruct": 52000,
                    "ultrafeedback_binarized": 60800, "orca_dpo_pairs": 12900, "synth_math_alignment": 20100}
    assert set(c["data_sft_v1"].sources) == {"alpaca_gpt4"}
    assert set(c["data_sft_v4"].sources) == {"alpaca_gpt4", "synth_math_instruct"}
    assert c["data_sft_v2"].flan_filter is not None
    weights = [tuple(m.weight for m in c[f"merge_v{i}"].models.values()) for i in (1, 2, 3)]
    assert weights == [(0.5, 0.5), (0.4, 0.6), (0.6, 0.4)] and c["merge_v4"].method == "slerp"
    assert pipe.experiment.stages["dpo_v3"].inputs["model"] == "sft_v3_v4"
    assert c["cpt"].deepspeed.zero_stage == 3 and c["cpt"].scaling.use_gpu is True
    assert c["eval_merge"].backend == "vllm" and c["eval_merge"].tasks == ["h6"]
    assert (c["contamination"].examples, c["contamination"].neighbours, c["contamination"].prefix_ratio) == (100, 100, 0.4)
