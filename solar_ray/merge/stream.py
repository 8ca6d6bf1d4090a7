"""Merge checkpoints on disk with bounded memory: read input chunks with pread, write output chunks with pwrite.

The byte-level I/O (shard headers, `DiskSource`, `ShardWriter`) is solar_ray.tensors.safetensors_io, shared with
up-scaling; reading each chunk with `os.pread` into a small buffer keeps the inputs in the page cache (shared,
not ours) and our RSS at `threads` chunks (that module says why not mmap).

Output: the base model's tensors in the base's order and dtypes, cut into shards of at most `max_shard_bytes`;
each shard's header is written first and the file pre-sized, so worker threads `pwrite` finished chunks straight
to their final offsets in any order (no output buffering, no reordering).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solar_ray.artifacts import PICKLE_SUFFIXES, require_model_dir
from solar_ray.errors import ArtifactError
from solar_ray.merge.core import CHUNK_ELEMENTS, MemorySource, check_compatible, make_jobs, numel, run_jobs
from solar_ray.merge.plugin import MergeSpec
from solar_ray.tensors.safetensors_io import INDEX_NAME, ShardWriter, open_sources

PICKLE_INDEX_NAME = "pytorch_model.bin.index.json"
# Files of an input model that the merge rewrites or must not carry over as they are.
NOT_COPIED_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
NOT_COPIED = {INDEX_NAME, PICKLE_INDEX_NAME, "lineage.json", "README.md"}


def open_checkpoint(model_dir: Path, files: contextlib.ExitStack, allow_pickle: bool) -> dict[str, Any]:
    """Every tensor of a model directory as a Source, in file order. Pickle (.bin) only when allowed."""
    model_dir = require_model_dir(model_dir, allow_pickle=allow_pickle)
    if not any(model_dir.glob("*.safetensors")):
        return _open_pickle(model_dir)
    return open_sources(model_dir, files)


def _open_pickle(model_dir: Path) -> dict[str, Any]:
    """Pickle checkpoints (only reached with allow_pickle): torch.load with weights_only and mmap."""
    import torch

    sources = {}
    for path in sorted(p for p in model_dir.iterdir() if p.suffix in PICKLE_SUFFIXES):
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        sources.update({name: MemorySource(tensor, name) for name, tensor in state.items()})
    return sources


# -------------------------------------------------------------------------------------------------- merge


def read_model_config(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; expected a Hugging Face model directory") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None


def merge_checkpoints(
    model_dirs: Sequence[str | Path],
    spec: MergeSpec,
    out_dir: Path,
    allow_pickle: bool = False,
    threads: int | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
    max_shard_bytes: int = 5 * 10**9,
    vocab: str = "error",
) -> dict[str, Any]:
    """Merge model directories (the first is the base) into `out_dir` (which must exist; the stage makes it
    atomic). Writes weights + index and copies the base's config, tokenizer and generation config. `vocab="base"`
    accepts other vocabulary sizes and keeps the base's (core.make_jobs).
    Returns {"tensors", "parameters", "bytes_written", "shards"}."""
    model_dirs = [Path(p) for p in model_dirs]
    labels = [str(p) for p in model_dirs]
    for path in model_dirs:
        require_model_dir(path, allow_pickle=allow_pickle)
    configs = [read_model_config(p) for p in model_dirs]
    layer_key = "num_hidden_layers"
    for config, label in zip(configs[1:], labels[1:], strict=True):
        if config.get(layer_key) != configs[0].get(layer_key):
            raise ArtifactError(
                f"different layer counts: {labels[0]} has {configs[0].get(layer_key)} layers ({layer_key} in "
                f"config.json), {label} has {config.get(layer_key)}; merge models of the same depth"
            )
    with contextlib.ExitStack() as files:
        models = [open_checkpoint(p, files, allow_pickle) for p in model_dirs]
        check_compatible([{n: (s.shape, s.dtype) for n, s in m.items()} for m in models], labels, vocab)
        base = models[0]
        writer = ShardWriter(out_dir, [(n, s.dtype, s.shape) for n, s in base.items()], max_shard_bytes, files)
        jobs = [job for name in base
                for job in make_jobs(name, [m[name] for m in models], base[name].dtype, writer.writer(name))]
        num_layers = configs[0].get(layer_key) or 0
        run_jobs(jobs, spec, num_layers, threads, chunk_elements)
    writer.write_index(out_dir)
    for item in sorted(model_dirs[0].iterdir()):
        if item.is_file() and item.name not in NOT_COPIED and not item.name.endswith(NOT_COPIED_SUFFIXES):
            shutil.copy2(item, out_dir / item.name)
    return {
        "tensors": len(base),
        "parameters": sum(numel(s.shape) for s in base.values()),
        "bytes_written": writer.total_bytes,
        "shards": writer.shards,
    }
