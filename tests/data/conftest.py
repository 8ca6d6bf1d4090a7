"""Hand-made rows in the upstream schemas: small enough to reason about, shaped like the tiny world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# One FLAN task per Table 8 entry, spelled the way the FLAN collection does, plus tasks that must be kept.
FLAN_TASKS = {
    "flan2021": ["ai2_arc/ARC-Challenge:1.0.0", "ai2_arc/ARC-Easy:1.0.0", "hellaswag:1.1.0", "drop:2.0.0",
                 "winogrande:1.1.0", "glue/sst2:2.0.0", "squad/v1.1:3.0.0"],
    "niv2": ["task228_arc_answer_generation_easy", "task229_arc_answer_generation_hard",
             "task1389_hellaswag_completion", "task001_quoref_question_generation"],
    "cot": ["cot_gsm8k", "cot_gsm8k_ii", "cot_esnli"],
    "t0": ["adversarial_qa_dbert_answer_the_following_q"],
}
PREFIX = {"flan2021": "flan", "niv2": "niv", "cot": "cot", "t0": "t0"}
ROWS_PER_TASK = 3
# A GSM8K test item planted verbatim in one Alpaca row; a second Alpaca row copies only 12 of its words.
GSM8K_QUESTION = "Tom the baker sells seven loaves of rye bread each morning and buys three sacks of flour"
GSM8K_ANSWER = "He sells 7 loaves.\n#### 7"
NEAR_MISS = "the baker sells seven loaves of rye bread each morning and buys"  # 12 of its words


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def build_world(root: Path) -> Path:
    data = root / "data"
    orca, counter = [], 0
    for submix, tasks in FLAN_TASKS.items():
        flan_rows = []
        for task in tasks:
            for k in range(ROWS_PER_TASK):
                question = f"Question {k} of {task.replace('/', ' ')}: what  is   the answer?"
                flan_rows.append({"inputs": question, "targets": f"answer {k}", "_template_idx": 0,
                                  "_task_source": submix, "_task_name": task, "_template_type": "zs_opt"})
                counter += 1
                # OpenOrca copies the question with different case/spacing; the id names only the sub-mixture.
                orca.append({"id": f"{PREFIX[submix]}.{counter}", "system_prompt": "You are helpful.",
                             "question": "  " + question.upper().replace("  ", " "), "response": f"Answer {k}."})
        write_jsonl(data / "flan_collection" / submix / "train.jsonl", flan_rows)
    # Rows whose task cannot be recovered: the question is not in FLAN, or the id has no known prefix.
    orca.append({"id": "flan.9001", "system_prompt": "", "question": "An unseen question?", "response": "Yes."})
    orca.append({"id": "other.1", "system_prompt": "", "question": "Another unseen question?", "response": "No."})
    write_jsonl(data / "open_orca" / "train.jsonl", orca)

    alpaca = [{"instruction": f"Say the number {i}.", "input": "" if i % 2 else f"number {i}", "output": f"{i}"}
              for i in range(40)]
    alpaca.append({"instruction": "Solve this.", "input": GSM8K_QUESTION, "output": GSM8K_ANSWER})
    alpaca.append({"instruction": "Solve this.", "input": NEAR_MISS, "output": "ok"})
    write_jsonl(data / "alpaca_gpt4" / "train.jsonl", alpaca)

    bench = data / "benchmarks"
    write_jsonl(bench / "gsm8k" / "test.jsonl", [{"question": GSM8K_QUESTION, "answer": GSM8K_ANSWER}])
    write_jsonl(bench / "arc_challenge" / "test.jsonl", [
        {"id": "a1", "question": "Which planet in our solar system is known as the red planet by most people?",
         "choices": {"text": ["Mars", "Venus"], "label": ["A", "B"]}, "answerKey": "A"}])
    write_jsonl(bench / "winogrande" / "validation.jsonl", [
        {"sentence": "The trophy did not fit into the suitcase because the _ was far too large for it.",
         "option1": "trophy", "option2": "suitcase", "answer": "1"}])
    write_jsonl(data / "orca_dpo_pairs" / "train.jsonl", [
        {"system": "", "question": f"Is {i} even?", "chosen": "yes" if i % 2 == 0 else "no",
         "rejected": "no" if i % 2 == 0 else "yes"} for i in range(20)])
    return root


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    return build_world(tmp_path_factory.mktemp("handmade"))
