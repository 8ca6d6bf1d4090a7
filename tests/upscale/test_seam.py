"""Seam diagnostics: cosine per candidate M, parameter counts that match real up-scaling, report files."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from solar_ray.errors import DataError
from solar_ray.upscale.seam import BUILTIN_TEXTS, calibration_texts, seam_report
from solar_ray.upscale.stage import Config, run


def test_seam_report_files_and_values(llama_base, tmp_path):
    out, rows = seam_report(llama_base, tmp_path / "seam", limit=4)
    assert [r["drop"] for r in rows] == [1, 2, 3] and [r["layers"] for r in rows] == [14, 12, 10]
    assert {p.name for p in out.iterdir()} == {"report.md", "seam.csv", "seam.png"}
    assert (out / "seam.png").read_bytes()[:4] == b"\x89PNG"
    with (out / "seam.csv").open() as fh:
        assert [int(r["drop"]) for r in csv.DictReader(fh)] == [1, 2, 3]
    assert "| 2 | 12 | 5 -> 2 |" in (out / "report.md").read_text()

    # M=2 by hand: cosine between the hidden state leaving base layer 5 and the one entering base layer 2
    model = AutoModelForCausalLM.from_pretrained(llama_base).eval()
    tok = AutoTokenizer.from_pretrained(llama_base)
    total, count = 0.0, 0
    with torch.no_grad():
        for text in BUILTIN_TEXTS[:4]:
            h = model(**tok(text, return_tensors="pt"), output_hidden_states=True).hidden_states
            total += torch.nn.functional.cosine_similarity(h[6][0], h[2][0], dim=-1).sum().item()
            count += h[0].shape[1]
    assert rows[1]["cosine"] == pytest.approx(total / count, abs=1e-4)

    # parameter counts from headers equal what up-scaling writes
    up = run(Config(base=str(llama_base), output=str(tmp_path / "up"), drop=3))
    lineage = json.loads((up / "lineage.json").read_text())
    assert rows[2]["params"] == lineage["metrics"]["params_after"]


def test_calibration_text_sources(llama_base, tmp_path):
    lines = tmp_path / "texts.txt"
    lines.write_text("the fox\n\nthe dog runs\n")
    assert calibration_texts(llama_base, lines, 10) == (["the fox", "the dog runs"], str(lines))
    rows = tmp_path / "texts.jsonl"
    rows.write_text('{"text": "a fox"}\n{"txt": "oops"}\n')
    with pytest.raises(DataError, match=r"texts.jsonl:2: expected a JSON object with a 'text' field"):
        calibration_texts(llama_base, rows, 10)
    # a tiny world keeps its pretrain validation split next to its base
    world_split = tmp_path / "world" / "data" / "pretrain" / "validation.jsonl"
    world_split.parent.mkdir(parents=True)
    world_split.write_text('{"text": "the quick fox"}\n{"text": "a lazy dog"}\n')
    assert calibration_texts(tmp_path / "world" / "base", None, 1) == (["the quick fox"], str(world_split))
    assert calibration_texts(llama_base, None, 2)[1] == "built-in sentences"


def test_seam_needs_a_tokenizer(qwen2_base, tmp_path):
    from solar_ray.errors import ArtifactError

    with pytest.raises(ArtifactError, match="no tokenizer"):
        seam_report(qwen2_base, tmp_path / "seam")
    assert not (tmp_path / "seam").exists()
