"""Nothing in training assumes one machine: a run on a simulated two-node Ray cluster (two raylets of 1 CPU each
on this machine; each worker needs 1 CPU, so they land on different nodes). It runs in a subprocess so the
suite's shared Ray session is untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_pretrain_on_a_two_node_cluster(tiny_model, text_dataset, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    out = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, "-m", "tests.train.multinode_run", str(tiny_model), str(text_dataset), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "nodes.json").read_text()) == {"nodes": 2}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if "loss" in row] == [1, 2, 3]
    assert (out / "model.safetensors").is_file()
