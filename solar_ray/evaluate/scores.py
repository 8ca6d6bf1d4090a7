"""Headline scores from lm-eval results: one metric per task, MMLU as the plain mean over subjects, H6; and each
item's score, so two models' scores on the same items can be compared pair by pair (evaluate/stats.py).

MMLU follows the leaderboard: the unweighted mean of the subjects' accuracies (not lm-eval's size-weighted
group mean); its stderr combines the subjects' as sqrt(sum se_i^2) / k. H6's stderr likewise combines the six.
"""

from __future__ import annotations

import math
from typing import Any

from solar_ray.evaluate.suites import H6, TASKS


def _stderr(entry: dict[str, Any], metric: str) -> float | None:
    name, _, filt = metric.partition(",")
    value = entry.get(f"{name}_stderr,{filt}")
    return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else None


def mean_with_stderr(values: list[float], stderrs: list[float | None]) -> tuple[float, float | None]:
    mean = sum(values) / len(values)
    if any(se is None for se in stderrs):
        return mean, None
    return mean, math.sqrt(sum(se * se for se in stderrs)) / len(values)  # type: ignore[operator]


def spec_of(task_name: str):
    """The registry's TaskSpec of an lm-eval task name (mmlu_<subject> -> mmlu)."""
    return TASKS["mmlu" if task_name.startswith("mmlu_") else task_name]


def item_scores(samples: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, list]]:
    """lm-eval's logged samples -> per task {"ids": [item hash], "values": [headline score]}, by doc_id.
    The hash (lm-eval's doc_hash, shortened) lets a comparison check that two models answered the same items."""
    out = {}
    for task_name, rows in samples.items():
        name, _, filt = spec_of(task_name).metric.partition(",")
        chosen = sorted((r for r in rows if r.get("filter", filt) == filt and name in r), key=lambda r: r["doc_id"])
        out[task_name] = {"ids": [str(r.get("doc_hash", r["doc_id"]))[:16] for r in chosen],
                          "values": [float(r[name]) for r in chosen]}
    return out


def summarize(results: dict[str, dict[str, Any]], keys: list[str],
              items: dict[str, dict[str, list]] | None = None) -> dict[str, dict[str, Any]]:
    """lm-eval `results` -> {"ARC": {"task", "metric", "value", "stderr", "items"}, ..., "H6": {...}} (fractions).
    `items` (`item_scores`' output), when given, is kept per task: {lm-eval task name: {"ids", "values"}}."""
    from solar_ray.errors import DataError

    summary: dict[str, dict[str, Any]] = {}
    for key in keys:
        spec = TASKS[key]
        names = sorted(n for n in results if n.startswith("mmlu_")) if key == "mmlu" else [key]
        entries = [results[n] for n in names if n in results and spec.metric in results[n]]
        if not entries:
            raise DataError(f"lm-eval results lack {spec.metric!r} for task {key}; got tasks {sorted(results)}")
        value, stderr = mean_with_stderr([float(e[spec.metric]) for e in entries],
                                         [_stderr(e, spec.metric) for e in entries])
        summary[spec.name] = {"task": key, "metric": spec.metric, "value": value, "stderr": stderr}
        if items is not None:
            summary[spec.name]["items"] = {n: items[n] for n in names if n in items}
        if key == "mmlu":
            summary[spec.name]["subjects"] = {n.removeprefix("mmlu_"): float(results[n][spec.metric]) for n in names}
    if all(TASKS[k].name in summary for k in H6):
        six = [summary[TASKS[k].name] for k in H6]
        value, stderr = mean_with_stderr([e["value"] for e in six], [e["stderr"] for e in six])
        summary["H6"] = {"task": "h6", "metric": "mean of six", "value": value, "stderr": stderr}
    return summary
