"""The FLAN-overlap filter: drop OpenOrca rows whose FLAN task is one of the paper's Table 8 tasks.

OpenOrca rows carry only an id prefix (`flan.`, `niv.`, `cot.`, `t0.`) naming the FLAN sub-mixture they were
sampled from; the task name is recovered by looking the row's question (normalised: lowercase, whitespace
collapsed) up among that sub-mixture's `inputs`, which carry `_task_name`. Task names are compared normalised
(version suffix dropped, then letters and digits only), because the paper's PDF lost TFDS punctuation:
`ai2_arcARCChallenge` and `ai2_arc/ARC-Challenge:1.0.0` are the same task.

Why a hash-keyed table and not a Ray Data join: the lookup side is (sub-mixture, question) -> task. At 1M FLAN
rows that is 1M 64-bit keys + 1M int32 task ids = 12 MB as two sorted numpy arrays - small enough to ship to
every worker once (Ray puts it in the object store; workers read it zero-copy), and each OpenOrca batch then
probes it with one vectorised `np.searchsorted`. A join (`Dataset.join`) would hash-shuffle BOTH sides through
the object store, i.e. move all 2.9M OpenOrca rows with their long responses across workers, to match keys
that fit in 12 MB. The table would only stop fitting at ~100M FLAN rows (1.2 GB), where the join becomes the
right tool. Building the table is still Ray Data (keys are computed in parallel map_batches); only the compact
(key, task) columns reach the driver.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from solar_ray.data.registry import FLAN_SUBMIXES, OPEN_ORCA_ID_PREFIXES, get_spec

# Table 8 of the SOLAR paper: FLAN tasks whose items overlap the H6 benchmarks.
TABLE8_TASKS = (
    "task228_arc_answer_generation_easy",
    "ai2_arc/ARC-Challenge:1.0.0",
    "ai2_arc/ARC-Easy:1.0.0",
    "task229_arc_answer_generation_hard",
    "hellaswag:1.1.0",
    "task1389_hellaswag_completion",
    "cot_gsm8k",
    "cot_gsm8k_ii",
    "drop:2.0.0",
    "winogrande:1.1.0",
)
FLAN_OVERLAP = "flan_overlap"


def normalise_task(name: str) -> str:
    """`ai2_arc/ARC-Challenge:1.0.0` -> `ai2arcarcchallenge`: drop `:version`, keep lowercase letters and digits."""
    return re.sub(r"[^0-9a-z]", "", re.sub(r":\d+(\.\d+)*$", "", name.strip()).lower())


def question_keys(submixes: list[str | None], questions) -> np.ndarray:
    """64-bit key of (sub-mixture, normalised question) per row; 0 where either is missing. Shape [rows]."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import xxhash

    questions = questions if isinstance(questions, (pa.Array, pa.ChunkedArray)) else pa.array(questions, pa.string())
    normal = pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(questions), r"\s+", " "))
    keys = np.zeros(len(submixes), np.uint64)
    # xxh64 per string: pyarrow has no exposed string hash kernel; xxhash costs ~0.3 us per question.
    for row, (submix, question) in enumerate(zip(submixes, normal.to_pylist(), strict=True)):
        if submix and question is not None:
            keys[row] = xxhash.xxh64_intdigest(f"{submix}\x1f{question}".encode()) or 1
    return keys


def _flan_key_batch(batch, *, submix: str, lines: bool):
    """map_batches fn over one FLAN sub-mixture: upstream rows -> {key: uint64, task: string}."""
    import pyarrow as pa

    if lines:
        rows = []
        for line in batch.column("text").to_pylist():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("inputs"), str) and isinstance(row.get("_task_name"), str):
                rows.append(row)
        inputs, tasks = [r["inputs"] for r in rows], [r["_task_name"] for r in rows]
    else:
        inputs, tasks = batch.column("inputs").to_pylist(), batch.column("_task_name").to_pylist()
    keys = question_keys([submix] * len(inputs), pa.array(inputs, pa.string()))
    return pa.table({"key": pa.array(keys, pa.uint64()), "task": pa.array(tasks, pa.string())})


@dataclass
class FlanLookup:
    """(sub-mixture, question) -> FLAN task. keys: sorted uint64 [n]; task_ids: int32 [n] into `tasks`."""

    keys: np.ndarray
    task_ids: np.ndarray
    tasks: list[str]
    drop: np.ndarray  # bool [len(tasks)]: task is one of the dropped (Table 8) tasks

    @classmethod
    def from_pairs(cls, keys: np.ndarray, task_names, drop_tasks) -> FlanLookup:
        import pyarrow as pa
        import pyarrow.compute as pc

        if isinstance(task_names, pa.ChunkedArray):
            task_names = task_names.combine_chunks()
        encoded = pc.dictionary_encode(pa.array(task_names, pa.string()))
        tasks = encoded.dictionary.to_pylist()
        dropped_names = {normalise_task(t) for t in drop_tasks}
        drop = np.array([normalise_task(t) in dropped_names for t in tasks], bool)
        task_ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32)
        # A question found under several tasks: keep the dropped task if any (conservative), else the first.
        order = np.lexsort((~drop[task_ids] if len(tasks) else task_ids, keys))
        keys, task_ids = keys[order], task_ids[order]
        unique_keys, first = np.unique(keys, return_index=True)
        return cls(keys=unique_keys, task_ids=task_ids[first], tasks=tasks, drop=drop)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Task id per key, -1 where not found."""
        if len(self.keys) == 0:
            return np.full(len(keys), -1, np.int32)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where((self.keys[pos] == keys) & (keys != 0), self.task_ids[pos], -1)


def build_lookup(collection: str | None, drop_tasks=TABLE8_TASKS, submixes=tuple(FLAN_SUBMIXES)) -> FlanLookup:
    """Read the FLAN sub-mixtures (local `collection/<submix>/train.*`, else the hub) into a FlanLookup."""
    import pyarrow as pa

    from solar_ray.data.load import read_raw

    pairs = []
    for submix in submixes:
        spec = get_spec(f"flan_{submix}")
        path = None
        if collection is not None:
            path = str(Path(collection) / submix)
            if not Path(path).exists():
                continue  # a collection without this sub-mixture: its OpenOrca rows count as unrecovered
        dataset, lines = read_raw(spec, path, None, None, spec.split)
        pairs.append(
            dataset.map_batches(_flan_key_batch, batch_format="pyarrow", fn_kwargs={"submix": submix, "lines": lines})
        )
    keys, tasks = [], []
    if pairs:  # one Ray Data execution over every sub-mixture
        for batch in pairs[0].union(*pairs[1:]).iter_batches(batch_format="pyarrow", batch_size=None):
            keys.append(batch.column("key").to_numpy())
            tasks.append(batch.column("task"))
    all_keys = np.concatenate(keys) if keys else np.empty(0, np.uint64)
    all_tasks = pa.chunked_array([c for t in tasks for c in t.chunks], pa.string()) if tasks else pa.array([], pa.string())
    return FlanLookup.from_pairs(all_keys, all_tasks, drop_tasks)


def flan_filter_batch(batch, *, lookup: FlanLookup):
    """map_batches fn: fill `flan_task` and quarantine rows of dropped tasks (reason `flan_overlap`).

    Rows already quarantined keep their reason; rows whose task is not recovered keep flan_task null.
    """
    import pyarrow as pa

    ids = batch.column("upstream_id").to_pylist()
    submixes = [OPEN_ORCA_ID_PREFIXES.get(i.split(".", 1)[0]) if i else None for i in ids]
    task_ids = lookup.find(question_keys(submixes, batch.column("flan_question")))
    found = task_ids >= 0
    names = np.array(lookup.tasks + [None], dtype=object)[np.where(found, task_ids, len(lookup.tasks))]
    dropped = found & lookup.drop[np.where(found, task_ids, 0)] if len(lookup.tasks) else found
    reasons = batch.column("reason").to_pylist()
    details = batch.column("detail").to_pylist()
    for row in np.nonzero(dropped)[0].tolist():
        if reasons[row] is None:
            reasons[row], details[row] = FLAN_OVERLAP, f"FLAN task '{names[row]}' is in Table 8"
    batch = batch.set_column(batch.schema.get_field_index("flan_task"), "flan_task", pa.array(names.tolist(), pa.string()))
    batch = batch.set_column(batch.schema.get_field_index("reason"), "reason", pa.array(reasons, pa.string()))
    return batch.set_column(batch.schema.get_field_index("detail"), "detail", pa.array(details, pa.string()))
