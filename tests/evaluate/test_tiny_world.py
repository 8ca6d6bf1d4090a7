"""The leaderboard tasks run offline on the tiny world's own benchmark files and base model (in process, with a
live model, as the Tune engineer's merge sweep calls it). GSM8K's generation is covered in test_stage.py."""

from __future__ import annotations

import json

import pytest

from solar_ray.evaluate.suites import TASKS


def test_leaderboard_tasks_on_the_tiny_world(tiny_world):
    from solar_ray.artifacts import load_model
    from solar_ray.evaluate.runner import evaluate_model

    model, tokenizer = load_model(tiny_world / "base")  # a live model, as a merge sweep passes it
    data = tiny_world / "data/benchmarks"
    raw: dict = {}
    scores = evaluate_model(model, tokenizer, tasks="h6_mc", limit=2, data_dir=data, raw=raw)
    assert set(scores) == {"ARC", "HellaSwag", "MMLU", "TruthfulQA", "Winogrande"}
    subjects = {json.loads(line)["subject"] for line in (data / "mmlu/test.jsonl").read_text().splitlines()}
    assert {name for name in raw["results"] if name.startswith("mmlu_")} == {f"mmlu_{s}" for s in subjects}

    # Each headline is lm-eval's own metric for its task; MMLU the plain mean of its subjects' accuracies.
    results = raw["results"]
    for key, spec in TASKS.items():
        if spec.name in scores and spec.name != "MMLU":
            assert scores[spec.name] == pytest.approx(results[key][spec.metric]), spec.name
    subject_accs = [results[f"mmlu_{s}"][TASKS["mmlu"].metric] for s in subjects]
    assert scores["MMLU"] == pytest.approx(sum(subject_accs) / len(subject_accs))
    # Two items per task: an accuracy is 0, 1/2 or 1 (TruthfulQA's mc2 is a probability mass, not a count).
    assert all(scores[name] in (0.0, 0.5, 1.0) for name in ("ARC", "HellaSwag", "Winogrande"))
