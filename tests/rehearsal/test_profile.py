"""The rehearsal cannot drift from what the cluster runs: its profile changes sizes only, stage by stage."""

import os
from pathlib import Path

import pytest

from solar_ray.config import dump_config
from solar_ray.errors import ConfigError
from solar_ray.pipeline import Pipeline
from solar_ray.rehearsal.profile import Profile, flatten, is_size_key

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
PAPER = EXPERIMENTS / "solar_10_7b"


def non_size_differences(cluster: Pipeline, rehearsal: Pipeline) -> list[str]:
    """'stage: key: cluster value -> rehearsal value' for every effective config key that differs and is no size."""
    found = []
    assert cluster.order == rehearsal.order
    for name in cluster.order:
        a, b = flatten(dump_config(cluster.configs[name])), flatten(dump_config(rehearsal.configs[name]))
        for key in sorted(set(a) | set(b)):
            if a.get(key, "<absent>") != b.get(key, "<absent>") and not is_size_key(key):
                found.append(f"{name}: {key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return found


def rehearsed(experiment: Path, tmp_path: Path) -> tuple[Pipeline, Pipeline]:
    """The experiment's pipeline as it runs, and as its rehearsal (the profile beside it) runs it."""
    return (Pipeline(experiment / "pipeline.yaml", output=str(tmp_path)),
            Pipeline(experiment / "pipeline.yaml", output=str(tmp_path),
                     profile=Profile.read(experiment / "rehearsal.yaml")))


@pytest.mark.parametrize("experiment", ["solar_10_7b", "tiny"])
def test_a_rehearsal_changes_no_stage_but_its_sizes(experiment, tmp_path):
    assert non_size_differences(*rehearsed(EXPERIMENTS / experiment, tmp_path)) == []


def test_the_paper_rehearsal_resizes_every_kind_of_gpu_stage(tmp_path):
    cluster, rehearsal = rehearsed(PAPER, tmp_path)
    # The GPU cluster's settings would not run here.
    changed = {name for name in cluster.order
               if dump_config(cluster.configs[name]) != dump_config(rehearsal.configs[name])}
    assert {"cpt", "sft_v1", "dpo_v1", "cand_1", "dpo_sweep_cand_1", "merge_sweep", "synth_math", "eval_merge",
            "contamination"} <= changed
    assert rehearsal.configs["cpt"].scaling.use_gpu is False and rehearsal.configs["eval_dus"].backend == "hf"


def test_a_changed_non_size_key_is_found(tmp_path):
    """The check itself: a profile that changed DPO's beta (bypassing the reader's refusal) is reported."""
    cluster = Pipeline(PAPER / "pipeline.yaml", output=str(tmp_path))
    sneaky = Profile(kinds={"dpo": {"beta": 0.5, "optim.max_steps": 3}})
    drift = non_size_differences(cluster, Pipeline(PAPER / "pipeline.yaml", output=str(tmp_path), profile=sneaky))
    assert "dpo_v1: beta: 0.1 -> 0.5" in drift and not any("max_steps" in line for line in drift)


def test_reading_a_profile_with_a_non_size_key_is_one_line(tmp_path):
    path = tmp_path / "rehearsal.yaml"
    path.write_text("kinds:\n  dpo: {beta: 0.5}\n")
    with pytest.raises(ConfigError, match=r"kinds.dpo: 'beta' is not a size"):
        Profile.read(path)
    path.write_text("stages:\n  dpo_sweep_cand_1:\n    overrides: {loss_type: ipo}\n")
    with pytest.raises(ConfigError, match=r"'overrides.loss_type' is not a size"):
        Profile.read(path)


def test_the_main_jobs_rehearsal_cuts_every_training_and_evaluation_stage_short(tmp_path):
    main_job, rehearsal = rehearsed(EXPERIMENTS / "tiny", tmp_path)
    for name in main_job.order:
        config = main_job.configs[name]
        if config.stage in ("pretrain", "sft", "dpo"):
            assert (rehearsal.configs[name].optim.max_steps or 0) <= 6 < (config.optim.max_steps or 10**9), name
        if config.stage == "eval":
            assert rehearsal.configs[name].limit == 4 and config.limit["gsm8k"] == 200, name
    assert main_job.configs["base"].optim.max_steps == 600 and rehearsal.experiment.parallel == 2


def test_the_stand_in_hub_is_built_only_for_an_experiment_that_reads_the_hub(tmp_path, monkeypatch):
    from solar_ray.hub import MIRROR_ENV
    from solar_ray.rehearsal.session import HUB_DIR, prepare

    for name in (MIRROR_ENV, "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):  # prepare sets them: restored after the test
        monkeypatch.setenv(name, "1")
    monkeypatch.delenv(MIRROR_ENV)
    profile, root = prepare(EXPERIMENTS / "tiny" / "pipeline.yaml", str(tmp_path / "tiny"))
    assert profile.hub is False and root == str(tmp_path / "tiny")
    assert MIRROR_ENV not in os.environ and not (tmp_path / "tiny" / HUB_DIR).exists()
    profile, root = prepare(PAPER / "pipeline.yaml", str(tmp_path / "paper"))
    assert profile.hub is True and os.environ[MIRROR_ENV] == str(tmp_path / "paper" / HUB_DIR)
    assert (tmp_path / "paper" / HUB_DIR / "models" / "mistralai" / "Mistral-7B-v0.1" / "config.json").is_file()
