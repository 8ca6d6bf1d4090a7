"""Counting what happened to every row, without gathering rows: per-batch value counts summed in the driver.

report.json (one entry per source):
    {"dataset", "input", "rows_read", "valid", "rejected": {reason: n}, "available", "cap", "used",
     "flan": {"tasks": {task: {"kept": n, "dropped": n}}, "unrecovered": n},   (sources the FLAN filter ran on)
     "contaminated": {benchmark: n}}
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from solar_ray.data.decontam import CONTAMINATED
from solar_ray.data.flan_filter import FLAN_OVERLAP

COUNT_KEYS = ("reason", "flan_task", "benchmark")
FILTER_REASONS = (FLAN_OVERLAP, CONTAMINATED)  # quarantined by a filter, not because the row was malformed


def scan(dataset, order_column: str) -> tuple[Counter, np.ndarray]:
    """One pass over a processed dataset: (reason, flan_task, benchmark) -> rows, and the sort keys of kept rows.

    Only these four compact columns stream to the driver; the rows' text stays in the object store.
    """
    import pyarrow.compute as pc

    totals: Counter = Counter()
    keys = []
    columns = [*COUNT_KEYS, order_column]
    for batch in dataset.select_columns(columns).iter_batches(batch_format="pyarrow", batch_size=65536):
        counted = batch.select(list(COUNT_KEYS)).group_by(list(COUNT_KEYS)).aggregate([([], "count_all")])
        for row in counted.to_pylist():
            totals[tuple(row[key] for key in COUNT_KEYS)] += row["count_all"]
        keys.append(batch.filter(pc.is_null(batch.column("reason"))).column(order_column).to_numpy())
    return totals, (np.concatenate(keys) if keys else np.empty(0, np.int64))


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
