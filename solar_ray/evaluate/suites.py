"""Eval suites by name, and the lm-eval task definitions they use (Open LLM Leaderboard v1, DESIGN.md s.3).

A `TaskSpec` says which of lm-eval's own task YAMLs to `include`, where the benchmark's local files live
(`DATA_DIR/<folder>/<split>.jsonl`, the tiny world's layout), the leaderboard shots, and which metric key of
lm-eval's results is the headline. `mmlu` stands for every `mmlu_<subject>` whose subject appears in the data.
"""

from __future__ import annotations

from dataclasses import dataclass


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
        ("training_split", "test_split"), ("question", "answer"), 5, "exact_match,strict-match", 24),
}

# The six leaderboard v1 tasks; H6 is their mean. Smaller suites for quick checks.
SUITES: dict[str, tuple[str, ...]] = {
    "h6": ("arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande", "gsm8k"),
    "h6_mc": ("arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande"),  # no generation: fastest
    "arc": ("arc_challenge",),
    "mmlu": ("mmlu",),
}
H6 = SUITES["h6"]


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
