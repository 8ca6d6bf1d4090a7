"""The rehearsal end to end, as a user runs it: the paper experiment offline on this machine, sizes changed only.

Every stage of experiments/solar_10_7b/pipeline.yaml runs (fetches from the rehearsal hub, up-scaling with the
Mistral-as-Llama conversion, data with the FLAN filter, Synth. Math, SFT, DPO, the DPO and merge sweeps, merges,
every H6 evaluation, the contamination test) and the report links the sweeps' Tune reports.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from solar_ray.config import read_yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_paper_experiment_rehearses_end_to_end(tmp_path):
    out = tmp_path / "rehearsal"
    env = {k: v for k, v in os.environ.items() if k != "SOLAR_RAY_HUB_MIRROR"}
    env["RAY_ADDRESS"] = "local"  # a Ray of its own, not the suite's or a head someone started on this machine
    proc = subprocess.run(
        [sys.executable, "-m", "solar_ray.cli", "pipeline", "experiments/solar_10_7b/pipeline.yaml", "--rehearse",
         "--output", str(out)], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "every stage ran, in" in proc.stdout
    state = json.loads((out / "pipeline.json").read_text())
    statuses = {name: entry["status"] for name, entry in state["stages"].items()}
    stages = read_yaml(REPO / "experiments" / "solar_10_7b" / "pipeline.yaml")["stages"]
    assert statuses.keys() == stages.keys() and set(statuses.values()) == {"ran"}, statuses
    # Each artifact as on the cluster: a model in safetensors converted to Llama, fetched by id from the hub stand-in.
    dus = json.loads((out / "dus" / "config.json").read_text())
    assert dus["architectures"] == ["LlamaForCausalLM"] and dus["num_hidden_layers"] == 48
    assert "sliding_window" not in dus or dus["sliding_window"] is None
    math = [json.loads(line) for line in (out / "math_seed" / "train.jsonl").read_text().splitlines()]
    assert math and set(math[0]) == {"problem", "level", "type", "solution"}
    assert json.loads((out / "dpo_sweep_cand_1" / "best_config.json").read_text()).keys() == {"beta", "optim.learning_rate"}
    assert json.loads((out / "synth_math" / "report.json").read_text())["counts"]["yield"] >= 0
    report = (out / "report" / "report.md").read_text()
    assert "## Sweeps (Ray Tune)" in report and "[report](../merge_sweep/report.md)" in report
    assert "## Contamination test (Table 9)" in report
