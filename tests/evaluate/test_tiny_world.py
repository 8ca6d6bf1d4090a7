"""The leaderboard tasks run offline on the tiny world's own benchmark files and base model (in process, with a
live model, as the Tune engineer's merge sweep calls it). GSM8K's generation is covered in test_stage.py."""

from __future__ import annotations

import json


def test_leaderboard_tasks_on_the_tiny_world(tiny_world):
    from solar_ray.artifacts import load_model
    from solar_ray.evaluate.runner import evaluate_model

    model, tokenizer = load_model(tiny_world / "base")  # a live model, as a merge sweep passes it
    data = tiny_world / "data/benchmarks"
    raw: dict = {}
    scores = evaluate_model(model, tokenizer, tasks="h6_mc", limit=2, data_dir=data, raw=raw)
    assert set(scores) == {"ARC", "HellaSwag", "MMLU", "TruthfulQA", "Winogrande"}
    assert all(0 <= value <= 1 for value in scores.values())
    subjects = {json.loads(line)["subject"] for line in (data / "mmlu/test.jsonl").read_text().splitlines()}
    assert {name for name in raw["results"] if name.startswith("mmlu_")} == {f"mmlu_{s}" for s in subjects}
