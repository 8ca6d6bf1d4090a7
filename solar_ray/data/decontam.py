"""N-gram decontamination against the benchmark evaluation sets.

A training row is contaminated when it shares one word n-gram (13 by default, as GPT-3 and the FLAN paper did)
with a benchmark example's question + gold answer. Words are normalised: lowercased, split on anything that is
not a letter or digit, so punctuation and spacing never hide a copy.

How matching is fast enough for millions of rows (why this is hand-written rather than a set of Python tuples):
1. Tokenise a whole batch at once, flattened to one word array. ASCII batches (the common case) are lowercased
   and have every non-alphanumeric byte turned into a space by numpy compares on the Arrow data buffer, then
   split by `pc.ascii_split_whitespace`: 4x faster than the general path, Arrow's Unicode regex
   split (RE2, C++), which other batches take. Both give the same words on ASCII text.
2. Map every word to its id in the benchmark vocabulary with `pc.index_in` (a C++ hash lookup). A word the
   benchmarks never use cannot be part of a benchmark n-gram, so it marks every window it falls in as a miss.
3. Hash every window of n word ids with a polynomial rolling hash in numpy (uint64 arithmetic wraps mod 2**64,
   in place: 2n passes, no temporaries), drop windows that cross a row boundary or hold an unknown word.
4. Probe a bit table of the benchmark hashes (top bits of the hash; ~64 bits per n-gram, so ~1.5% of misses
   pass), then confirm the few survivors by binary search in the sorted hashes: one gather per window instead
   of ~17 random probes.
5. Only rows with a hit go back to Python, to report the first matching n-gram as text.
A 64-bit hash collision between one training window and the ~1e6 benchmark n-grams has probability ~5e-14, so
over 3e8 windows (1M rows of 300 words) the expected number of false hits is ~1e-5.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from solar_ray.data.quarantine import set_rows
from solar_ray.errors import DataError
from solar_ray.evaluate.suites import TASKS, gold_text, task_of_folder

DEFAULT_NGRAM = 13
WORD_SPLIT = r"[^\p{L}\p{N}]+"  # RE2 syntax: anything that is not a letter or a digit separates words
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio) for the rolling hash


# ----------------------------------------------------------------------------------------- benchmark texts


def _gold_text(folder: str, row: dict, where: str) -> str:
    """Question + gold answer of one lm-eval-schema row, as the benchmark registry reads it."""
    key = task_of_folder(folder)
    if key is None:  # not a registered benchmark: every string field, so a new benchmark is still indexed
        return " ".join(str(v) for v in row.values() if isinstance(v, str))
    try:
        return gold_text(key, row)
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise DataError(f"{where}: cannot read question + gold answer for {folder} ({exc!r})") from None


def load_benchmark_texts(
    benchmarks_dir: str | Path, benchmarks: list[str] | None = None
) -> dict[str, list[str]]:
    """Question + gold answer text per benchmark, from WORLD/data/benchmarks/<bench>/<split>.jsonl (eval splits).

    `benchmarks` defaults to every benchmark directory present. Raises DataError naming the missing file.
    """
    root = Path(benchmarks_dir)
    if not root.is_dir():
        raise DataError(f"{root}: benchmarks directory not found (expected <dir>/<benchmark>/<split>.jsonl)")
    names = benchmarks if benchmarks is not None else sorted(p.name for p in root.iterdir() if p.is_dir())
    texts: dict[str, list[str]] = {}
    for name in names:
        key = task_of_folder(name)
        splits = (TASKS[key].eval_split,) if key else ("test", "validation")
        files = [root / name / f"{split}.jsonl" for split in splits if (root / name / f"{split}.jsonl").is_file()]
        if not files:
            raise DataError(
                f"{root / name}: no evaluation split found (expected one of {', '.join(s + '.jsonl' for s in splits)})"
            )
        texts[name] = []
        for path in files:
            for line_no, line in enumerate(path.read_text().splitlines(), start=1):
                if line.strip():
                    texts[name].append(_gold_text(name, json.loads(line), f"{path}:{line_no}"))
    return texts


# ------------------------------------------------------------------------------------------ tokenising


def _ascii_words_bytes(data: np.ndarray) -> np.ndarray:
    """ASCII bytes -> letters lowercased, digits kept, every other byte a space (vectorised compares)."""
    lowered = data | np.uint8(0x20)  # 'A'-'Z' -> 'a'-'z'; no other byte lands in 'a'-'z' (digits are tested on data)
    alnum = ((lowered >= ord("a")) & (lowered <= ord("z"))) | ((data >= ord("0")) & (data <= ord("9")))
    return np.where(alnum, lowered, np.uint8(ord(" ")))


def normalised_words(texts) -> tuple[object, np.ndarray]:
    """Lowercase words of every text: (flat pyarrow string array of words, int64 row index of each word)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), pa.large_string())
    texts = pc.fill_null(texts, "")
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    texts = texts.cast(pa.large_string())
    if pc.all(pc.string_is_ascii(texts)).as_py() is not False:
        # Same words as the regex below, on ASCII: map bytes, keep the offsets (zero-copy), trim, split on spaces.
        _, offsets, data = texts.buffers()
        mapped = _ascii_words_bytes(np.frombuffer(data, np.uint8)) if data is not None else np.empty(0, np.uint8)
        texts = pa.LargeStringArray.from_buffers(len(texts), offsets, pa.py_buffer(mapped), offset=texts.offset)
        split = pc.ascii_split_whitespace(pc.ascii_trim_whitespace(texts))  # trimmed: only "" gives an empty word
    else:
        split = pc.split_pattern_regex(pc.utf8_lower(texts), WORD_SPLIT)
    words = pc.list_flatten(split)
    rows = pc.list_parent_indices(split).to_numpy(zero_copy_only=False)
    keep = pc.greater(pc.utf8_length(words), 0)  # leading/trailing separators leave empty strings
    if pc.all(keep).as_py() is False:
        words, rows = words.filter(keep), rows[keep.to_numpy(zero_copy_only=False)]
    return words, rows


def _word_ids(words, vocab) -> np.ndarray:
    """Position of each word in `vocab` (C++ hash lookup), -1 for words not in it."""
    import pyarrow.compute as pc

    return pc.fill_null(pc.index_in(words, value_set=vocab), -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _window_hashes(ids: np.ndarray, rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hash of every n-word window lying inside one row with no unknown word: (hashes, start positions)."""
    count = len(ids) - n + 1
    if count <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    shifted = (ids + 1).astype(np.uint64)  # unknown words (-1) become 0; they are masked out below
    hashes = np.zeros(count, np.uint64)
    with np.errstate(over="ignore"):  # wrap-around mod 2**64 is the point of the hash
        for k in range(n):  # Horner's rule, in place: hashes = hashes * M + id[k + i]
            np.multiply(hashes, _MULTIPLIER, out=hashes)
            np.add(hashes, shifted[k : k + count], out=hashes)
    valid = rows[:count] == rows[n - 1 :]
    unknown = ids < 0
    if unknown.any():
        unknown_before = np.concatenate([[0], np.cumsum(unknown)])
        valid &= unknown_before[n:] - unknown_before[:count] == 0
    starts = np.nonzero(valid)[0]
    return hashes[starts], starts


# ---------------------------------------------------------------------------------------------- index


@dataclass
class NgramIndex:
    """Word n-grams of benchmark texts, as sorted 64-bit hashes. Picklable, so Ray workers receive it whole.

    vocab: every benchmark word (pyarrow string array; a word's id is its position)
    hashes: sorted unique window hashes (uint64, shape [n_ngrams]); owners: benchmark index per hash
    table: bit table over the top `table_bits` bits of every hash (uint8, shape [2**table_bits / 8]), a
        prefilter: a window whose bit is clear is certainly not a benchmark n-gram
    """

    n: int
    benchmarks: list[str]
    vocab: object
    hashes: np.ndarray
    owners: np.ndarray
    table: np.ndarray
    table_bits: int

    @classmethod
    def build(cls, texts_by_benchmark: dict[str, Sequence[str]], n: int = DEFAULT_NGRAM) -> NgramIndex:
        import pyarrow as pa
        import pyarrow.compute as pc

        if n < 1:
            raise DataError(f"n-gram length {n}: expected a positive number of words (default {DEFAULT_NGRAM})")
        names = list(texts_by_benchmark)
        all_words = []
        per_bench = []
        for name in names:
            words, rows = normalised_words(texts_by_benchmark[name])
            all_words.append(words)
            per_bench.append((words, rows))
        vocab = pc.unique(pa.concat_arrays(all_words)) if all_words else pa.array([], pa.large_string())
        hashes, owners = [], []
        for index, (words, rows) in enumerate(per_bench):
            found, _ = _window_hashes(_word_ids(words, vocab), rows, n)
            hashes.append(found)
            owners.append(np.full(len(found), index, np.int16))
        flat = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
        flat_owners = np.concatenate(owners) if owners else np.empty(0, np.int16)
        flat, first = np.unique(flat, return_index=True)  # an n-gram in two benchmarks reports the first
        # ~64 bits per n-gram (at least 2**16): 140k n-grams -> 2**24 bits = 2 MiB, 1M -> 2**26 bits = 8 MiB.
        table_bits = max(16, int(np.ceil(np.log2(max(len(flat), 1)))) + 6)
        table = np.zeros(2 ** table_bits // 8, np.uint8)
        slots = flat >> np.uint64(64 - table_bits)
        np.bitwise_or.at(table, slots >> np.uint64(3), np.left_shift(1, slots & np.uint64(7)).astype(np.uint8))
        return cls(n=n, benchmarks=names, vocab=vocab, hashes=flat, owners=flat_owners[first], table=table,
                   table_bits=table_bits)

    def _maybe_present(self, hashes: np.ndarray) -> np.ndarray:
        """Bool per hash: its bit is set in the table (every benchmark hash is; ~1.5% of others are)."""
        slots = hashes >> np.uint64(64 - self.table_bits)
        return ((self.table[slots >> np.uint64(3)] >> (slots & np.uint64(7)).astype(np.uint8)) & 1).astype(bool)

    def __len__(self) -> int:
        return len(self.hashes)

    def hits(self, texts) -> dict[int, tuple[str, str]]:
        """Row -> (benchmark, first matching n-gram) for the texts that share one. Texts: list of str or pyarrow."""
        if len(texts) == 0 or len(self.hashes) == 0:
            return {}
        words, rows = normalised_words(texts)
        hashes, starts = _window_hashes(_word_ids(words, self.vocab), rows, self.n)
        candidates = np.nonzero(self._maybe_present(hashes))[0]
        hashes, starts = hashes[candidates], starts[candidates]
        # Binary search of the few candidates in the sorted benchmark hashes (no sort of the windows).
        found = np.minimum(np.searchsorted(self.hashes, hashes), len(self.hashes) - 1)
        hit = self.hashes[found] == hashes
        if not hit.any():
            return {}
        hit_starts = starts[hit]
        hit_rows, first = np.unique(rows[hit_starts], return_index=True)  # starts ascend, so first = earliest
        positions = found[hit][first]
        return {
            row: (self.benchmarks[int(self.owners[pos])], " ".join(words.slice(start, self.n).to_pylist()))
            for row, start, pos in zip(hit_rows.tolist(), hit_starts[first].tolist(), positions.tolist(), strict=True)
        }

    def match_batch(self, texts) -> list[tuple[str, str] | None]:
        """For each text, (benchmark, first matching n-gram) or None. Texts: list of str or a pyarrow array."""
        found = self.hits(texts)
        return [found.get(row) for row in range(len(texts))]

    def match(self, text: str) -> tuple[str, str] | None:
        """(benchmark, matching n-gram) for the first benchmark n-gram found in `text`, else None."""
        return self.match_batch([text])[0]


def build_index(
    benchmarks_dir: str | Path, benchmarks: list[str] | None = None, n: int = DEFAULT_NGRAM
) -> NgramIndex:
    """NgramIndex over the evaluation splits found under `benchmarks_dir`."""
    return NgramIndex.build(load_benchmark_texts(benchmarks_dir, benchmarks), n=n)



# ------------------------------------------------------------------------------------------ Ray Data step

CONTAMINATED = "contaminated"


def _column_text(column):
    """One string per row: the text itself, or the message contents of a message list joined by newlines."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        contents = column.values.field("content")  # offsets and values are both unsliced: they agree
        column = pc.binary_join(pa.ListArray.from_arrays(column.offsets, contents), "\n")
    return pc.fill_null(column.cast(pa.large_string()), "")


def row_texts(batch, columns: Sequence[str]):
    """The text to check per row: every contract text column of the batch, joined by newlines."""
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = [_column_text(batch.column(name)) for name in columns]
    return texts[0] if len(texts) == 1 else pc.binary_join_element_wise(*texts, pa.scalar("\n", pa.large_string()))


def decontaminate_batch(batch, *, index: NgramIndex, columns: Sequence[str]):
    """map_batches fn: quarantine rows sharing an n-gram with a benchmark (reason `contaminated`, benchmark, ngram).

    Rows already quarantined keep their reason and are not checked.
    """
    import pyarrow.compute as pc

    pending = pc.is_null(batch.column("reason"))
    if not pc.any(pending).as_py():
        return batch
    texts = row_texts(batch, columns)
    if pc.sum(pending).as_py() < batch.num_rows:
        pending_rows = np.nonzero(pending.to_numpy(zero_copy_only=False))[0]
        texts = texts.take(pending_rows)
    else:
        pending_rows = None
    found = index.hits(texts)
    rows = sorted(found) if pending_rows is None else sorted(int(pending_rows[row]) for row in found)
    hits = [found[row] for row in sorted(found)]
    return set_rows(batch, rows, {
        "reason": [CONTAMINATED] * len(hits),
        "detail": [f"shares a {index.n}-gram with {benchmark}" for benchmark, _ in hits],
        "benchmark": [benchmark for benchmark, _ in hits],
        "ngram": [ngram for _, ngram in hits],
    })
