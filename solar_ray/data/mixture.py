"""Mixtures: each source sampled up to its cap (Table 1), deterministic by seed, shuffled together.

Determinism without collecting rows: every row gets a sort key = xxh64(seed, source, row text). Sorting a source
by that key is a uniformly random permutation fixed by the seed and independent of how Ray split the data into
blocks or scheduled them; `limit(cap)` after the sort is therefore a seeded random sample, and sorting the union
of the capped sources by the same key interleaves them (the final shuffle). Ray Data's sort is a distributed,
out-of-core sample-sort, so nothing is gathered in the driver.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from solar_ray.data.decontam import row_texts

ORDER = "_order"


def add_order_key(batch, *, seed: int, columns: Sequence[str]):
    """map_batches fn: append the int64 sort key column `_order` (63-bit xxh64 of seed, source and text)."""
    import pyarrow as pa
    import xxhash

    texts = row_texts(batch, columns).to_pylist()
    sources = batch.column("source").to_pylist()
    keys = np.fromiter(
        (xxhash.xxh64_intdigest(f"{source}\x1f{text}".encode(), seed=seed) >> 1 for source, text in zip(sources, texts, strict=True)),
        np.int64,
        count=len(texts),
    )
    return batch.append_column(ORDER, pa.array(keys, pa.int64()))


def capped(dataset, cap: int | None, seed: int, columns: Sequence[str]):
    """A seeded random sample of at most `cap` rows (all rows, shuffled, when cap is None)."""
    ordered = dataset.map_batches(
        add_order_key, batch_format="pyarrow", fn_kwargs={"seed": seed, "columns": tuple(columns)}
    ).sort(ORDER)
    return ordered if cap is None else ordered.limit(cap)


def mix(datasets: Sequence):
    """Union of capped sources, shuffled together by their sort keys."""
    first, *rest = datasets
    return (first.union(*rest) if rest else first).sort(ORDER)
