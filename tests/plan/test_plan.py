"""`solar-ray plan` on the paper's experiment and the AWS launcher config, and the same columns in the dry-run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from solar_ray.cli import app
from solar_ray.errors import ConfigError
from solar_ray.pipeline import Pipeline
from solar_ray.plan.cluster import load_cluster
from solar_ray.plan.planner import make_plan

REPO = Path(__file__).resolve().parents[2]
EXPERIMENT = REPO / "experiments" / "solar_10_7b" / "pipeline.yaml"
AWS = REPO / "cluster" / "aws" / "solar-ray.yaml"


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    pipe = Pipeline(EXPERIMENT, output=str(tmp_path_factory.mktemp("solar")))
    return pipe, make_plan(pipe, load_cluster(AWS))


def test_each_stage_is_placed_where_it_fits(plan):
    _, result = plan
    s = result.stages
    # Synth. Math: 2 engines x tensor-parallel 4 = 8 GPUs; a 72.7B model in bf16 is 36.4 GB per GPU
    assert (s["synth_math"].devices, s["synth_math"].node.name) == (8, "train_8xh100")
    assert s["synth_math"].memory["weights"] == pytest.approx(2 * 72.7e9 / 4, rel=0.01)
    # ZeRO-3 training of 10.7B over 16 GPUs: two p5 nodes
    cpt = s["cpt"]
    assert (cpt.devices, cpt.nodes, cpt.fits) == (16, 2, True) and cpt.memory["weights"] == 2 * 10_731_524_096 / 16
    assert cpt.workload.work.startswith("2.10B tokens, 512,000 seqs")  # 2000 steps x 256 sequences x 4096 tokens
    # the evaluations load float32 weights (42.9 GB): no room on the 48 GB L40S nodes, so they go to H100s
    assert "not on eval_1xl40s: 47.5 GB per GPU (L40S-48GB) needed (weights 42.9 + vLLM overhead 3.0 + KV cache 1.6), " \
        "limit 43.2 GB" in s["eval_dus"].workload.notes  # 90% of 48 GB; KV cache for one 4096-token sequence
    assert s["eval_dus"].node.name == "train_8xh100" and s["eval_dus"].fits
    # the contamination test holds both models in float32 in every CPU actor, one actor per CPU
    assert s["contamination"].fits is False
    assert result.problems() == ["stage 'contamination': 85.9 GB per actor (data_cpu_spot memory / actors on a node) "
                                 "needed (model (float32) 42.9 + reference (float32) 42.9), limit 4.0 GB"]
    # the critical path runs through continued pretraining; parallel 4 cannot beat it
    assert "cpt" in result.critical_path and result.critical_path[-1] == "contamination"
    longest = sum(s[n].hours or 0.0 for n in result.critical_path)
    assert longest <= result.makespan <= sum(st.hours or 0.0 for st in s.values())


def test_the_pipeline_refuses_the_stage_that_cannot_fit(plan):
    pipe, _ = plan
    with pytest.raises(ConfigError, match=r"^stage 'contamination': 85.9 GB per actor .* limit 4.0 GB$"):
        pipe.run(cluster_spec=load_cluster(AWS))
    assert not any(pipe.root.iterdir())  # refused before anything ran, pipeline.json included


def test_plan_command_prints_stages_totals_and_assumptions(plan, tmp_path):
    result = CliRunner().invoke(app, ["plan", str(EXPERIMENT), "--cluster", str(AWS), "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("critical path", "wall time with parallel: 4", "GPU hours", "does not fit: stage 'contamination'",
                 "Assumptions:", "training MFU 40%", "p5.48xlarge: 8 x H100-80GB", "mistralai/Mistral-7B-v0.1"):
        assert text in out, text


def test_dry_run_shows_the_plan_columns(tmp_path):
    result = CliRunner().invoke(app, ["pipeline", str(EXPERIMENT), "--dry-run", "--cluster", str(AWS),
                                      "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ synth_math"))
    assert "8 GPU" in row and "train_8xh100 x1" in row and "yes" in row
