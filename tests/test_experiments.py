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
    if path.name == "rehearsal.yaml":  # a scale profile, read by `solar-ray pipeline ... --rehearse`
        from solar_ray.rehearsal.profile import Profile

        assert first.startswith("# solar-ray pipeline ") and first.endswith("--rehearse"), path
        Profile.read(path)
        return
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
    plan = pipe.plan()
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
    caps = {name: s.cap for stage in ("data_sft_v3", "data_dpo_cand") for name, s in c[stage].sources.items()}
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


# ------------------------------------------------------------------ the paper's wording, pinned on the shipped YAML

REPO = EXPERIMENTS.parent


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    return Pipeline(EXPERIMENTS / "solar_10_7b" / "pipeline.yaml", output=str(tmp_path_factory.mktemp("paper")))


def test_dpo_v1_only_uses_ultrafeedback_clean_table_4(paper):
    assert set(paper.configs["data_dpo_v1"].sources) == {"ultrafeedback_binarized"}, \
        "Table 4: 'DPO v1' only uses the Ultrafeedback Clean dataset"
    assert set(paper.configs["data_dpo_v2"].sources) == {"ultrafeedback_binarized", "synth_math_alignment"}, \
        "Table 4: 'DPO v2' = DPO v1 + Synth. Math-Alignment"


def test_every_dpo_stage_reads_ultrafeedback_cleaned_without_truthfulqa_prompts(paper):
    from solar_ray.data.registry import REGISTRY

    for name in ("data_dpo_v1", "data_dpo_v2", "data_dpo_cand"):
        source = paper.configs[name].sources["ultrafeedback_binarized"]
        hub_id = source.hub_id or REGISTRY["ultrafeedback_binarized"].hub_id
        assert hub_id == "allenai/ultrafeedback_binarized_cleaned", name  # the H4 set holds TruthfulQA's prompts


def test_each_candidates_sweep_searches_on_held_out_pairs(paper):
    for sweep in ("dpo_sweep_cand_1", "dpo_sweep_cand_2"):
        config = paper.configs[sweep]
        assert config.search.metric.startswith("eval_"), sweep  # not the training batches' accuracy
        data = paper.experiment.stages[sweep].inputs["overrides.dataset"]
        assert paper.configs[data].test_size > 0, data
        assert config.overrides["run.eval_every"] == config.overrides["run.log_every"]  # a fresh score each report
    from solar_ray import contract

    assert contract.rows(paper.configs["data_dpo_cand"], "test.parquet", None) == 512  # what the planner counts


def test_orca_dpo_pairs_of_table_1_train_the_final_candidates(paper):
    stages = paper.experiment.stages
    with_orca = {name for name, c in paper.configs.items()
                 if c.stage == "data" and "orca_dpo_pairs" in getattr(c, "sources", {})}
    assert with_orca == {"data_dpo_cand"}, "Table 1's Orca DPO pairs (12.9K): only the candidates' data"
    assert paper.configs["data_dpo_cand"].sources["orca_dpo_pairs"].cap == 12900
    assert {stages[c].inputs["dataset"] for c in ("cand_1", "cand_2")} == {"data_dpo_cand"}
    comment = (EXPERIMENTS / "solar_10_7b" / "data_dpo_cand.yaml").read_text()
    assert "Why Orca DPO pairs go here" in comment


def test_contamination_reference_is_solar_10_7b_table_9(paper):
    """Table 9: "We set SOLAR 10.7B as our reference model": the continued-pretrained up-scaled model."""
    assert paper.experiment.stages["contamination"].inputs["reference"] == "cpt"
    assert paper.configs["cpt"].stage == "pretrain" and paper.experiment.stages["cpt"].inputs["model"] == "dus"


def test_synth_math_can_reach_table_1s_126k_rows_from_math_7500_problems(paper):
    n = paper.configs["synth_math"].sampling.n
    assert 7500 * n * 7 >= 126_000 * 10, (  # a yield of 0.7, in integers
        f"Table 1: Synth. Math-Instruct has 126K rows; 7,500 MATH problems x n={n} cannot reach it at a 0.7 yield")


def test_math_seed_is_eleutherai_hendrycks_math_one_config_per_subject(paper):
    seed = paper.configs["math_seed"]
    assert (seed.repo_id, seed.split) == ("EleutherAI/hendrycks_math", "train"), "hendrycks/competition_math left the hub"
    assert seed.subsets == ["algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                            "number_theory", "prealgebra", "precalculus"]


def test_no_data_source_points_at_the_whole_synth_artifact():
    """A data source reads synth_math/instruct or /alignment, never the folder holding rejected.parquet."""
    import yaml

    paths = []
    for path in [*CONFIGS, *(REPO / "cluster" / "jobs").glob("*.yaml")]:
        tree = yaml.safe_load(path.read_text()) or {}
        for stage in (tree.get("stages") or {}).values():
            paths += [(path, ref) for key, ref in stage.get("inputs", {}).items() if key.startswith("sources.")]
        paths += [(path, src["path"]) for src in (tree.get("sources") or {}).values()
                  if isinstance(src, dict) and "synth_math" in str(src.get("path", ""))]
    synth = [(path, ref) for path, ref in paths if "synth_math" in ref]
    assert synth, "no data source reads Synth. Math"
    for path, ref in synth:
        assert ref.rstrip("/").endswith(("instruct", "alignment")), f"{path}: {ref} is the whole synth artifact"


def test_the_repository_never_refers_to_a_design_brief_outside_it():
    import subprocess

    found = subprocess.run(["git", "grep", "-n", "DESIGN" + ".md"], cwd=REPO, capture_output=True, text=True)
    assert found.stdout == "", found.stdout


@pytest.mark.parametrize("name", ["tiny", "solar_10_7b"])
def test_each_candidate_trains_with_the_best_config_of_its_own_dpo_sweep(name, tmp_path):
    """Cand. 1 / Cand. 2 re-run DPO v2 / v3 'with other hyper-parameters': a Ray Tune (ASHA) sweep picks them."""
    pipe = Pipeline(EXPERIMENTS / name / "pipeline.yaml", output=str(tmp_path))
    stages = pipe.experiment.stages
    for cand, sft in (("cand_1", "sft_v3"), ("cand_2", "sft_v3_v4")):
        sweep = f"dpo_sweep_{cand}"
        assert pipe.configs[sweep].stage == "dpo_sweep" and pipe.configs[sweep].scheduler is not None  # ASHA
        assert pipe.configs[sweep].space, f"{sweep}: the search space is stated in the YAML"
        assert stages[cand].inputs["hyperparameters_from"] == f"{sweep}:best_config.json"
        assert stages[sweep].inputs["overrides.model"] == stages[cand].inputs["model"] == sft
        assert stages[sweep].inputs["overrides.dataset"] == stages[cand].inputs["dataset"]
    merged = {stages[f"merge_v{i}"].inputs.get("models.first.path", stages[f"merge_v{i}"].inputs.get("models.base.path"))
              for i in (1, 2, 3, 4)}
    assert merged == {"cand_1"}
    assert pipe.configs["merge_sweep"].stage == "merge_sweep"
    assert set(pipe.configs["merge_sweep"].candidates) == {"cand_1", "cand_2"}
    assert {stages["merge_sweep"].inputs[f"candidates.{c}"] for c in ("cand_1", "cand_2")} == {"cand_1", "cand_2"}
    assert pipe.configs["merge_sweep"].tasks == ["h6"], "merge weights are scored on H6"


def test_tiny_candidates_differ_in_learning_rate_and_each_sweep_picks_beta_at_its_own(tmp_path):
    """Table 6 asks for candidates with different strengths: the tiny Cand. 2 aligns at a higher learning rate than
    Cand. 1 (which keeps DPO's), and each candidate's beta comes from a sweep trained at that candidate's rate."""
    pipe = Pipeline(EXPERIMENTS / "tiny" / "pipeline.yaml", output=str(tmp_path))
    rates = {}
    for cand in ("cand_1", "cand_2"):
        sweep = pipe.configs[f"dpo_sweep_{cand}"]
        assert "optim.learning_rate" not in sweep.space, "the tiny sweeps search beta only"
        rates[cand] = pipe.configs[cand].optim.learning_rate
        assert sweep.base["optim"]["learning_rate"] == rates[cand], f"{cand}'s sweep trains at another rate"
    assert rates["cand_1"] == pipe.configs["dpo_v2"].optim.learning_rate
    assert rates["cand_2"] > rates["cand_1"]


@pytest.mark.parametrize("name", ["tiny", "solar_10_7b"])
def test_synth_math_waits_for_no_model_the_recipe_trains(name, tmp_path):
    """The rephraser is a model of its own (the paper's: a strong instruction model), not one the recipe trains:
    Synth. Math can run while the base pretrains, in both pipelines."""
    pipe = Pipeline(EXPERIMENTS / name / "pipeline.yaml", output=str(tmp_path))
    trained = {stage for stage, config in pipe.configs.items() if config.stage in {"pretrain", "sft", "dpo", "upscale"}}
    assert pipe.ancestors("synth_math") & trained == set()
    assert {"cpt", "synth_math"} <= pipe.ancestors("sft_v3")
