"""Headline scores from lm-eval results: one metric per task, MMLU as the plain mean over subjects, H6.

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


def summarize(results: dict[str, dict[str, Any]], keys: list[str]) -> dict[str, dict[str, Any]]:
    """lm-eval `results` -> {"ARC": {"task", "metric", "value", "stderr"}, ..., "H6": {...}} (fractions)."""
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
        if key == "mmlu":
            summary[spec.name]["subjects"] = {n.removeprefix("mmlu_"): float(results[n][spec.metric]) for n in names}
    if all(TASKS[k].name in summary for k in H6):
        six = [summary[TASKS[k].name] for k in H6]
        value, stderr = mean_with_stderr([e["value"] for e in six], [e["stderr"] for e in six])
        summary["H6"] = {"task": "h6", "metric": "mean of six", "value": value, "stderr": stderr}
    return summary
