"""Acceptance on the tiny world's base: up-scale with the default M = n/4, load, generate; seam report on the
world's own pretrain validation text. Runs once solar_ray.tiny.build (the tiny world) is in the tree."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("solar_ray.tiny.build", reason="the tiny world (solar_ray/tiny/build.py) has not landed yet")


def test_tiny_world_upscale_generate_and_seam(tiny_world, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from solar_ray.upscale.seam import seam_report
    from solar_ray.upscale.stage import Config, run

    base = tiny_world / "base"
    n = json.loads((base / "config.json").read_text())["num_hidden_layers"]
    out = run(Config(base=str(base), output=str(tmp_path / "up")))
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.num_hidden_layers == 2 * (n - n // 4)
    prompt = tok.apply_chat_template([{"role": "user", "content": "hello"}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    with torch.no_grad():
        generated = model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 4 or tok.eos_token_id in generated[0].tolist()

    report, rows = seam_report(base, tmp_path / "seam", limit=8)
    assert len(rows) == (n - 1) // 2
    assert "data/pretrain/validation.jsonl" in (report / "report.md").read_text()
    assert all(-1.0 <= r["cosine"] <= 1.0 for r in rows)
