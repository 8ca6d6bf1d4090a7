"""Counting what happened to every row, without gathering rows: per-batch value counts, summed in the driver.

report.json (one entry per source):
    {"dataset", "input", "rows_read", "valid", "rejected": {reason: n}, "available", "cap", "used",
     "flan": {"tasks": {task: {"kept": n, "dropped": n}}, "unrecovered": n},   (sources the FLAN filter ran on)
     "contaminated": {benchmark: n}}
"""

from __future__ import annotations

from collections import Counter

from solar_ray.data.decontam import CONTAMINATED
from solar_ray.data.flan_filter import FLAN_OVERLAP

COUNT_KEYS = ("reason", "flan_task", "benchmark")
FILTER_REASONS = (FLAN_OVERLAP, CONTAMINATED)  # quarantined by a filter, not because the row was malformed


def count_batch(batch):
    """map_batches fn: one row per distinct (reason, flan_task, benchmark) in the batch, with its count."""
    return batch.select(list(COUNT_KEYS)).group_by(list(COUNT_KEYS)).aggregate([([], "count_all")])


def sum_counts(dataset) -> Counter:
    """(reason, flan_task, benchmark) -> rows, over a processed dataset."""
    totals: Counter = Counter()
    for batch in dataset.map_batches(count_batch, batch_format="pyarrow").iter_batches(batch_format="pyarrow"):
        for row in batch.to_pylist():
            totals[tuple(row[key] for key in COUNT_KEYS)] += row["count_all"]
    return totals


def summarise_source(counts: Counter, flan_filtered: bool) -> dict:
    """Report entry for one source from its counts (before capping)."""
    rejected: Counter = Counter()
    contaminated: Counter = Counter()
    tasks: dict[str, dict[str, int]] = {}
    unrecovered = 0
    for (reason, flan_task, benchmark), rows in counts.items():
        if reason is not None:
            rejected[reason] += rows
        if reason == CONTAMINATED:
            contaminated[benchmark] += rows
        if flan_filtered and reason in (None, *FILTER_REASONS):
            if flan_task is None:
                unrecovered += rows
            else:
                entry = tasks.setdefault(flan_task, {"kept": 0, "dropped": 0})
                entry["dropped" if reason == FLAN_OVERLAP else "kept"] += rows
    rows_read = sum(counts.values())
    invalid = sum(n for reason, n in rejected.items() if reason not in FILTER_REASONS)
    summary = {
        "rows_read": rows_read,
        "valid": rows_read - invalid,
        "rejected": dict(sorted(rejected.items())),
        "available": rows_read - sum(rejected.values()),
        "contaminated": dict(sorted(contaminated.items())),
    }
    if flan_filtered:
        summary["flan"] = {"tasks": dict(sorted(tasks.items())), "unrecovered": unrecovered}
    return summary
