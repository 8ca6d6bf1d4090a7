"""Paired comparisons of two models' scores: every model answers the same benchmark items, so a difference's
standard error comes from the per-item differences, not from two independent standard errors.

Two models' per-item scores on a task are strongly correlated (easy items are easy for both); the variance of a
difference of means is var(a) + var(b) - 2 cov(a, b), which the independent formula sqrt(se_a^2 + se_b^2)
overstates by the covariance term. Paired: d_i = a_i - b_i, se = sd(d) / sqrt(n).

A headline score is a weighted mean over strata of items: one stratum for most tasks, one per subject for MMLU
(the plain mean over subjects), and for H6 each task's strata at 1/6 of its weight. The difference is the same
weighted mean of the strata's mean differences, and its variance the sum of weight^2 * var(d_s) / n_s over
strata (per-benchmark paired differences combined, the strata being independent samples).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from solar_ray.errors import DataError
from solar_ray.evaluate.suites import H6, TASKS

Z_DIFFERENCE = 1.96  # a two-sided 95% interval: a difference counts when it excludes zero
Z_EQUIVALENCE = 1.645  # a 90% interval inside +-margin: equivalence at the 5% level (two one-sided tests)
Z_POWER = 0.8416  # 80% power: a true difference of (Z_DIFFERENCE + Z_POWER) se is found 4 times in 5

Summary = dict[str, dict[str, Any]]  # scores.summarize's output for one model


def metric_name(metric: str) -> str:
    """Report metric (arc, mmlu, h6, ...) -> summary key (ARC, MMLU, H6, ...)."""
    if metric.lower() == "h6":
        return "H6"
    for key in H6:
        if TASKS[key].name.lower() == metric.lower():
            return TASKS[key].name
    raise DataError(f"unknown metric {metric!r}; expected h6 or one of {', '.join(TASKS[k].name.lower() for k in H6)}")


def strata(summary: Summary, metric: str, model: str = "model") -> dict[str, tuple[float, dict[str, list]]]:
    """Stratum (lm-eval task name) -> (weight in the headline score, {"ids", "values"}) for one model."""
    tasks = _benchmarks(metric)
    out = {}
    for task in tasks:
        entry = summary.get(task)
        if entry is None:
            raise DataError(f"{model}: no {task} score, so no paired {metric} difference")
        items = entry.get("items")
        if not items:
            raise DataError(f"{model}: the {task} score has no per-item results (an eval artifact written before "
                            "per-item scores were kept: run the eval stage again)")
        for stratum, scores in items.items():
            out[stratum] = (1 / len(tasks) / len(items), scores)
    return out


def stratum_tasks(summary: Summary, metric: str) -> dict[str, str]:
    """Stratum (lm-eval task name) -> the benchmark it belongs to (ARC, MMLU, ...), for one model's summary."""
    return {stratum: task for task in _benchmarks(metric) for stratum in (summary.get(task) or {}).get("items", {})}


def _benchmarks(metric: str) -> list[str]:
    """The summary keys a metric averages: H6's six benchmarks, or the one named."""
    name = metric_name(metric)
    return [TASKS[key].name for key in H6] if name == "H6" else [name]


def paired_difference(a: Summary, b: Summary, metric: str, names: tuple[str, str] = ("a", "b")) -> tuple[float, float]:
    """(score of a - score of b, its paired standard error), as fractions. Raises DataError when the models did not
    answer the same items, or a stratum has fewer than two items (no variance to estimate)."""
    return pooled_difference([(a, b)], metric, [names])


def pooled_difference(pairs: list[tuple[Summary, Summary]], metric: str,
                      names: list[tuple[str, str]]) -> tuple[float, float]:
    """The mean over runs of (score of a - score of b) and its standard error, for runs that scored the same items
    (one experiment's seeds): each item's difference is averaged over the runs before its variance is taken. The
    error holds the items' spread and how each item moves between runs, with the runs taken as they are: a shift
    of a whole run (every item at once) is not in it, so it says what these runs show together, not what another
    seed would. One pair is `paired_difference`."""
    return _weighted_mean(_item_differences(pairs, metric, names))


def noise_shares(pairs: list[tuple[Summary, Summary]], metric: str, names: list[tuple[str, str]]) -> dict[str, float]:
    """Benchmark -> its share of the variance of `pooled_difference` (the shares sum to 1; empty where the
    difference has no variance): whose item-by-item flips make a headline difference's error, so which benchmark
    more items would sharpen."""
    tasks = stratum_tasks(pairs[0][0], metric)
    shares: dict[str, float] = {}
    for stratum, (weight, values) in _item_differences(pairs, metric, names).items():
        variance = weight ** 2 * statistics.variance(values) / len(values) if len(values) > 1 else 0.0
        shares[tasks[stratum]] = shares.get(tasks[stratum], 0.0) + variance
    total = sum(shares.values())
    return {task: share / total for task, share in shares.items()} if total > 0 else {}


def _item_differences(pairs: list[tuple[Summary, Summary]], metric: str,
                      names: list[tuple[str, str]]) -> dict[str, tuple[float, list[float]]]:
    """Stratum -> (weight, each item's a - b averaged over the runs)."""
    items = _same_items([x for pair in pairs for x in pair], metric, [n for pair in names for n in pair])
    return {stratum: (weight, [statistics.fmean(column[i] - column[i + 1] for i in range(0, len(column), 2))
                               for column in zip(*runs, strict=True)])
            for stratum, (weight, runs) in items.items()}


def pooled_score(summaries: list[Summary], metric: str, names: list[str]) -> tuple[float, float]:
    """One model's score over runs of the same items, each item's score averaged over the runs, and its standard
    error (as fractions)."""
    items = _same_items(summaries, metric, names)
    return _weighted_mean({stratum: (weight, [statistics.fmean(column) for column in zip(*runs, strict=True)])
                           for stratum, (weight, runs) in items.items()})


def _same_items(summaries: list[Summary], metric: str, names: list[str]) -> dict[str, tuple[float, list[list[float]]]]:
    """Stratum -> (weight, each summary's per-item values), after checking every summary answered the first's
    tasks and items."""
    first = strata(summaries[0], metric, names[0])
    out = {stratum: (weight, [items["values"]]) for stratum, (weight, items) in first.items()}
    for summary, name in zip(summaries[1:], names[1:], strict=True):
        other = strata(summary, metric, name)
        if set(other) != set(first):
            raise DataError(f"{names[0]} and {name} were scored on different tasks: {sorted(set(first) ^ set(other))}")
        for stratum, (_, items) in other.items():
            ids = first[stratum][1]["ids"]
            if items["ids"] != ids:
                counts = (f"{len(ids)} vs {len(items['ids'])}" if len(ids) != len(items["ids"])
                          else f"{len(ids)} each, other ids")
                raise DataError(f"{names[0]} and {name} answered different {stratum} items ({counts}); "
                                "a paired comparison needs the same")
            out[stratum][1].append(items["values"])
    return out


def _weighted_mean(per_item: dict[str, tuple[float, list[float]]]) -> tuple[float, float]:
    """The strata's weighted mean of their item means, and its standard error (sum of weight^2 var / n)."""
    mean = var = 0.0
    for stratum, (weight, values) in per_item.items():
        if len(values) < 2:
            raise DataError(f"{stratum}: {len(values)} item(s); a standard error needs at least two")
        mean += weight * statistics.fmean(values)
        var += weight ** 2 * statistics.variance(values) / len(values)
    return mean, math.sqrt(var)
