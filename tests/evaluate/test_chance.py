"""The chance row of the report's tables: what a uniform guess scores on the items an evaluation scores."""

from __future__ import annotations

import json
import shutil

import pytest

from solar_ray.evaluate.chance import chance_scores
from solar_ray.report.pipeline_report import score_table


def test_chance_per_task_and_h6(bench_dir):
    chance = chance_scores(bench_dir, limit=12)
    # the fixtures: four choices (ARC, HellaSwag, MMLU), mc2 with one true answer of three, two options
    expected = {"arc": 25.0, "hellaswag": 25.0, "mmlu": 25.0, "truthfulqa": 100 / 3, "winogrande": 50.0, "gsm8k": 0.0}
    assert chance == pytest.approx({**expected, "h6": sum(expected.values()) / 6})


def test_chance_follows_each_item_and_the_limit(bench_dir, tmp_path):
    data = shutil.copytree(bench_dir, tmp_path / "benchmarks")
    path = data / "arc_challenge/test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["choices"] = {"text": ["yes", "no"], "label": ["A", "B"]}  # a two-choice item first
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert chance_scores(data, limit=1)["arc"] == pytest.approx(50.0)
    assert chance_scores(data, limit=2)["arc"] == pytest.approx(37.5)
    assert chance_scores(data, limit={"default": 2, "arc_challenge": 1})["arc"] == pytest.approx(50.0)
    assert chance_scores(data, limit={"default": 1, "winogrande": 5})["arc"] == pytest.approx(50.0)
    (data / "gsm8k/test.jsonl").unlink()  # a task not evaluated: no column, and no H6
    chance = chance_scores(data, limit=2)
    assert "gsm8k" not in chance and "h6" not in chance and chance["winogrande"] == 50.0


def test_score_table_ends_with_the_chance_row():
    scores = {"a": {"arc": (40.0, 5.0), "h6": (40.0, 5.0)}, "b": {"arc": (20.0, 4.0), "h6": (20.0, 4.0)}}
    lines = score_table(scores, ["a", "b"], {"arc": 25.0, "h6": 25.0, "gsm8k": 0.0}).splitlines()
    assert lines[2] == "| a | **40.00 ± 5.00** | **40.00 ± 5.00** |"
    assert lines[-1] == "| _chance (a uniform guess)_ | _25.00_ | _25.00_ |"
    assert len(score_table(scores, ["a", "b"]).splitlines()) == 4  # no chance given: no row


def test_per_task_limits_name_known_tasks():
    from solar_ray.evaluate.suites import check_limit, task_limit

    limit = check_limit({"default": 30, "gsm8k": 60})
    assert task_limit(limit, "gsm8k") == 60 and task_limit(limit, "mmlu_anatomy") == 30
    assert task_limit({"gsm8k": 60}, "winogrande") is None and task_limit(20, "gsm8k") == 20
    with pytest.raises(ValueError, match="unknown task 'gsm8'"):
        check_limit({"gsm8": 60})
    with pytest.raises(ValueError, match="at least 1"):
        check_limit({"default": 0})
    every = check_limit({"default": 30, "gsm8k": None})  # null in YAML: every item of that task
    assert task_limit(every, "gsm8k") is None and task_limit(every, "arc_challenge") == 30
