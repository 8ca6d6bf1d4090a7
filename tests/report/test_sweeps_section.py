"""The pipeline report links each sweep stage's own Tune report, with its best configuration."""

import json

from solar_ray.report.pipeline_report import sweeps_section


def test_each_sweep_stage_gets_a_row_linking_its_tune_report(tmp_path):
    (tmp_path / "dpo_sweep_cand_1").mkdir()
    (tmp_path / "dpo_sweep_cand_1" / "best.json").write_text(json.dumps(
        {"trial": "a1", "config": {"beta": 0.3, "optim.learning_rate": 2e-6}, "rewards/accuracies": 0.75}))
    (tmp_path / "merge_sweep").mkdir()
    (tmp_path / "merge_sweep" / "best.json").write_text(json.dumps({"trial": "b2", "config": {"weight": 0.7}, "H6": 0.31}))
    kinds = {"dpo_sweep_cand_1": "dpo_sweep", "merge_sweep": "merge_sweep", "dpo_v1": "dpo", "dpo_sweep_cand_2": "dpo_sweep"}
    rows = sweeps_section(tmp_path, kinds).splitlines()[2:]
    assert rows == [
        "| dpo_sweep_cand_1 | dpo_sweep | beta = 0.3, optim.learning_rate = 2e-06 | rewards/accuracies = 0.75 | "
        "[report](../dpo_sweep_cand_1/report.md) ([html](../dpo_sweep_cand_1/report.html)) |",
        "| merge_sweep | merge_sweep | weight = 0.7 | H6 = 0.31 | "
        "[report](../merge_sweep/report.md) ([html](../merge_sweep/report.html)) |",
    ]  # dpo_sweep_cand_2 has not run: no row


def test_no_sweep_no_section(tmp_path):
    assert sweeps_section(tmp_path, {"dpo_v1": "dpo"}) == ""
