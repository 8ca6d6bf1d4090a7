"""Safetensors by byte range: read headers, plan output shards, copy tensor bytes file-to-file.

Hand-written on purpose: the `safetensors` package's API materialises tensors (even `safe_open` + `get_slice`
returns them), so up-scaling a 20 GB model would cost 20 GB of RAM or a full decode/encode pass. The format is
simple enough to stream instead:

    [8 bytes: header length N, little-endian u64][N bytes: JSON {name: {dtype, shape, data_offsets: [b, e]},
     "__metadata__": {...}}, space-padded][data: tensor bytes, offsets relative to the end of the header]

Only headers are parsed; tensor bytes go from input shard to output shard with `os.copy_file_range` (in-kernel,
no user-space buffer; reflink on filesystems that support it), falling back to a fixed 8 MiB buffer. Peak memory
is the headers plus that buffer, whatever the model size.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from solar_ray.errors import ArtifactError

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


def plan_shards(tensors: list[tuple[str, TensorRef]], max_shard_bytes: int) -> list[list[tuple[str, TensorRef]]]:
    """Split (output name, source) pairs, in order, into shards of at most `max_shard_bytes` (one big tensor may
    exceed it alone, as in transformers' save_pretrained)."""
    shards: list[list[tuple[str, TensorRef]]] = [[]]
    size = 0
    for item in tensors:
        if shards[-1] and size + item[1].nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(item)
        size += item[1].nbytes
    return shards


def _header_bytes(items: list[tuple[str, TensorRef]]) -> bytes:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, ref in items:
        header[name] = {"dtype": ref.dtype, "shape": list(ref.shape), "data_offsets": [offset, offset + ref.nbytes]}
        offset += ref.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # tensor data starts 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(raw)) + raw


def _runs(items: list[tuple[str, TensorRef]]) -> list[tuple[Path, int, int]]:
    """Merge byte ranges that follow each other in the same source file into one copy (fewer syscalls)."""
    runs: list[tuple[Path, int, int]] = []
    for _, ref in items:
        if runs and runs[-1][0] == ref.file and runs[-1][2] == ref.start:
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
    header = _header_bytes(items)
    fds: dict[Path, int] = {}
    try:
        with path.open("wb") as out:
            out.write(header)
            out.flush()
            dst_fd = out.fileno()
            for file, start, end in _runs(items):
                if file not in fds:
                    fds[file] = os.open(file, os.O_RDONLY)
                _copy_range(fds[file], dst_fd, start, end)
    finally:
        for fd in fds.values():
            os.close(fd)
    return len(header) + sum(ref.nbytes for _, ref in items)


def write_checkpoint(out_dir: Path, tensors: list[tuple[str, TensorRef]], max_shard_bytes: int) -> dict[str, int]:
    """Write `tensors` (output name, source) as model-0000i-of-0000k.safetensors + model.safetensors.index.json."""
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
