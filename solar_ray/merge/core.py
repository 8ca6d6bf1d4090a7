"""The merge engine shared by the on-disk stream and the in-memory API, so both give the same bits.

Work is cut into chunks of at most `chunk_elements` elements of one flattened tensor; chunk boundaries depend
only on the tensor's size, never on where its bytes live (a safetensors shard on disk, a state dict, a live
model), and every chunk runs the same torch ops - which is why an on-disk merge equals an in-memory one bit for
bit. Steps for one merge:

1. (methods needing it, SLERP) Gram pass: per chunk, float64 sums |a|^2, |b|^2, a.b; a tensor's chunk partials
   are added in chunk order (deterministic whatever the thread schedule);
2. per tensor, the method turns its parameters (and Gram) into coefficients c_i;
3. write pass: per chunk, acc = c_0*x_0 (float32), acc += c_i*x_i, cast to the output dtype, handed to `write`.
   A coefficient of exactly 0 drops its input and a lone coefficient of exactly 1 copies the input bytes, so
   SLERP at t=0/1 returns the endpoints exactly.

Chunks run on a thread pool: torch kernels and os.pread/pwrite release the GIL, so threads use every core
without copying tensors between processes; memory is `threads` chunks in flight, whatever the model size.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from solar_ray.errors import ArtifactError
from solar_ray.merge.methods import Gram, MergeSpec, TSpec

if TYPE_CHECKING:
    import torch

# 4M elements = 16 MiB per float32 chunk: big enough that per-chunk overhead (<1 ms) is noise, small enough that
# 2 threads x (inputs + float32 temporaries) stay well under 100 MB.
CHUNK_ELEMENTS = 4 << 20
VOCAB_TENSORS = ("embed_tokens", "lm_head", "wte", "embed_in", "embed_out")
LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


class Source(Protocol):
    """One input tensor, readable by flat element range."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    def read(self, start: int, end: int) -> torch.Tensor: ...  # 1-D, elements [start, end), source dtype


class MemorySource:
    """A tensor in memory (state dict entry or live parameter); chunks are views, not copies."""

    def __init__(self, tensor: Any) -> None:
        self.shape, self.dtype = tuple(tensor.shape), tensor.dtype
        self.flat = tensor.detach().reshape(-1)  # a view unless the tensor is non-contiguous

    def read(self, start: int, end: int):
        return self.flat[start:end]


def numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def chunks(n: int, chunk_elements: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk_elements, n)) for s in range(0, n, chunk_elements)] or [(0, 0)]


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


# ------------------------------------------------------------------------------------------- validation


def layer_count(names: Sequence[str]) -> int:
    """Decoder layers in a checkpoint, from its tensor names (`*.layers.{i}.*`)."""
    indices = {int(m.group(1)) for name in names if (m := LAYER_INDEX.search(name))}
    return max(indices) + 1 if indices else 0


def check_compatible(models: Sequence[Mapping[str, tuple[tuple[int, ...], Any]]], labels: Sequence[str]) -> None:
    """Every model must hold the same tensor names with the same shapes and float-ness, and as many layers.

    `models[i]` maps tensor name -> (shape, dtype). Raises ArtifactError naming the tensor and the models.
    """
    base, base_label = models[0], labels[0]
    base_layers = layer_count(list(base))
    for info, label in zip(models[1:], labels[1:]):
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
                raise ArtifactError(
                    f"tensor '{name}': vocabulary sizes differ ({shape[0]} rows in {base_label}, {other[0]} in "
                    f"{label}); the token ids may not mean the same tokens - resize both to one tokenizer first"
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
    out_dtype: Any  # torch.dtype
    write: Callable[[int, Any], None]  # (start element, 1-D tensor of out_dtype)


def _gram_partial(job: TensorJob, start: int, end: int) -> tuple[float, float, float]:
    import torch

    a = job.sources[0].read(start, end).to(torch.float64)
    b = job.sources[1].read(start, end).to(torch.float64)
    return float(torch.dot(a, a)), float(torch.dot(b, b)), float(torch.dot(a, b))


def _is_float(dtype) -> bool:
    return dtype.is_floating_point


def _write_chunk(job: TensorJob, coefficients: Sequence[float], start: int, end: int) -> None:
    import torch

    terms = [(c, s) for c, s in zip(coefficients, job.sources) if c != 0.0]
    if not _is_float(job.sources[0].dtype):  # integer buffers are not averaged: the base's values are kept
        terms = [(1.0, job.sources[0])]
    if not terms:
        job.write(start, torch.zeros(end - start, dtype=job.out_dtype))
        return
    if len(terms) == 1 and terms[0][0] == 1.0:  # an endpoint: its bytes, not a float round trip
        job.write(start, terms[0][1].read(start, end).to(job.out_dtype))
        return
    (c0, s0), rest = terms[0], terms[1:]
    acc = torch.mul(s0.read(start, end).to(torch.float32), c0)  # a new tensor: never scale a source in place
    for c, s in rest:
        acc.add_(s.read(start, end).to(torch.float32), alpha=c)
    job.write(start, acc.to(job.out_dtype))


def run_jobs(jobs: Sequence[TensorJob], spec: MergeSpec, num_layers: int, threads: int | None = None,
             chunk_elements: int = CHUNK_ELEMENTS) -> None:
    """Merge every job's tensor chunk by chunk on a thread pool (steps 1-3 of the module docstring)."""
    threads = threads or default_threads()
    plan = [(job, start, end) for job in jobs for start, end in chunks(numel(job.sources[0].shape), chunk_elements)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="merge") as pool:
        grams: dict[str, Gram | None] = {job.name: None for job in jobs}
        if spec.needs_gram:
            gram_plan = [item for item in plan if _is_float(item[0].sources[0].dtype)]
            partials = pool.map(lambda item: _gram_partial(*item), gram_plan)
            sums: dict[str, list[float]] = {}
            for (job, _, _), (aa, bb, ab) in zip(gram_plan, partials):  # in chunk order: deterministic
                total = sums.setdefault(job.name, [0.0, 0.0, 0.0])
                total[0] += aa
                total[1] += bb
                total[2] += ab
            grams.update({name: Gram(*values) for name, values in sums.items()})
        coefficients = {job.name: spec.coefficients(job.name, num_layers, grams[job.name]) for job in jobs}
        for _ in pool.map(lambda item: _write_chunk(item[0], coefficients[item[0].name], item[1], item[2]), plan):
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
) -> dict[str, torch.Tensor]:
    """Merge state dicts (the first is the base) into a new state dict in the base's dtypes.

    `linear`: `weights` (default equal), normalised to sum 1 unless `normalize=False`; `slerp`: exactly two state
    dicts and `t` (a float or a {filter: value-or-anchors, "default": ...} schedule). Same bits as the on-disk merge
    with the same `chunk_elements` (SLERP's Gram sums depend on the chunking).
    """
    import torch

    spec = MergeSpec.build(method, len(state_dicts), weights=weights, t=t, normalize=normalize)
    _check_state_dicts(state_dicts)
    out = {name: torch.empty_like(tensor, memory_format=torch.contiguous_format)
           for name, tensor in state_dicts[0].items()}
    jobs = [_memory_job(name, target, state_dicts) for name, target in out.items()]
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
) -> Any:
    """Write the merge of `sources` into `model` (an nn.Module or a state dict) in place; returns `model`.

    No full copy of the model is made: each chunk is computed and copied into the parameter's own storage. The
    model may itself be one of the sources (e.g. `sources=[model.state_dict(), other]`): a chunk is read before
    the same chunk is written, and SLERP's Gram pass finishes before any write. Tied weights are written once.
    """
    import torch

    spec = MergeSpec.build(method, len(sources), weights=weights, t=t, normalize=normalize)
    _check_state_dicts(sources)
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
        jobs.append(_memory_job(name, tensor, sources))
    with torch.no_grad():
        run_jobs(jobs, spec, layer_count(list(sources[0])), threads, chunk_elements)
    return model


def _check_state_dicts(state_dicts: Sequence[Mapping[str, Any]]) -> None:
    labels = [f"state dict {i}" for i in range(len(state_dicts))]
    check_compatible([{k: (tuple(v.shape), v.dtype) for k, v in sd.items()} for sd in state_dicts], labels)


def _memory_job(name: str, target, state_dicts: Sequence[Mapping[str, Any]]) -> TensorJob:
    if not target.is_contiguous():
        raise ArtifactError(f"tensor '{name}': the target is not contiguous; call .contiguous() on it first")
    flat = target.detach().view(-1)

    def write(start: int, values) -> None:
        flat[start:start + values.numel()].copy_(values)

    return TensorJob(name, [MemorySource(sd[name]) for sd in state_dicts], target.dtype, write)
