"""Merge checkpoints on disk with bounded memory: read input chunks with pread, write output chunks with pwrite.

Why not `safetensors.safe_open`: it memory-maps the shards, and every mapped page a merge touches counts in the
process's resident set until the kernel chooses to drop it - merging two 0.8 GiB models that way peaks at their
full size. Reading each chunk with `os.pread` into a small buffer keeps the inputs in the page cache (shared,
not ours) and our RSS at `threads` chunks. Shard headers (where each tensor's bytes lie) come from
solar_ray.upscale.stream.read_checkpoint, which up-scaling uses for the same reason.

Output: the base model's tensors in the base's order and dtypes, cut into shards of at most `max_shard_bytes`;
each shard's header is written first and the file pre-sized, so worker threads `pwrite` finished chunks straight
to their final offsets in any order (no output buffering, no reordering).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from solar_ray.artifacts import PICKLE_SUFFIXES, require_model_dir
from solar_ray.errors import ArtifactError
from solar_ray.merge.core import CHUNK_ELEMENTS, MemorySource, check_compatible, make_jobs, numel, run_jobs
from solar_ray.merge.kernels import STORAGE, itemsize
from solar_ray.merge.methods import MergeSpec
from solar_ray.upscale.stream import INDEX_NAME, read_checkpoint

PICKLE_INDEX_NAME = "pytorch_model.bin.index.json"
# Files of an input model that the merge rewrites or must not carry over as they are.
NOT_COPIED_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
NOT_COPIED = {INDEX_NAME, PICKLE_INDEX_NAME, "lineage.json", "README.md"}


class DiskSource:
    """One tensor inside a safetensors shard, read by element range with os.pread (no mmap)."""

    def __init__(self, fd: int, start: int, dtype: str, shape: tuple[int, ...], path: Path) -> None:
        self.fd, self.start, self.dtype, self.shape, self.path = fd, start, dtype, shape, path
        self.itemsize = itemsize(dtype)

    def read(self, start: int, end: int, buffer: np.ndarray | None = None) -> np.ndarray:
        nbytes = (end - start) * self.itemsize
        buffer = np.empty(nbytes, dtype=np.uint8) if buffer is None else buffer[:nbytes]
        view, offset, done = memoryview(buffer), self.start + start * self.itemsize, 0
        while done < nbytes:
            got = os.preadv(self.fd, [view[done:]], offset + done)
            if got == 0:
                raise ArtifactError(f"{self.path}: ended at byte {offset + done}; the shard is truncated")
            done += got
        return buffer.view(STORAGE[self.dtype])


def open_checkpoint(model_dir: Path, files: contextlib.ExitStack, allow_pickle: bool) -> dict[str, Any]:
    """Every tensor of a model directory as a Source, in file order. Pickle (.bin) only when allowed."""
    model_dir = require_model_dir(model_dir, allow_pickle=allow_pickle)
    if not any(model_dir.glob("*.safetensors")):
        return _open_pickle(model_dir)
    fds: dict[Path, int] = {}
    sources: dict[str, Any] = {}
    # headers parsed (and checked against index and file sizes) by the byte-range reader up-scaling uses
    for name, ref in sorted(read_checkpoint(model_dir).items(), key=lambda item: (item[1].file, item[1].start)):
        if ref.dtype not in STORAGE:
            raise ArtifactError(f"{ref.file}: tensor '{name}' has dtype {ref.dtype}, which the merge cannot read")
        if ref.file not in fds:
            fds[ref.file] = os.open(ref.file, os.O_RDONLY)
            files.callback(os.close, fds[ref.file])
        sources[name] = DiskSource(fds[ref.file], ref.start, ref.dtype, ref.shape, ref.file)
    return sources


def _open_pickle(model_dir: Path) -> dict[str, Any]:
    """Pickle checkpoints (only reached with allow_pickle): torch.load with weights_only and mmap."""
    import torch

    sources = {}
    for path in sorted(p for p in model_dir.iterdir() if p.suffix in PICKLE_SUFFIXES):
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        sources.update({name: MemorySource(tensor, name) for name, tensor in state.items()})
    return sources


# ------------------------------------------------------------------------------------------------ writing


class ShardWriter:
    """Pre-sized output shards with headers written; `writer(name)` pwrites chunks of one tensor."""

    def __init__(self, out_dir: Path, tensors: Sequence[tuple[str, str, tuple[int, ...]]], max_shard_bytes: int,
                 files: contextlib.ExitStack) -> None:
        shards: list[list[tuple[str, str, tuple[int, ...]]]] = [[]]
        size = 0
        for item in tensors:  # a tensor bigger than max_shard_bytes gets a shard of its own, as transformers does
            nbytes = numel(item[2]) * itemsize(item[1])
            if shards[-1] and size + nbytes > max_shard_bytes:
                shards.append([])
                size = 0
            shards[-1].append(item)
            size += nbytes
        self.locations: dict[str, tuple[int, int, int]] = {}  # name -> (fd, byte offset, itemsize)
        self.weight_map: dict[str, str] = {}
        self.total_bytes = 0
        for number, items in enumerate(shards, start=1):
            shard_name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
            header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
            offset = 0
            for name, dtype, shape in items:
                nbytes = numel(shape) * itemsize(dtype)
                header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
                offset += nbytes
            raw = json.dumps(header, separators=(",", ":")).encode()
            raw += b" " * (-len(raw) % 8)  # tensor data starts 8-byte aligned, as the safetensors writer does
            fd = os.open(out_dir / shard_name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            files.callback(os.close, fd)
            os.pwrite(fd, struct.pack("<Q", len(raw)) + raw, 0)
            os.ftruncate(fd, 8 + len(raw) + offset)
            for name, dtype, _shape in items:
                begin = header[name]["data_offsets"][0]
                self.locations[name] = (fd, 8 + len(raw) + begin, itemsize(dtype))
                self.weight_map[name] = shard_name
            self.total_bytes += offset
        self.shards = len(shards)

    def writer(self, name: str):
        fd, base, size = self.locations[name]

        def write(start: int, values: np.ndarray) -> None:
            view, offset, done = memoryview(np.ascontiguousarray(values).view(np.uint8)), base + start * size, 0
            while done < len(view):
                done += os.pwrite(fd, view[done:], offset + done)

        return write

    def write_index(self, out_dir: Path) -> None:
        index = {"metadata": {"total_size": self.total_bytes}, "weight_map": dict(sorted(self.weight_map.items()))}
        (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")


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
