"""Mixtures: each source sampled up to its cap (Table 1), deterministic by seed, shuffled together.

Determinism without collecting rows: every row gets a sort key = xxh64(seed, source, row text), a uniformly random
63-bit number fixed by the seed and independent of how Ray split the data into blocks or scheduled them.
1. Per source, the `cap` rows with the smallest keys are a seeded uniform sample. Only the keys of the rows that
   survived the filters reach the driver (8 bytes a row: 23 MB for all 2.9M OpenOrca rows), where
   `np.partition` finds the cap-th smallest key; the rows themselves are selected by a map_batches filter
   `key <= threshold`. This avoids a distributed sort per source just to take its first `cap` rows.
2. The union of the sampled sources is sorted by the same key: that order is the seeded shuffle, and it
   interleaves the sources. The driver already holds every sampled key, so it knows the sort's boundaries:
   - a mixture up to IN_DRIVER_SORT_BYTES (every tiny run, and the paper's SFT/DPO mixtures of ~200k rows
     when they are small enough) streams to the driver once and is sorted there with Arrow. Why not Ray's
     sort here: its map tasks run in dedicated shuffle workers (a separate runtime env), so on a 2-core machine
     each sort starts new worker processes (5-8 s) and the next execution waits again for ordinary workers
     (~4 s) - more than the whole stage costs on a few thousand rows;
   - a larger mixture takes Ray Data's distributed, out-of-core sort, given exact boundaries from the keys so
     that it skips its sampling pass (partitions of ~SORT_PARTITION_BYTES).
   Both give the same rows in the same order (tested).
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
        (
            xxhash.xxh64_intdigest(f"{source}\x1f{text}".encode(), seed=seed) >> 1
            for source, text in zip(sources, texts, strict=True)
        ),
        np.int64,
        count=len(texts),
    )
    return batch.append_column(ORDER, pa.array(keys, pa.int64()))


def cap_threshold(keys: np.ndarray, cap: int | None) -> int | None:
    """The largest key kept when sampling `cap` of `keys` (None: keep every row)."""
    if cap is None or cap >= len(keys):
        return None
    if cap == 0:
        return -1
    return int(np.partition(keys, cap - 1)[cap - 1])


def select_sample(batch, *, threshold: int | None):
    """map_batches fn: the rows that passed every filter and fall inside the source's sample."""
    import pyarrow.compute as pc

    keep = pc.is_null(batch.column("reason"))
    if threshold is not None:
        keep = pc.and_(keep, pc.less_equal(batch.column(ORDER), threshold))
    return batch.filter(keep)


IN_DRIVER_SORT_BYTES = 512 * 2**20  # mixtures up to this size (estimated in-memory bytes) are sorted in the driver
SORT_PARTITION_BYTES = 256 * 2**20  # target size of one partition of Ray Data's sort above that


def mix(datasets: Sequence, keys: np.ndarray, estimated_bytes: int, batch_size: int = 4096):
    """Batches (pyarrow tables) of the union of sampled sources, shuffled together by their sort keys.

    keys: int64 [rows], the `_order` key of every sampled row (any order); estimated_bytes: their in-memory size.
    """
    first, *rest = datasets
    union = first.union(*rest) if rest else first
    if estimated_bytes <= IN_DRIVER_SORT_BYTES:
        import pyarrow as pa

        tables = list(union.iter_batches(batch_format="pyarrow", batch_size=None))
        if not tables:
            return
        table = pa.concat_tables(tables).sort_by(ORDER)
        for start in range(0, table.num_rows, batch_size):
            yield table.slice(start, batch_size)
        return
    partitions = max(2, -(-estimated_bytes // SORT_PARTITION_BYTES))
    ordered = np.sort(keys)
    boundaries = [int(ordered[len(ordered) * k // partitions]) for k in range(1, partitions)]
    yield from union.sort(ORDER, boundaries=sorted(set(boundaries))).iter_batches(
        batch_format="pyarrow", batch_size=batch_size
    )
