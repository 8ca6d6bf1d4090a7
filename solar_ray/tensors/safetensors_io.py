"""Safetensors by byte range, for up-scaling and merging: read headers, read tensors by element range, write shards.

Hand-written on purpose: the `safetensors` package's API materialises tensors (even `safe_open` + `get_slice`
returns them), so up-scaling a 20 GB model would cost 20 GB of RAM or a full decode/encode pass. The format is
simple enough to stream instead:

    [8 bytes: header length N, little-endian u64][N bytes: JSON {name: {dtype, shape, data_offsets: [b, e]},
     "__metadata__": {...}}, space-padded][data: tensor bytes, offsets relative to the end of the header]

Only headers are parsed; tensor bytes go from input shard to output shard with `os.copy_file_range` (in-kernel,
no user-space buffer; reflink on filesystems that support it), falling back to a fixed 8 MiB buffer. Peak memory
is the headers plus that buffer, whatever the model size. Computed tensors (`ZeroTensor`, `MeanTensor`: block
expansion's zeroed projections, averaged layers) are written chunk by chunk through the same fixed-size buffers.

Merging reads tensors by element range (`DiskSource`, os.pread into a small buffer) and writes its output with
`ShardWriter` (headers first, files pre-sized, chunks pwritten at their final offsets by worker threads). Why not
`safetensors.safe_open`: it memory-maps the shards, and every mapped page a merge touches counts in the process's
resident set until the kernel chooses to drop it - merging two 0.8 GiB models that way peaks at their full size.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from solar_ray.errors import ArtifactError
from solar_ray.tensors.kernels import FLOATS, STORAGE, narrow, widen

INDEX_NAME = "model.safetensors.index.json"
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}
MAX_HEADER_BYTES = 100 * 2**20  # the safetensors library's own limit
COPY_CHUNK = 1 << 30  # bytes per copy_file_range call (the kernel copies at most ~2 GiB per call anyway)
BUFFER_BYTES = 8 << 20  # fallback read/write buffer


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor's bytes live: `file`, absolute byte range [start, end)."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def read_header(path: Path) -> dict[str, TensorRef]:
    """The tensors of one shard, checked against the file size (a truncated shard is an ArtifactError)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise ArtifactError(f"{path}: truncated safetensors shard ({size} bytes, no header); re-download it")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
            raise ArtifactError(
                f"{path}: truncated or corrupt safetensors shard (header claims {header_len} bytes, file has {size})"
            )
        try:
            header = json.loads(fh.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{path}: corrupt safetensors header ({exc})") from None
    data_start = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = info["data_offsets"]
            dtype, shape = info["dtype"], tuple(info["shape"])
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(f"{path}: tensor '{name}' has a malformed header entry {info!r}") from None
        expected = math.prod(shape) * DTYPE_BYTES.get(dtype, 0)
        if dtype not in DTYPE_BYTES or end - begin != expected:
            raise ArtifactError(
                f"{path}: tensor '{name}' header is inconsistent (dtype {dtype}, shape {list(shape)}, "
                f"{end - begin} bytes); the shard is corrupt"
            )
        if data_start + end > size:
            raise ArtifactError(
                f"{path}: truncated safetensors shard: tensor '{name}' ends at byte {data_start + end}, "
                f"file has {size}; re-download or re-save it"
            )
        tensors[name] = TensorRef(name, path, dtype, shape, data_start + begin, data_start + end)
    return tensors


def read_checkpoint(model_dir: Path) -> dict[str, TensorRef]:
    """Every tensor of a safetensors checkpoint (single file, or shards listed by model.safetensors.index.json)."""
    index_path = model_dir / INDEX_NAME
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ArtifactError(f"{index_path}: invalid index (expected JSON with a 'weight_map')") from None
        shards = sorted(set(weight_map.values()))
    else:
        weight_map = None
        shards = sorted(p.name for p in model_dir.glob("*.safetensors"))
    tensors: dict[str, TensorRef] = {}
    for shard in shards:
        path = model_dir / shard
        if not path.is_file():
            listed = next(name for name, file in weight_map.items() if file == shard)
            raise ArtifactError(f"{index_path}: shard '{shard}' (holding '{listed}') is missing; re-download it")
        for name, ref in read_header(path).items():
            if name in tensors:
                raise ArtifactError(f"{path}: tensor '{name}' also appears in {tensors[name].file.name}")
            tensors[name] = ref
    if weight_map is not None:
        for name, shard in weight_map.items():
            if name not in tensors or tensors[name].file.name != shard:
                raise ArtifactError(f"{index_path}: lists tensor '{name}' in {shard}, which does not hold it")
    return tensors


# ------------------------------------------------------------------------------------------------ writing


def plan_shards(tensors: list[Any], max_shard_bytes: int, size: Any = None) -> list[list[Any]]:
    """Split items, in order, into shards of at most `max_shard_bytes` (one big tensor may exceed it alone, as in
    transformers' save_pretrained). Items are (output name, source) pairs unless `size(item)` says otherwise."""
    size = size or (lambda item: item[1].nbytes)
    shards: list[list[Any]] = [[]]
    total = 0
    for item in tensors:
        if shards[-1] and total + size(item) > max_shard_bytes:
            shards.append([])
            total = 0
        shards[-1].append(item)
        total += size(item)
    return shards


def header_bytes(items: Sequence[tuple[str, str, tuple[int, ...]]]) -> tuple[bytes, dict[str, int]]:
    """The 8-byte length + JSON header of a shard holding (name, dtype, shape) in order, and each tensor's data
    offset relative to the end of the header."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offsets, offset = {}, 0
    for name, dtype, shape in items:
        nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offsets[name] = offset
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # tensor data starts 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(raw)) + raw, offsets


def _runs(items: list[tuple[str, Any]]) -> list[tuple[Path, int, int] | Any]:
    """Merge byte ranges that follow each other in the same source file into one copy (fewer syscalls); computed
    tensors stay items of their own."""
    runs: list[Any] = []
    for _, ref in items:
        if not isinstance(ref, TensorRef):
            runs.append(ref)
        elif runs and isinstance(runs[-1], tuple) and runs[-1][0] == ref.file and runs[-1][2] == ref.start:
            runs[-1] = (ref.file, runs[-1][1], ref.end)
        else:
            runs.append((ref.file, ref.start, ref.end))
    return runs


def _copy_range(src_fd: int, dst_fd: int, start: int, end: int) -> None:
    """Append bytes [start, end) of src to dst at its current position."""
    offset = start
    if hasattr(os, "copy_file_range"):
        try:
            while offset < end:
                copied = os.copy_file_range(src_fd, dst_fd, min(COPY_CHUNK, end - offset), offset)
                if copied == 0:
                    break
                offset += copied
            if offset == end:
                return
        except OSError:  # e.g. EXDEV on old kernels, or filesystems without support: fall back to a buffer
            pass
    buffer = bytearray(BUFFER_BYTES)
    view = memoryview(buffer)
    while offset < end:
        n = os.preadv(src_fd, [view[: min(BUFFER_BYTES, end - offset)]], offset)
        if n == 0:
            raise ArtifactError(f"source shard ended at byte {offset}, expected {end} (was it truncated while reading?)")
        os.write(dst_fd, view[:n])
        offset += n


def write_shard(path: Path, items: list[tuple[str, TensorRef]]) -> int:
    """Write one output shard: new header, then the tensors' bytes copied in order. Returns bytes written."""
    header, _ = header_bytes([(name, ref.dtype, ref.shape) for name, ref in items])
    fds: dict[Path, int] = {}
    try:
        with path.open("wb") as out:
            out.write(header)
            out.flush()
            dst_fd = out.fileno()
            for run in _runs(items):
                if not isinstance(run, tuple):  # a computed tensor
                    run.write(dst_fd)
                    continue
                file, start, end = run
                if file not in fds:
                    fds[file] = os.open(file, os.O_RDONLY)
                _copy_range(fds[file], dst_fd, start, end)
    finally:
        for fd in fds.values():
            os.close(fd)
    return len(header) + sum(ref.nbytes for _, ref in items)


def write_checkpoint(out_dir: Path, tensors: list[tuple[str, Any]], max_shard_bytes: int) -> dict[str, int]:
    """Write `tensors` (output name, TensorRef or computed tensor) as model-0000i-of-0000k.safetensors + model.safetensors.index.json."""
    shards = plan_shards(tensors, max_shard_bytes)
    weight_map = {}
    written = 0
    for number, items in enumerate(shards, start=1):
        shard_name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        written += write_shard(out_dir / shard_name, items)
        weight_map.update({name: shard_name for name, _ in items})
    total = sum(ref.nbytes for _, ref in tensors)
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    return {"shards": len(shards), "bytes_written": written, "tensor_bytes": total}


# -------------------------------------------------------------------------------------- computed tensors

COMPUTE_ELEMENTS = 1 << 20  # elements per chunk of a computed tensor: 4 MiB of float32 scratch per input


@dataclass(frozen=True)
class ZeroTensor:
    """A tensor of zeros with another tensor's dtype and shape (block expansion's zeroed projections)."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_BYTES[self.dtype]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def write(self, fd: int) -> None:
        zeros, left = bytes(min(BUFFER_BYTES, self.nbytes)), self.nbytes
        while left:
            left -= os.write(fd, zeros[: min(len(zeros), left)])


class _Scratch:
    def __init__(self) -> None:
        self.arrays: dict[tuple[str, np.dtype], np.ndarray] = {}

    def get(self, kind: str, dtype: np.dtype, n: int) -> np.ndarray:
        if (kind, dtype) not in self.arrays or len(self.arrays[kind, dtype]) < n:
            self.arrays[kind, dtype] = np.empty(n, dtype=dtype)
        return self.arrays[kind, dtype][:n]


@dataclass(frozen=True)
class MeanTensor:
    """The element-wise mean of same-shaped tensors, in float32, rounded to their dtype (averaged layers).
    Integer tensors are not averaged: the first input's bytes are kept."""

    refs: tuple[TensorRef, ...]

    @property
    def dtype(self) -> str:
        return self.refs[0].dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.refs[0].shape

    @property
    def nbytes(self) -> int:
        return self.refs[0].nbytes

    @property
    def numel(self) -> int:
        return self.refs[0].numel

    def write(self, fd: int) -> None:
        if self.dtype not in FLOATS:
            with contextlib.ExitStack() as files:
                src = os.open(self.refs[0].file, os.O_RDONLY)
                files.callback(os.close, src)
                _copy_range(src, fd, self.refs[0].start, self.refs[0].end)
            return
        scratch, n = _Scratch(), self.refs[0].numel
        with contextlib.ExitStack() as files:
            sources = []
            for ref in self.refs:
                src_fd = os.open(ref.file, os.O_RDONLY)
                files.callback(os.close, src_fd)
                sources.append(DiskSource(src_fd, ref.start, ref.dtype, ref.shape, ref.file))
            weight = 1.0 / len(sources)
            for start in range(0, n, COMPUTE_ELEMENTS):
                end = min(n, start + COMPUTE_ELEMENTS)
                raw = scratch.get("raw", np.dtype(np.uint8), (end - start) * 8)
                acc = scratch.get("acc", np.dtype(np.float32), end - start)
                widen(sources[0].read(start, end, raw), self.dtype, weight, acc)
                for source in sources[1:]:
                    tmp = scratch.get("tmp", np.dtype(np.float32), end - start)
                    np.add(acc, widen(source.read(start, end, raw), self.dtype, weight, tmp), out=acc)
                out = narrow(acc, self.dtype, scratch.get("out", STORAGE[self.dtype], end - start), scratch)
                view = memoryview(np.ascontiguousarray(out).view(np.uint8))
                while len(view):
                    view = view[os.write(fd, view):]


# ----------------------------------------------------------------------------- reading and writing by range


class DiskSource:
    """One tensor inside a safetensors shard, read by element range with os.pread (no mmap)."""

    def __init__(self, fd: int, start: int, dtype: str, shape: tuple[int, ...], path: Path) -> None:
        self.fd, self.start, self.dtype, self.shape, self.path = fd, start, dtype, shape, path
        self.itemsize = STORAGE[dtype].itemsize

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


def open_sources(model_dir: Path, files: contextlib.ExitStack) -> dict[str, DiskSource]:
    """Every tensor of a safetensors checkpoint as a DiskSource, in file order (descriptors closed by `files`)."""
    fds: dict[Path, int] = {}
    sources: dict[str, DiskSource] = {}
    for name, ref in sorted(read_checkpoint(model_dir).items(), key=lambda item: (item[1].file, item[1].start)):
        if ref.dtype not in STORAGE:
            raise ArtifactError(f"{ref.file}: tensor '{name}' has dtype {ref.dtype}, which cannot be read as numbers")
        if ref.file not in fds:
            fds[ref.file] = os.open(ref.file, os.O_RDONLY)
            files.callback(os.close, fds[ref.file])
        sources[name] = DiskSource(fds[ref.file], ref.start, ref.dtype, ref.shape, ref.file)
    return sources


class ShardWriter:
    """Pre-sized output shards with headers written; `writer(name)` pwrites chunks of one tensor at any offset."""

    def __init__(self, out_dir: Path, tensors: Sequence[tuple[str, str, tuple[int, ...]]], max_shard_bytes: int,
                 files: contextlib.ExitStack) -> None:
        shards = plan_shards(list(tensors), max_shard_bytes, size=lambda item: math.prod(item[2]) * DTYPE_BYTES[item[1]])
        self.locations: dict[str, tuple[int, int, int]] = {}  # name -> (fd, byte offset, itemsize)
        self.weight_map: dict[str, str] = {}
        self.total_bytes = 0
        for number, items in enumerate(shards, start=1):
            shard_name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
            header, offsets = header_bytes(items)
            data_bytes = sum(math.prod(shape) * DTYPE_BYTES[dtype] for _, dtype, shape in items)
            fd = os.open(out_dir / shard_name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            files.callback(os.close, fd)
            os.pwrite(fd, header, 0)
            os.ftruncate(fd, len(header) + data_bytes)
            for name, dtype, _shape in items:
                self.locations[name] = (fd, len(header) + offsets[name], DTYPE_BYTES[dtype])
                self.weight_map[name] = shard_name
            self.total_bytes += data_bytes
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
