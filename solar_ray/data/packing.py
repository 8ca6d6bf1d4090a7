"""Tokenise pretraining text and pack it into fixed-length blocks with Ray Data.

Each document becomes `tokens + [eos]`; a batch of documents is concatenated and cut into blocks of
`block_size` tokens (the tail shorter than a block is dropped, at most block_size-1 tokens per batch of
`docs_per_batch` documents). Blocks cross document boundaries, as in GPT-style pretraining: no padding is
wasted. Training workers read the blocks through `ray.train.get_dataset_shard("train")`.

    blocks = pack_dataset(ray.data.read_parquet("ds/train.parquet"), "models/base", block_size=512)
    # -> Dataset with one column input_ids: int32 [block_size]

Documents are packed within a Ray block, so the blocks depend on how the input was split into blocks: the
pretraining stage reads its file in one task (`solar_ray.train.pretrain.read_documents`) so that they do not
depend on which Ray Data reader is set.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import numpy as np


def pack_token_ids(sequences: Iterable[list[int]], block_size: int, eos_id: int | None) -> np.ndarray:
    """Concatenate token sequences (each followed by `eos_id`) and cut into rows of `block_size` tokens.

    Returns int32 [n_blocks, block_size]; the remainder shorter than a block is dropped.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    flat: list[int] = []
    for ids in sequences:
        flat.extend(ids)
        if eos_id is not None:
            flat.append(eos_id)
    n_blocks = len(flat) // block_size
    return np.asarray(flat[: n_blocks * block_size], dtype=np.int32).reshape(n_blocks, block_size)


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def tokenize_and_pack(batch: dict[str, Any], tokenizer_path: str, block_size: int,
                      text_column: str = "text") -> dict[str, np.ndarray]:
    """Ray Data batch transform: {text: [str]} -> {input_ids: int32 [n_blocks, block_size]}.

    A task, not an actor pool: tasks spread over every core of the cluster and run in Ray's pooled worker
    processes, which keep their imports and this module's tokenizer cache from one stage to the next (an actor
    pool started, and imported transformers in, a fresh process for every pretraining stage: ~10 s each in the
    tiny pipeline, measured).
    """
    tokenizer = _tokenizer(tokenizer_path)
    ids = tokenizer([str(t) for t in batch[text_column]], add_special_tokens=False)["input_ids"]
    return {"input_ids": pack_token_ids(ids, block_size, tokenizer.eos_token_id)}


def pack_dataset(
    dataset: Any,
    tokenizer_path: str,
    block_size: int,
    text_column: str = "text",
    docs_per_batch: int = 1024,
) -> Any:
    """A Ray Dataset of packed `input_ids` blocks from a Ray Dataset with a text column, in input order (so a
    rerun packs the same blocks in the same order: exact resume relies on it)."""
    packed = dataset.select_columns([text_column]).map_batches(
        tokenize_and_pack,
        fn_kwargs={"tokenizer_path": tokenizer_path, "block_size": block_size, "text_column": text_column},
        batch_size=docs_per_batch,
        batch_format="numpy",
    )
    packed.context.execution_options.preserve_order = True  # this dataset's own copy of the DataContext
    return packed
