"""Acceptance on the tiny world's base: up-scale with the default M = n/4, load, generate; seam report on the
world's own pretrain validation text, each seam cosine checked against one computed here from the base's hidden
states."""

from __future__ import annotations

import json

import pytest
import torch


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
        generated = model.generate(**prompt, min_new_tokens=4, max_new_tokens=4, do_sample=False)
        logits = model(**prompt).logits
    assert generated.shape[1] == prompt["input_ids"].shape[1] + 4
    assert torch.isfinite(logits).all() and int(generated.max()) < model.config.vocab_size

    report, rows = seam_report(base, tmp_path / "seam", limit=8)
    assert len(rows) == (n - 1) // 2
    assert "data/pretrain/validation.jsonl" in (report / "report.md").read_text()
    assert [r["drop"] for r in rows] == list(range(1, (n - 1) // 2 + 1))
    assert [r["cosine"] for r in rows] == pytest.approx(expected_seams(base, n), abs=2e-4)


def expected_seams(base, n: int) -> list[float]:
    """seam(M) from the base's own hidden states: token-mean cosine of the states entering layers n-M and M."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from solar_ray.upscale.seam import calibration_texts

    texts, _ = calibration_texts(base, None, 8)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(base)
    states = []
    with torch.no_grad():
        for text in texts:
            ids = tok(text, return_tensors="pt", truncation=True, max_length=128)["input_ids"]
            states.append(model(input_ids=ids, output_hidden_states=True).hidden_states)
    return [
        round(torch.cat([torch.nn.functional.cosine_similarity(h[n - m][0], h[m][0], dim=-1) for h in states])
              .mean().item(), 4)
        for m in range(1, (n - 1) // 2 + 1)
    ]
