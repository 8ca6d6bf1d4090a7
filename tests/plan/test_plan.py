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
GCP = REPO / "cluster" / "gcp" / "solar-ray.yaml"
KUBERAY = REPO / "cluster" / "kuberay" / "raycluster.yaml"
EXAMPLE = REPO / "solar_ray" / "plan" / "cluster_example.yaml"


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
    # its seeds are MATH's 7,500 train problems, as facts.yaml knows the hub dataset the fetch stage reads
    assert s["synth_math"].workload.work == "7,500 seeds x 24, <= 184M tokens out" and s["synth_math"].hours > 0
    # ZeRO-3 training of 10.7B over 16 GPUs: two p5 nodes
    cpt = s["cpt"]
    assert (cpt.devices, cpt.nodes, cpt.fits) == (16, 2, True) and cpt.memory["weights"] == 2 * 10_731_524_096 / 16
    assert cpt.workload.work.startswith("2.10B tokens, 512,000 seqs")  # 2000 steps x 256 sequences x 4096 tokens
    # the evaluations load bfloat16 weights on GPU (21.5 GB), as the eval stage does: the 48 GB L40S nodes hold them
    assert s["eval_dus"].memory["weights"] == 2 * 10_731_524_096
    assert (s["eval_dus"].node.name, s["eval_dus"].devices, s["eval_dus"].fits) == ("eval_1xl40s", 8, True)
    # the contamination test (device auto) runs on GPUs in bfloat16, one model per GPU (gpus_per_worker: 2): the
    # fuller GPU holds the reference and its KV cache for 100 neighbours of a 200-token example
    c = s["contamination"]
    assert c.memory == pytest.approx({"reference (bfloat16)": 2 * 10_731_524_096,
                                      "neighbour KV cache": 100 * 200 * (2 * 48 * 8 * 128 * 2)})
    assert (c.node.name, c.workload.per_worker, c.devices, c.fits) == ("train_8xh100", 2, 16, True)
    # the critical path runs through Synth. Math (a 72B rephraser, 24 samples a seed); parallel 4 cannot beat it
    assert result.critical_path[:3] == ["rephraser", "synth_math", "data_sft_v3"] and result.problems() == []
    longest = sum(s[n].hours or 0.0 for n in result.critical_path)
    assert longest <= result.makespan <= sum(st.hours or 0.0 for st in s.values())


@pytest.mark.parametrize("spec", [AWS, GCP, KUBERAY, EXAMPLE], ids=lambda p: p.parent.name + "/" + p.name)
def test_the_paper_experiment_fits_every_shipped_cluster(spec, tmp_path):
    """`solar-ray pipeline` checks every stage against the cluster before any runs; the shipped experiment on a
    shipped cluster passes it (it refused the contamination test, sized as float32 CPU actors, before)."""
    pipe = Pipeline(EXPERIMENT, output=str(tmp_path))
    assert make_plan(pipe, load_cluster(spec)).problems() == []
    assert isinstance(pipe.check_fit(pipe.select(), load_cluster(spec)), list)  # no ConfigError


def test_the_pipeline_refuses_a_stage_that_cannot_fit(tmp_path):
    """The contamination test forced onto CPU holds both 10.7B models in float32 in each of its 8 actors, which
    share a 128 GB CPU node."""
    pipe = Pipeline(EXPERIMENT, output=str(tmp_path / "out"))
    pipe.configs["contamination"] = pipe.configs["contamination"].model_copy(update={"device": "cpu"})
    with pytest.raises(ConfigError, match=r"^stage 'contamination': 95.4 GB per actor \(data_cpu_spot memory / actors "
                                          r"on a node\) needed \(reference \(float32\) 42.9 .* limit 16.0 GB$"):
        pipe.run(cluster_spec=load_cluster(AWS))
    assert not (tmp_path / "out").exists()  # refused before anything ran, pipeline.json included


def test_the_contamination_test_is_planned_where_it_would_run(tmp_path):
    """device auto: on GPUs where the cluster has GPU nodes, else CPU actors in float32, as the stage decides at
    run time; with one GPU an actor holds everything on it, which a 48 GB L40S cannot."""
    (tmp_path / "cpu.yaml").write_text("node_types:\n  cpu: {cpus: 64, memory_gb: 1024, count: 2}\n")
    pipe = Pipeline(EXPERIMENT, output=str(tmp_path / "out"))
    on_cpu = make_plan(pipe, load_cluster(tmp_path / "cpu.yaml")).stages["contamination"]
    assert (on_cpu.workload.device, on_cpu.devices) == ("cpu", 8)  # the config's 8 actors
    assert on_cpu.memory["model (float32)"] == 4 * 10_731_524_096
    assert (round(on_cpu.need / 1e9, 1), on_cpu.limit, on_cpu.fits) == (95.4, 1024e9 / 8, True)  # a node's share
    # one GPU per actor: both models, the KV cache and a scoring batch's logits (bf16 and a float32 copy) on it
    one = pipe.configs["contamination"].model_copy(update={"gpus_per_worker": 1, "workers": None})
    pipe.configs["contamination"] = one
    c = make_plan(pipe, load_cluster(AWS)).stages["contamination"]
    assert c.memory == pytest.approx({"reference (bfloat16)": 2 * 10_731_524_096, "model (bfloat16)": 2 * 10_731_524_096,
                                      "neighbour KV cache": 100 * 200 * (2 * 48 * 8 * 128 * 2),
                                      "scoring logits": 32 * 200 * 32_000 * (2 + 4)})
    assert (c.node.name, c.workload.per_worker, c.devices) == ("train_8xh100", 1, 16)
    assert "not on eval_1xl40s: 48.1 GB per GPU (L40S-48GB) needed (reference (bfloat16) 21.5 + neighbour KV cache " \
        "3.9 + model (bfloat16) 21.5 + scoring logits 1.2), limit 48.0 GB" in c.workload.notes


def test_plan_command_prints_stages_totals_and_assumptions(plan, tmp_path):
    result = CliRunner().invoke(app, ["plan", str(EXPERIMENT), "--cluster", str(AWS), "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    for text in ("critical path", "wall time with parallel: 4", "GPU hours", "Assumptions:", "training MFU 40%",
                 "p5.48xlarge: 8 x H100-80GB", "mistralai/Mistral-7B-v0.1"):
        assert text in out, text
    assert "does not fit" not in out


def test_dry_run_shows_the_plan_columns(tmp_path):
    result = CliRunner().invoke(app, ["pipeline", str(EXPERIMENT), "--dry-run", "--cluster", str(AWS),
                                      "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ synth_math"))
    assert "8 GPU" in row and "train_8xh100 x1" in row and "yes" in row
