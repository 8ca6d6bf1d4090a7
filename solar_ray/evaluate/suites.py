"""The benchmark registry: eval suites by name, and per leaderboard v1 task what every module needs to know.

A `TaskSpec` says which of lm-eval's own task YAMLs to `include`, where the benchmark's local files live
(`DATA_DIR/<folder>/<split>.jsonl`, the tiny world's layout), the leaderboard shots, which metric key of
lm-eval's results is the headline, which split is scored (`eval_split`), and, per row of that split, the gold
answer (`gold_index`, `gold_text`: question + gold answer as a reader sees it) and what a uniform guess scores
(`item_chance`). `mmlu` stands for every `mmlu_<subject>` whose subject appears in the data.
Decontamination (data/decontam.py), the contamination test (evaluate/contamination.py) and the report's chance
row (evaluate/chance.py) read benchmarks only through these, so they cannot disagree on a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskSpec:
    name: str                      # headline name in tables: ARC, HellaSwag, MMLU, TruthfulQA, Winogrande, GSM8K
    lm_eval_yaml: str              # path inside lm_eval/tasks/ of the task YAML our YAML includes
    folder: str                    # DATA_DIR/<folder>/<split>.jsonl
    splits: dict[str, str]         # lm-eval split role -> split name (file stem); roles as in lm-eval's YAML keys
    needed: tuple[str, ...]        # split roles that must have a file (evaluated split + few-shot source)
    fields: tuple[str, ...]        # fields lm-eval's prompts read
    shots: int
    metric: str                    # key in lm-eval's results, e.g. "acc_norm,none"
    choices: int                   # requests per item (for scheduling: the cost estimate)
    generates: bool = False        # scored on generated text (lm-eval generates up to LM_EVAL_MAX_GEN_TOKS tokens)

    @property
    def eval_split(self) -> str:
        """The split lm-eval scores: test where the task has one, else validation."""
        return self.splits.get("test_split") or self.splits["validation_split"]


TASKS: dict[str, TaskSpec] = {
    "arc_challenge": TaskSpec(
        "ARC", "arc/arc_challenge.yaml", "arc_challenge",
        {"training_split": "train", "validation_split": "validation", "test_split": "test"},
        ("training_split", "test_split"), ("question", "choices", "answerKey"), 25, "acc_norm,none", 4),
    "hellaswag": TaskSpec(
        "HellaSwag", "hellaswag/hellaswag.yaml", "hellaswag",
        {"training_split": "train", "validation_split": "validation"},
        ("training_split", "validation_split"), ("ctx_a", "ctx_b", "activity_label", "endings", "label"), 10,
        "acc_norm,none", 4),
    "mmlu": TaskSpec(
        "MMLU", "mmlu/default/_default_template_yaml", "mmlu",
        {"fewshot_split": "dev", "test_split": "test"},
        ("fewshot_split", "test_split"), ("question", "subject", "choices", "answer"), 5, "acc,none", 4),
    "truthfulqa_mc2": TaskSpec(
        "TruthfulQA", "truthfulqa/truthfulqa_mc2.yaml", "truthfulqa_mc",
        {"validation_split": "validation"},
        ("validation_split",), ("question", "mc1_targets", "mc2_targets"), 0, "acc,none", 6),
    "winogrande": TaskSpec(
        "Winogrande", "winogrande/default.yaml", "winogrande",
        {"training_split": "train", "validation_split": "validation"},
        ("training_split", "validation_split"), ("sentence", "option1", "option2", "answer"), 5, "acc,none", 2),
    "gsm8k": TaskSpec(
        "GSM8K", "gsm8k/gsm8k.yaml", "gsm8k",
        {"training_split": "train", "test_split": "test"},
        ("training_split", "test_split"), ("question", "answer"), 5, "exact_match,strict-match", 24, generates=True),
}

LM_EVAL_MAX_GEN_TOKS = 256  # lm-eval's generation budget where a task's YAML sets none (gsm8k's)

# The six leaderboard v1 tasks; H6 is their mean. Smaller suites for quick checks.
SUITES: dict[str, tuple[str, ...]] = {
    "h6": ("arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k"),
    "h6_mc": ("arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande"),  # no generation: fastest
    "arc": ("arc_challenge",),
    "mmlu": ("mmlu",),
}
H6 = SUITES["h6"]
LETTERS = "ABCDEFGHIJ"


def task_of_folder(folder: str) -> str | None:
    """Task key whose files live in DATA_DIR/<folder> (e.g. truthfulqa_mc -> truthfulqa_mc2), or None."""
    return next((key for key, spec in TASKS.items() if spec.folder == folder), None)


def _choice_index(answer: Any) -> int:
    """An answer given as an index (0, "2") or a letter ("B"), as upstream mirrors of MMLU and ARC vary."""
    text = str(answer).strip()
    return int(text) if text.isdigit() else LETTERS.index(text.upper())


def answer_choices(key: str, row: dict[str, Any]) -> list[str]:
    """The texts a multiple-choice item offers (GSM8K: none)."""
    if key == "arc_challenge":
        return list(row["choices"]["text"])
    if key == "hellaswag":
        return list(row["endings"])
    if key == "mmlu":
        return list(row["choices"])
    if key == "truthfulqa_mc2":
        return list(row["mc2_targets"]["choices"])
    if key == "winogrande":
        return [row["option1"], row["option2"]]
    if key == "gsm8k":
        return []
    raise KeyError(f"unknown task {key!r}")


def gold_index(key: str, row: dict[str, Any]) -> int:
    """Index of the right answer among `answer_choices` (TruthfulQA: mc1's first true answer)."""
    if key == "arc_challenge":
        labels = list(row["choices"]["label"])
        return labels.index(row["answerKey"]) if row["answerKey"] in labels else _choice_index(row["answerKey"])
    if key == "hellaswag":
        return int(row["label"])
    if key == "mmlu":
        return _choice_index(row["answer"])
    if key == "truthfulqa_mc2":
        return list(row["mc1_targets"]["labels"]).index(1)
    if key == "winogrande":
        return int(row["answer"]) - 1
    raise KeyError(f"task {key!r} has no answer choices")


def gold_text(key: str, row: dict[str, Any]) -> str:
    """Question + gold answer as a reader of the benchmark sees it (what training data must not contain).
    Raises KeyError, ValueError, IndexError or TypeError for a row that lacks them."""
    if key == "arc_challenge":
        return f"{row['question']} {answer_choices(key, row)[gold_index(key, row)]}"
    if key == "hellaswag":  # lm-eval's context: ctx_a + ctx_b (capitalised), then the ending
        context = f"{row['ctx_a']} {row['ctx_b'].capitalize()}".strip()
        return f"{context} {row['endings'][gold_index(key, row)]}"
    if key == "mmlu":
        return f"{row['question']} {row['choices'][gold_index(key, row)]}"
    if key == "truthfulqa_mc2":
        return f"{row['question']} {row['mc1_targets']['choices'][gold_index(key, row)]}"
    if key == "winogrande":
        return row["sentence"].replace("_", answer_choices(key, row)[gold_index(key, row)])
    if key == "gsm8k":
        return f"{row['question']} {row['answer']}"
    raise KeyError(f"unknown task {key!r}")


def item_chance(key: str, row: dict[str, Any]) -> float:
    """Expected headline score of one item when every answer choice is equally likely (GSM8K's generated
    number: 0; TruthfulQA mc2, the probability mass on true answers: the share of true answers)."""
    if key == "gsm8k":
        return 0.0
    if key == "truthfulqa_mc2":
        labels = list(row["mc2_targets"]["labels"])
        return sum(labels) / len(labels)
    return 1 / len(answer_choices(key, row))


Limit = int | dict[str, int | None] | None  # items per task: one number for all, or per task key (`default`: the
# rest); None: every item


def task_limit(limit: Limit, key: str) -> int | None:
    """Items scored of task `key` (a TASKS key; an lm-eval `mmlu_<subject>` counts as `mmlu`) under `limit`:
    the number itself, or the mapping's entry for the task, else its `default`; None = every item."""
    if not isinstance(limit, dict):
        return limit
    key = "mmlu" if key.startswith("mmlu_") else key
    return limit.get(key, limit.get("default"))


def check_limit(limit: Limit, source: str = "limit") -> Limit:
    """A per-task `limit` names only known tasks (or `default`) and positive counts; a task's None (YAML null)
    scores its every item."""
    if isinstance(limit, dict):
        unknown = sorted(set(limit) - set(TASKS) - {"default"})
        if unknown:
            raise ValueError(f"{source}: unknown task {unknown[0]!r}; known: default, {', '.join(TASKS)}")
    counts = limit.values() if isinstance(limit, dict) else [limit]
    if any(count is not None and count < 1 for count in counts):
        raise ValueError(f"{source}: items per task must be at least 1")
    return limit


def resolve_tasks(names: str | list[str] | tuple[str, ...], source: str = "tasks") -> list[str]:
    """A suite name, a task name, or a list of either -> task keys of TASKS (order kept, no duplicates)."""
    from solar_ray.errors import ConfigError

    items = [names] if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in items:
        if item in SUITES:
            keys = SUITES[item]
        elif item in TASKS:
            keys = (item,)
        else:
            known = ", ".join([*SUITES, *TASKS])
            raise ConfigError(f"{source}: unknown task or suite {item!r}; known: {known}")
        out.extend(k for k in keys if k not in out)
    if not out:
        raise ConfigError(f"{source}: no tasks given; use a suite ({', '.join(SUITES)}) or task names")
    return out
