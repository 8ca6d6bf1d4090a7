"""The merge engine shared by the on-disk stream and the in-memory API, so both give the same bits.

Work is cut into chunks of at most `chunk_elements` elements of one flattened tensor; chunk boundaries depend
only on the tensor's size, never on where its bytes live (a safetensors shard on disk, a state dict, a live
model), and every chunk runs the same numpy ops (kernels.py) - which is why an on-disk merge equals an in-memory
one bit for bit. Tensors travel as numpy arrays of their storage dtype, named by safetensors dtype codes ("F16",
"BF16", ...). Steps for one merge:

1. (methods asking for it: SLERP the inputs', model stock the deltas') Gram pass: per chunk, float32 dot
   products of every pair of vectors (numpy einsum: its pairwise-unrolled sums lose ~1e-7 relative over 2M
   elements, BLAS sdot ~1e-5); a tensor's chunk partials are added in float64 in chunk order (deterministic
   whatever the thread schedule);
2. (TIES) trim pass: per tensor and task vector, |x_i - x_0| gathered over the whole tensor (float32, one tensor
   per thread: the one place memory grows with the largest tensor rather than the chunk) to find the int(k n)-th
   largest magnitude and how many entries equal to it each chunk keeps;
3. per tensor, the method (solar_ray/merge/plugin.py) turns its parameters and those statistics into a plan:
   coefficients c_i, or an element-wise task-vector mix;
4. write pass: per chunk, acc = c_0*x_0 (float32), acc += c_i*x_i - or the task-vector mix - cast to the output
   dtype, handed to `write`. A coefficient of exactly 0 drops its input and a lone coefficient of exactly 1
   copies the input bytes, so SLERP at t=0/1 returns the endpoints exactly.

Chunks run on a thread pool: numpy loops and os.pread/pwrite release the GIL, so threads use every core
without copying tensors between processes; memory is `threads` chunks in flight, whatever the model size. The
on-disk merge never imports torch (kernels.py says why); the in-memory API takes and returns torch tensors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from solar_ray.errors import ArtifactError
from solar_ray.merge.methods import task_vectors
from solar_ray.merge.plugin import Linear, MergeSpec, TaskVectors, TensorStats, Trim
from solar_ray.tensors.kernels import FLOATS, STORAGE, narrow, widen
from solar_ray.tensors.layout import count_layers, is_vocab_tensor

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


layer_count = count_layers


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
            if is_vocab_tensor(name) and tuple(other[1:]) == tuple(shape[1:]):
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


def _vectors(job: TensorJob, kind: str, start: int, end: int, buffers: ThreadBuffers) -> list[np.ndarray]:
    """The chunk's float32 vectors a Gram is taken over: the inputs, or the deltas x_i - x_0."""
    values = [_read_float32(s, 1.0, start, end, buffers, f"in{i}") for i, s in enumerate(job.sources)]
    if kind == "inputs":
        return values
    for delta in values[1:]:
        np.subtract(delta, values[0], out=delta)
    return values[1:]


def _gram_partial(job: TensorJob, kind: str, start: int, end: int, buffers: ThreadBuffers) -> np.ndarray:
    """This chunk's dot products of every pair of vectors (float32 sums), added across chunks in float64."""
    vectors = _vectors(job, kind, start, end, buffers)
    gram = np.empty((len(vectors), len(vectors)))
    for i, a in enumerate(vectors):
        for j in range(i, len(vectors)):
            gram[i, j] = gram[j, i] = float(np.einsum("i,i->", a, vectors[j]))
    return gram


def _trims(job: TensorJob, densities: Sequence[float], spans: Sequence[tuple[int, int]],
           buffers: ThreadBuffers) -> tuple[Trim | None, ...]:
    """Step 2 for one tensor: per task vector, the int(k n)-th largest |x_i - x_0| and each chunk's quota of
    entries equal to it (earlier entries first), so that exactly int(k n) entries are kept."""
    n = numel(job.sources[0].shape)
    trims: list[Trim | None] = [None]
    for i, density in enumerate(densities, start=1):
        keep = int(density * n)
        if keep >= n:
            trims.append(None)
            continue
        magnitude = np.empty(n, dtype=np.float32)
        for start, end in spans:
            base = _read_float32(job.sources[0], 1.0, start, end, buffers, "acc")
            other = _read_float32(job.sources[i], 1.0, start, end, buffers, "tmp")
            np.abs(np.subtract(other, base, out=magnitude[start:end]), out=magnitude[start:end])
        if keep == 0:  # nothing kept: a threshold no magnitude exceeds, no ties
            trims.append(Trim(float("inf"), {}))
            continue
        threshold = np.partition(magnitude, n - keep)[n - keep]
        need, quotas = keep - int(np.count_nonzero(magnitude > threshold)), {}
        for start, end in spans:
            equal = int(np.count_nonzero(magnitude[start:end] == threshold))
            quotas[start] = max(0, min(need, equal))
            need -= quotas[start]
        trims.append(Trim(float(threshold), quotas))
    return tuple(trims)


def _write_chunk(job: TensorJob, plan: Linear | TaskVectors, stats: TensorStats, start: int, end: int,
                 buffers: ThreadBuffers) -> None:
    n = end - start
    out = buffers.get("out", STORAGE[job.out_dtype], n)
    if isinstance(plan, TaskVectors):
        base = _read_float32(job.sources[0], 1.0, start, end, buffers, "acc")
        deltas = [_read_float32(s, 1.0, start, end, buffers, f"in{i}") for i, s in enumerate(job.sources[1:], 1)]
        for delta in deltas:
            np.subtract(delta, base, out=delta)
        job.write(start, narrow(task_vectors.apply(plan, base, deltas, start, end, stats.trims),
                                job.out_dtype, out, buffers))
        return
    terms = [(c, s) for c, s in zip(plan.coefficients, job.sources, strict=True) if c != 0.0]
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


def _plan(job: TensorJob, spec: MergeSpec, num_layers: int, stats: TensorStats) -> Linear | TaskVectors:
    if job.sources[0].dtype not in FLOATS:  # integer buffers are not averaged: the base's values are kept
        return Linear([1.0] + [0.0] * (len(job.sources) - 1))
    plan = spec.plan(job.name, num_layers, stats, job.models)
    if isinstance(plan, TaskVectors) and job.models is not None:  # rows some models lack: their own indices
        plan = replace(plan, models=tuple(job.models[1:]))
    return plan


def run_jobs(jobs: Sequence[TensorJob], spec: MergeSpec, num_layers: int, threads: int | None = None,
             chunk_elements: int = CHUNK_ELEMENTS) -> None:
    """Merge every job's tensor chunk by chunk on a thread pool (steps 1-4 of the module docstring)."""
    threads = threads or default_threads()
    spans = {id(job): chunks(numel(job.sources[0].shape), chunk_elements) for job in jobs}
    plan = [(job, start, end) for job in jobs for start, end in spans[id(job)]]
    buffers = ThreadBuffers(min(chunk_elements, max((end - start for _, start, end in plan), default=1)))
    plugin = spec.plugin
    floats = [job for job in jobs if job.sources[0].dtype in FLOATS and len(job.sources) > 1]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="merge") as pool:
        grams: dict[int, np.ndarray] = {}
        if plugin.gram is not None:
            gram_plan = [(job, start, end) for job in floats for start, end in spans[id(job)]]
            partials = pool.map(lambda item: _gram_partial(item[0], plugin.gram, item[1], item[2], buffers),
                                gram_plan)
            for (job, _, _), partial in zip(gram_plan, partials, strict=True):  # in chunk order: deterministic
                grams[id(job)] = grams[id(job)] + partial if id(job) in grams else partial
        trims: dict[int, tuple[Trim | None, ...]] = {}
        if plugin.needs_trim(spec):
            trimmed = [job for job in floats if job.models is None]  # rows only some models have: not trimmed
            densities = plugin.densities(spec)
            for job, result in zip(trimmed, pool.map(lambda j: _trims(j, densities, spans[id(j)], buffers), trimmed),
                                   strict=True):
                trims[id(job)] = result
        stats = {id(job): TensorStats(grams.get(id(job)), trims.get(id(job))) for job in jobs}
        plans = {id(job): _plan(job, spec, num_layers, stats[id(job)]) for job in jobs}
        for _ in pool.map(lambda it: _write_chunk(it[0], plans[id(it[0])], stats[id(it[0])], it[1], it[2], buffers),
                          plan):
            pass


# ----------------------------------------------------------------------------------------- in-memory API


def merge_state_dicts(
    method: str,
    state_dicts: Sequence[Mapping[str, torch.Tensor]],
    weights: Sequence[float | None] | None = None,
    densities: Sequence[float | None] | None = None,
    threads: int | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
    vocab: str = "error",
    **parameters: Any,
) -> dict[str, torch.Tensor]:
    """Merge state dicts (the first is the base) into a new state dict in the base's dtypes.

    `method` is any registered plug-in (solar_ray.merge.plugin.METHODS); `weights` / `densities` are per state
    dict (None: the method's default), `parameters` the method's own (`t=0.3` for slerp, `density=0.5,
    lambda_=1.0` for ties, ...), validated like a config. Same bits as the on-disk merge with the same
    `chunk_elements` (Gram sums depend on the chunking). `vocab="base"` accepts embeddings of different
    vocabulary sizes (see `make_jobs`).
    """
    import torch

    spec = MergeSpec.build(method, len(state_dicts), weights=weights, densities=densities, **parameters)
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
    weights: Sequence[float | None] | None = None,
    densities: Sequence[float | None] | None = None,
    threads: int | None = None,
    chunk_elements: int = CHUNK_ELEMENTS,
    vocab: str = "error",
    **parameters: Any,
) -> Any:
    """Write the merge of `sources` into `model` (an nn.Module or a state dict) in place; returns `model`.

    No full copy of the model is made: each chunk is computed and copied into the parameter's own storage. The
    model may itself be one of the sources (e.g. `sources=[model.state_dict(), other]`): a chunk is read before
    the same chunk is written, and the statistics passes (Gram, trims) finish before any write. Tied weights are written once.
    """
    import torch

    spec = MergeSpec.build(method, len(sources), weights=weights, densities=densities, **parameters)
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
