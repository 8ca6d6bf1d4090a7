"""The rehearsal cannot drift from what the cluster runs: its profile changes sizes only, stage by stage."""

from pathlib import Path

import pytest

from solar_ray.config import dump_config
from solar_ray.errors import ConfigError
from solar_ray.pipeline import Pipeline
from solar_ray.rehearsal.profile import Profile, flatten, is_size_key

PAPER = Path(__file__).resolve().parents[2] / "experiments" / "solar_10_7b"


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


def test_the_rehearsal_profile_changes_only_sizes_in_every_stage(tmp_path):
    cluster = Pipeline(PAPER / "pipeline.yaml", output=str(tmp_path))
    rehearsal = Pipeline(PAPER / "pipeline.yaml", output=str(tmp_path), profile=Profile.read(PAPER / "rehearsal.yaml"))
    assert non_size_differences(cluster, rehearsal) == []
    # ... and it does change sizes: the GPU cluster's settings would not run here.
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
