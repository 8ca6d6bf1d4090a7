"""The merge engine shared by the on-disk stream and the in-memory API, so both give the same bits.

Work is cut into chunks of at most `chunk_elements` elements of one flattened tensor; chunk boundaries depend
only on the tensor's size, never on where its bytes live (a safetensors shard on disk, a state dict, a live
model), and every chunk runs the same numpy ops (kernels.py) - which is why an on-disk merge equals an in-memory
one bit for bit. Tensors travel as numpy arrays of their storage dtype, named by safetensors dtype codes ("F16",
"BF16", ...). Steps for one merge:

1. (methods needing it, SLERP) Gram pass: per chunk, float32 dot products |a|^2, |b|^2, a.b (numpy einsum: its
   pairwise-unrolled sums lose ~1e-7 relative over 2M elements, BLAS sdot ~1e-5); a tensor's chunk partials are
   added in float64 in chunk order (deterministic whatever the thread schedule);
2. per tensor, the method turns its parameters (and Gram) into coefficients c_i;
3. write pass: per chunk, acc = c_0*x_0 (float32), acc += c_i*x_i, cast to the output dtype, handed to `write`.
   A coefficient of exactly 0 drops its input and a lone coefficient of exactly 1 copies the input bytes, so
   SLERP at t=0/1 returns the endpoints exactly.

Chunks run on a thread pool: numpy loops and os.pread/pwrite release the GIL, so threads use every core
without copying tensors between processes; memory is `threads` chunks in flight, whatever the model size. The
on-disk merge never imports torch (kernels.py says why); the in-memory API takes and returns torch tensors.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from solar_ray.errors import ArtifactError
from solar_ray.merge.kernels import FLOATS, STORAGE, narrow, widen
from solar_ray.merge.methods import Gram, MergeSpec, TSpec

if TYPE_CHECKING:
    import torch

# 256K elements per chunk: a chunk's ~30 numpy calls (~40 us) are small next to its ~1.4 ms of work, and its
# 1 MB float32 buffers stay in cache between the passes (measured per element, writing: 64K 6.2 ns, 128K 5.2,
# 256K 3.8-5.4, 512K 4.5-6.3, 2M 9.1); a thread's scratch (float32 x4, raw bytes, output) is 256K x 26 B.
CHUNK_ELEMENTS = 1 << 18
# Default threads: one per usable core, at most 8. Inputs are read from the page cache, so threads seldom block,
# and extra threads only contend for the GIL between numpy calls (SLERP on the bench inputs: 2 threads 3.3 s,
# 3 threads 3.5 s, 4 threads 3.85 s on 2 cores); the work is memory-bound, so past 8 more add scratch, not speed.
MAX_DEFAULT_THREADS = 8
VOCAB_TENSORS = ("embed_tokens", "lm_head", "wte", "embed_in", "embed_out")
LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


class Source(Protocol):
    """One input tensor, readable by flat element range."""

    shape: tuple[int, ...]
    dtype: str  # safetensors dtype code

    def read(self, start: int, end: int, buffer: np.ndarray | None = None) -> np.ndarray:
        """Elements [start, end) as a 1-D array of the dtype's storage (a view of `buffer`, uint8, if it needs one)."""


class MemorySource:
    """A torch tensor in memory (state dict entry or live parameter); chunks of CPU tensors are views, not copies."""

    def __init__(self, tensor: Any, name: str = "") -> None:
        self.shape, self.dtype = tuple(tensor.shape), dtype_code(tensor.dtype, name)
        self.flat = tensor.detach().reshape(-1)  # a view unless the tensor is non-contiguous
        self.array = storage_view(self.flat) if self.flat.device.type == "cpu" else None

    def read(self, start: int, end: int, buffer=None) -> np.ndarray:
        if self.array is None:  # GPU / other devices: one chunk at a time to the host
            return storage_view(self.flat[start:end].cpu())
        return self.array[start:end]


def dtype_code(dtype: Any, name: str) -> str:
    """torch dtype -> safetensors dtype code."""
    import torch

    codes = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
             torch.bool: "BOOL"}
    if dtype not in codes:
        raise ArtifactError(f"tensor '{name}' has dtype {dtype}, which the merge cannot read")
    return codes[dtype]


def storage_view(flat: Any) -> np.ndarray:
    """A contiguous 1-D CPU tensor as a numpy array of its storage dtype, sharing its memory."""
    import torch

    if flat.dtype in (torch.float16, torch.bfloat16):  # numpy has no bfloat16: their bits, as uint16
        return flat.view(torch.int16).numpy().view(np.uint16)
    return flat.numpy()


def numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def chunks(n: int, chunk_elements: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk_elements, n)) for s in range(0, n, chunk_elements)] or [(0, 0)]


def default_threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, MAX_DEFAULT_THREADS))


# ------------------------------------------------------------------------------------------- validation


def layer_count(names: Sequence[str]) -> int:
    """Decoder layers in a checkpoint, from its tensor names (`*.layers.{i}.*`)."""
    indices = {int(m.group(1)) for name in names if (m := LAYER_INDEX.search(name))}
    return max(indices) + 1 if indices else 0


def check_compatible(models: Sequence[Mapping[str, tuple[tuple[int, ...], Any]]], labels: Sequence[str],
                     vocab: str = "error") -> None:
    """Every model must hold the same tensor names with the same shapes, and as many layers.

    `models[i]` maps tensor name -> (shape, dtype). With `vocab="base"`, embeddings / lm_head may differ in their
    row count (see `vocab_segments`). Raises ArtifactError naming the tensor and the models.
    """
    base, base_label = models[0], labels[0]
    base_layers = layer_count(list(base))
    for info, label in zip(models[1:], labels[1:], strict=True):
        layers = layer_count(list(info))
        if layers != base_layers:
            raise ArtifactError(
                f"different layer counts: {base_label} has {base_layers} layers, {label} has {layers}; "
                "merge models of the same depth (up-scale the shallower one first)"
            )
        missing = [name for name in base if name not in info]
        if missing:
            raise ArtifactError(
                f"{label}: tensor '{missing[0]}' of {base_label} is missing ({len(missing)} missing in all); "
                "merged models must share one architecture"
            )
        extra = [name for name in info if name not in base]
        if extra:
            raise ArtifactError(
                f"{label}: tensor '{extra[0]}' is not in {base_label} ({len(extra)} extra in all); "
                "merged models must share one architecture"
            )
        for name, (shape, _dtype) in base.items():
            other = info[name][0]
            if tuple(other) == tuple(shape):
                continue
            if any(key in name for key in VOCAB_TENSORS) and tuple(other[1:]) == tuple(shape[1:]):
                if vocab == "base":
                    continue
                raise ArtifactError(
                    f"tensor '{name}': vocabulary sizes differ ({shape[0]} rows in {base_label}, {other[0]} in "
                    f"{label}); the token ids may not mean the same tokens - resize both to one tokenizer, or pass --vocab base to "
                    "keep the base's vocabulary (rows a model lacks come from the models that have them)"
                )
            raise ArtifactError(
                f"tensor '{name}': shape {list(shape)} in {base_label} but {list(other)} in {label}; "
                "merged models must share one architecture"
            )


# ---------------------------------------------------------------------------------------------- merging


@dataclass
class TensorJob:
    """One output tensor: its inputs, and where each chunk of the result goes."""

    name: str
    sources: list[Source]
    out_dtype: str  # safetensors dtype code
    write: Callable[[int, np.ndarray], None]  # (start element, 1-D array of out_dtype's storage)
    models: tuple[int, ...] | None = None  # which input models `sources` are (None: all, in order)


class RowRange:
    """Rows [first, first + rows) of a source tensor, as a source of its own."""

    def __init__(self, source: Source, first: int, rows: int) -> None:
        self.source, self.dtype = source, source.dtype
        self.shape = (rows, *source.shape[1:])
        self.offset = first * numel(source.shape[1:])

    def read(self, start: int, end: int, buffer=None):
        return self.source.read(self.offset + start, self.offset + end, buffer)


def make_jobs(name: str, sources: Sequence[Source], out_dtype, write: Callable[[int, Any], None]) -> list[TensorJob]:
    """One job per tensor, or, when the inputs' row counts differ (`vocab="base"`), one per run of rows.

    The vocabulary resolution "base": the output keeps the base's rows (its tokenizer's ids). Rows [0, V) that
    several models have are merged among those models (linear weights rescaled to the same total); rows only
    the base has are the base's; rows beyond the base's vocabulary are dropped. It assumes shared ids are the
    same tokens, as when a model only appended tokens to the base's tokenizer.
    """
    if all(tuple(s.shape) == tuple(sources[0].shape) for s in sources):
        return [TensorJob(name, list(sources), out_dtype, write)]
    base_rows, row_elements = sources[0].shape[0], numel(sources[0].shape[1:])
    bounds = sorted({0, base_rows} | {s.shape[0] for s in sources if s.shape[0] < base_rows})
    jobs = []
    for first, last in zip(bounds, bounds[1:], strict=False):
        models = tuple(i for i, s in enumerate(sources) if s.shape[0] >= last)
        offset = first * row_elements

        def write_rows(start: int, values, offset: int = offset) -> None:
            write(offset + start, values)

        jobs.append(TensorJob(name, [RowRange(sources[i], first, last - first) for i in models], out_dtype,
                              write_rows, models))
    return jobs


class ThreadBuffers(threading.local):
    """Per-thread scratch arrays of one chunk each, reused for every chunk.

    Why: a fresh multi-MB array per chunk is a fresh mmap from malloc, and the kernel then faults in and zeroes
    every page - GBs of page faults over a 0.8 GiB merge. Measured on the bench inputs: reusing buffers cut the
    linear merge's CPU time by ~14% and its peak RSS from 481 to 321 MB.
    """

    def __init__(self, chunk_elements: int) -> None:
        self.chunk_elements = chunk_elements
        self.arrays: dict[tuple[str, np.dtype], np.ndarray] = {}

    def get(self, kind: str, dtype: np.dtype, n: int, per_element: int = 1) -> np.ndarray:
        key = (kind, dtype)
        if key not in self.arrays:
            self.arrays[key] = np.empty(self.chunk_elements * per_element, dtype=dtype)
        return self.arrays[key][: n * per_element]

    def raw(self, n: int) -> np.ndarray:
        """Bytes for reading n elements of any dtype from disk (8 bytes per element at most)."""
        return self.get("raw", np.dtype(np.uint8), n, per_element=8)

    def float32(self, kind: str, n: int) -> np.ndarray:
        return self.get(kind, np.dtype(np.float32), n)


def _read_float32(source: Source, coefficient: float, start: int, end: int, buffers: ThreadBuffers,
                  kind: str) -> np.ndarray:
    """coefficient x source[start:end] in float32, in the thread's `kind` buffer."""
    n = end - start
    return widen(source.read(start, end, buffers.raw(n)), source.dtype, coefficient, buffers.float32(kind, n))


def _gram_partial(job: TensorJob, start: int, end: int, buffers: ThreadBuffers) -> tuple[float, float, float]:
    """This chunk's |a|^2, |b|^2, a.b in float32, added across chunks in float64 by the caller."""
    a = _read_float32(job.sources[0], 1.0, start, end, buffers, "acc")
    b = _read_float32(job.sources[1], 1.0, start, end, buffers, "tmp")
    return float(np.einsum("i,i->", a, a)), float(np.einsum("i,i->", b, b)), float(np.einsum("i,i->", a, b))


def _write_chunk(job: TensorJob, coefficients: Sequence[float], start: int, end: int, buffers: ThreadBuffers) -> None:
    n = end - start
    terms = [(c, s) for c, s in zip(coefficients, job.sources, strict=True) if c != 0.0]
    if job.sources[0].dtype not in FLOATS:  # integer buffers are not averaged: the base's values are kept
        terms = [(1.0, job.sources[0])]
    out = buffers.get("out", STORAGE[job.out_dtype], n)
    if not terms:
        out.fill(0)
        job.write(start, out)
        return
    if len(terms) == 1 and terms[0][0] == 1.0 and terms[0][1].dtype == job.out_dtype:
        job.write(start, terms[0][1].read(start, end, buffers.raw(n)))  # an endpoint: its bytes, no round trip
        return
    # acc = c0*x0 + c1*x1 + ... in float32 (sources are never written)
    (c0, s0), rest = terms[0], terms[1:]
    acc = _read_float32(s0, c0, start, end, buffers, "acc")
    for c, s in rest:
        np.add(acc, _read_float32(s, c, start, end, buffers, "tmp"), out=acc)
    job.write(start, narrow(acc, job.out_dtype, out, buffers))


def run_jobs(jobs: Sequence[TensorJob], spec: MergeSpec, num_layers: int, threads: int | None = None,
             chunk_elements: int = CHUNK_ELEMENTS) -> None:
    """Merge every job's tensor chunk by chunk on a thread pool (steps 1-3 of the module docstring)."""
    threads = threads or default_threads()
    plan = [(job, start, end) for job in jobs for start, end in chunks(numel(job.sources[0].shape), chunk_elements)]
    buffers = ThreadBuffers(min(chunk_elements, max((end - start for _, start, end in plan), default=1)))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="merge") as pool:
        grams: dict[int, Gram | None] = {id(job): None for job in jobs}
        if spec.needs_gram:
            gram_plan = [item for item in plan if item[0].sources[0].dtype in FLOATS and len(item[0].sources) == 2]
            partials = pool.map(lambda item: _gram_partial(*item, buffers), gram_plan)
            sums: dict[int, list[float]] = {}
            for (job, _, _), (aa, bb, ab) in zip(gram_plan, partials, strict=True):  # in chunk order: deterministic
                total = sums.setdefault(id(job), [0.0, 0.0, 0.0])
                total[0] += aa
                total[1] += bb
                total[2] += ab
            grams.update({key: Gram(*values) for key, values in sums.items()})
        coefficients = {id(job): spec.coefficients(job.name, num_layers, grams[id(job)], job.models) for job in jobs}
        for _ in pool.map(lambda it: _write_chunk(it[0], coefficients[id(it[0])], it[1], it[2], buffers), plan):
            pass


# ----------------------------------------------------------------------------------------- in-memory API


def merge_state_dicts(
    method: str,
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float] | None = None,
    t: TSpec | None = None,
    normalize: bool = True,
    threads: int | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
    vocab: str = "error",
) -> dict[str, torch.Tensor]:
    """Merge state dicts (the first is the base) into a new state dict in the base's dtypes.

    `linear`: `weights` (default equal), normalised to sum 1 unless `normalize=False`; `slerp`: exactly two state
    dicts and `t` (a float or a {filter: value-or-anchors, "default": ...} schedule). Same bits as the on-disk merge
    with the same `chunk_elements` (SLERP's Gram sums depend on the chunking). `vocab="base"` accepts embeddings
    of different vocabulary sizes (see `make_jobs`).
    """
    import torch

    spec = MergeSpec.build(method, len(state_dicts), weights=weights, t=t, normalize=normalize)
    _check_state_dicts(state_dicts, vocab)
    out = {name: torch.empty_like(tensor, memory_format=torch.contiguous_format)
           for name, tensor in state_dicts[0].items()}
    jobs = [job for name, target in out.items() for job in _memory_jobs(name, target, state_dicts)]
    run_jobs(jobs, spec, layer_count(list(out)), threads, chunk_elements)
    return out


def merge_into_model(
    model: Any,
    sources: Sequence[Mapping[str, torch.Tensor]],
    method: str,
    weights: Sequence[float] | None = None,
    t: TSpec | None = None,
    normalize: bool = True,
    threads: int | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
    vocab: str = "error",
) -> Any:
    """Write the merge of `sources` into `model` (an nn.Module or a state dict) in place; returns `model`.

    No full copy of the model is made: each chunk is computed and copied into the parameter's own storage. The
    model may itself be one of the sources (e.g. `sources=[model.state_dict(), other]`): a chunk is read before
    the same chunk is written, and SLERP's Gram pass finishes before any write. Tied weights are written once.
    """
    import torch

    spec = MergeSpec.build(method, len(sources), weights=weights, t=t, normalize=normalize)
    _check_state_dicts(sources, vocab)
    target = model.state_dict() if hasattr(model, "state_dict") else model
    jobs, seen = [], set()
    for name, tensor in target.items():
        if tensor.data_ptr() in seen:  # tied to a tensor merged already (lm_head = embed_tokens)
            continue
        if name not in sources[0]:
            raise ArtifactError(f"tensor '{name}' of the target model is in none of the sources; "
                                "merge into a model of the sources' architecture")
        if tuple(tensor.shape) != tuple(sources[0][name].shape):
            raise ArtifactError(f"tensor '{name}': target shape {list(tensor.shape)} but sources have "
                                f"{list(sources[0][name].shape)}; merge into a model of the sources' architecture")
        seen.add(tensor.data_ptr())
        jobs.extend(_memory_jobs(name, tensor, sources))
    with torch.no_grad():
        run_jobs(jobs, spec, layer_count(list(sources[0])), threads, chunk_elements)
    return model


def _check_state_dicts(state_dicts: Sequence[Mapping[str, Any]], vocab: str) -> None:
    labels = [f"state dict {i}" for i in range(len(state_dicts))]
    check_compatible([{k: (tuple(v.shape), v.dtype) for k, v in sd.items()} for sd in state_dicts], labels, vocab)


def _memory_jobs(name: str, target, state_dicts: Sequence[Mapping[str, Any]]) -> list[TensorJob]:
    import torch

    if not target.is_contiguous():
        raise ArtifactError(f"tensor '{name}': the target is not contiguous; call .contiguous() on it first")
    flat = target.detach().view(-1)
    array = storage_view(flat) if flat.device.type == "cpu" else None

    def write(start: int, values: np.ndarray) -> None:
        if array is not None:
            array[start:start + len(values)] = values
        else:  # GPU targets: each chunk back to the device (through int16 for the 2-byte floats numpy lacks)
            host = torch.from_numpy(values.view(np.int16) if values.dtype == np.uint16 else values)
            flat[start:start + len(values)].copy_(host.view(flat.dtype))

    return make_jobs(name, [MemorySource(sd[name], name) for sd in state_dicts], dtype_code(target.dtype, name),
                     write)
