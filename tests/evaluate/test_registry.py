"""The benchmark registry is the one reader of benchmark rows: decontamination, the contamination test and the
chance row agree with it on every task, whatever form an upstream mirror gives the answer in."""

from __future__ import annotations

import json
import shutil

import pytest

from solar_ray.data.decontam import load_benchmark_texts
from solar_ray.evaluate.chance import chance_scores
from solar_ray.evaluate.contamination import load_examples
from solar_ray.evaluate.suites import H6, TASKS, gold_index, gold_text, item_chance, task_of_folder


def rows_of(bench_dir, key):
    spec = TASKS[key]
    return [json.loads(line) for line in (bench_dir / spec.folder / f"{spec.eval_split}.jsonl").read_text().splitlines()]


def test_eval_split_and_folder_per_task():
    assert {key: TASKS[key].eval_split for key in H6} == {
        "arc_challenge": "test", "hellaswag": "validation", "mmlu": "test", "truthfulqa_mc2": "validation",
        "winogrande": "validation", "gsm8k": "test"}
    assert task_of_folder("truthfulqa_mc") == "truthfulqa_mc2" and task_of_folder("no_such") is None


def test_gold_text_per_schema():
    arc = {"question": "Q?", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "B"}
    assert gold_text("arc_challenge", arc) == "Q? y"
    assert gold_text("arc_challenge", {**arc, "choices": {"text": ["x", "y"], "label": ["1", "2"]}, "answerKey": "2"}) == "Q? y"
    hella = {"ctx_a": "A fox runs.", "ctx_b": "then it", "endings": ["sits.", "eats."], "label": "1"}
    assert gold_text("hellaswag", hella) == "A fox runs. Then it eats."
    wino = {"sentence": "The cat fed the dog because _ was kind.", "option1": "cat", "option2": "dog", "answer": "2"}
    assert gold_text("winogrande", wino) == "The cat fed the dog because dog was kind."
    tqa = {"question": "Q?", "mc1_targets": {"choices": ["no", "yes"], "labels": [0, 1]},
           "mc2_targets": {"choices": ["no", "yes", "sure"], "labels": [0, 1, 1]}}
    assert gold_text("truthfulqa_mc2", tqa) == "Q? yes" and item_chance("truthfulqa_mc2", tqa) == pytest.approx(2 / 3)
    assert gold_text("gsm8k", {"question": "Q?", "answer": "2\n#### 2"}) == "Q? 2\n#### 2"


@pytest.mark.parametrize("answer", [2, "2", "C", "c"])
def test_mmlu_answer_as_index_or_letter_reads_the_same(answer):
    row = {"question": "Q?", "subject": "s", "choices": ["w", "x", "y", "z"], "answer": answer}
    assert gold_index("mmlu", row) == 2 and gold_text("mmlu", row) == "Q? y"


def test_decontamination_contamination_test_and_chance_read_the_registry(bench_dir, tmp_path):
    data = shutil.copytree(bench_dir, tmp_path / "benchmarks")
    mmlu = data / "mmlu" / "test.jsonl"
    rows = [json.loads(line) for line in mmlu.read_text().splitlines()]
    for row in rows[::2]:  # half the rows with letter answers, as some mirrors give them
        row["answer"] = "ABCD"[row["answer"]]
    mmlu.write_text("".join(json.dumps(r) + "\n" for r in rows))
    decontam = load_benchmark_texts(data)
    for key in H6:
        expected = [gold_text(key, row) for row in rows_of(data, key)]
        assert decontam[TASKS[key].folder] == expected, key
    for key in ("arc_challenge", "mmlu", "truthfulqa_mc2", "gsm8k"):
        golds = [gold_text(key, row) for row in rows_of(data, key)]
        drawn = load_examples(data, key, 5)  # a seeded shuffle of the rows: the registry's gold texts, 5 distinct
        assert len(set(drawn)) == 5 and set(drawn) <= set(golds), key
    assert decontam["mmlu"][0].endswith(rows[0]["choices"]["ABCD".index(rows[0]["answer"])])
    arc = rows_of(data, "arc_challenge")
    assert chance_scores(data)["arc"] == pytest.approx(100 * sum(item_chance("arc_challenge", r) for r in arc) / len(arc))
