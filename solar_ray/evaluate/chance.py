"""What guessing scores on each leaderboard task: the level a score table is read against.

A tiny model can sit at chance on a task (it has not learnt what the task asks), and then differences between
models are noise whatever their size; the report prints this row under each table so that shows.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from solar_ray.evaluate.suites import H6, TASKS, Limit, item_chance, task_limit
from solar_ray.evaluate.tasks import read_rows


def chance_scores(data_dir: str | Path, limit: Limit = None) -> dict[str, float]:
    """Per H6 task (table names, lower case) and `h6`: a uniform guess's expected score in %, over the items an
    evaluation with this `limit` scores (lm-eval's evaluated split: test, else validation; MMLU per subject,
    then the plain mean over subjects, as H6 takes it). Tasks without a file under `data_dir` are left out, and
    then so is `h6`."""
    out = {}
    for key in H6:
        spec = TASKS[key]
        path = Path(data_dir) / spec.folder / f"{spec.eval_split}.jsonl"
        if not path.is_file():  # an evaluation of fewer tasks
            continue
        rows, limit_here = read_rows(path), task_limit(limit, key)
        if key == "mmlu":
            by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in rows:
                by_subject[row["subject"]].append(row)
            per_subject = [_mean([item_chance(key, r) for r in items[:limit_here]]) for items in by_subject.values()]
            value = _mean(per_subject)
        else:
            value = _mean([item_chance(key, row) for row in rows[:limit_here]])
        out[spec.name.lower()] = 100 * value
    if len(out) == len(H6):
        out["h6"] = _mean(list(out.values()))
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
