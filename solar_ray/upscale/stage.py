"""`stage: upscale` - depth up-scaling of any `*.layers.{i}.*` decoder checkpoint, streamed; DUS and its rivals.

Methods (solar_ray/upscale/plans.py says how each builds its layers):
- `dus` (default, SOLAR 10.7B): base layers 0..n-M-1 then M..n-1, renumbered 0..2(n-M)-1 (n=32, M=8 -> 48);
- `dus_average`: DUS's two copies overlapping on 2M layers, averaged there, same 2(n-M) layers;
- `stack`: two full copies, n -> 2n;
- `block_expansion` (LLaMA-Pro): P identity blocks inserted evenly (copies with o_proj / down_proj zeroed), n -> n+P.
Embeddings, final norm and lm_head are carried over once.

Features:
1. M from `drop` (default n/4), P from `insert` (default n/4), or either from a target `layers` count;
2. architecture-generic via solar_ray/tensors/layout.py: per-layer config lists (`layer_types`, ...) sliced like
   the tensors, layer-index lists remapped, tied embeddings kept tied (a redundant lm_head is not copied);
3. `as_llama`: a Mistral checkpoint re-expressed as Llama-2 (full attention, max positions 4096 unless given);
4. streaming (stream.py): headers parsed, tensor bytes copied file to file; memory stays flat whatever the size;
5. output: sharded safetensors + index, config.json, tokenizer / generation config / chat template files copied
   when present, README.md model card, lineage.json (parents {"base"}, parameter counts); written atomically.

Raises ArtifactError (one line) for: M out of range (M < 1 or 2M >= n), P not dividing n, a parameter the
method does not take, a missing or misnamed tensor, a
truncated shard, pickle-only weights without `allow_pickle`, an unknown architecture, an existing output without
`force`.

Example (experiments/tiny/upscale.yaml):
    stage: upscale
    base: runs/tiny/base
    drop: 2
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from solar_ray.artifacts import PICKLE_SUFFIXES, atomic_dir, refuse_existing_output, write_json, write_lineage
from solar_ray.config import LocalPath, StageConfig, dump_config
from solar_ray.errors import ArtifactError
from solar_ray.tensors import layout
from solar_ray.tensors.safetensors_io import (
    INDEX_NAME,
    MeanTensor,
    TensorRef,
    ZeroTensor,
    read_checkpoint,
    write_checkpoint,
)
from solar_ray.upscale import plans

SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
# Files never copied from the base as-is: weights (rewritten), config (rewritten), our own artifact files.
NOT_COPIED = {"config.json", INDEX_NAME, "lineage.json", "README.md"}


def parse_size(text: str) -> int:
    """'5GB' -> 5_000_000_000, '512MiB' -> 536_870_912 (units as in transformers' max_shard_size)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).upper() not in SIZE_UNITS:
        raise ValueError(f"expected a size such as 5GB or 500MiB, got {text!r}")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2).upper()])


class Config(StageConfig):
    """A `stage: upscale` config: the base model, how many layers to drop (or the target depth), the output form."""

    stage: Literal["upscale"] = Field(default="upscale", description="Always 'upscale'.")
    base: LocalPath = Field(description="Base model directory (Hugging Face layout, safetensors shards).")
    method: Literal["dus", "dus_average", "stack", "block_expansion"] = Field(
        default="dus", description="dus (SOLAR), dus_average (overlapping layers averaged), stack (n -> 2n) or "
        "block_expansion (LLaMA-Pro: identity blocks inserted)."
    )
    drop: int | None = Field(
        default=None, description="dus / dus_average: M, layers dropped from the end of the first copy and the "
        "start of the second. Default n/4 (8 of 32 -> 48 layers)."
    )
    insert: int | None = Field(
        default=None, description="block_expansion: P, identity blocks inserted, one after each of P even groups "
        "of layers (P divides n). Default n/4."
    )
    layers: int | None = Field(default=None, description="Target layer count instead of drop / insert: "
                               "L = 2(n-M) (dus, dus_average), n+P (block_expansion), 2n (stack).")
    as_llama: bool = Field(default=False, description="Write a Mistral base as a Llama-2 model (as SOLAR did).")
    max_position_embeddings: int | None = Field(
        default=None, ge=1, description="With as_llama: max positions of the Llama config (default 4096)."
    )
    allow_pickle: bool = Field(
        default=False, description="Accept pickle (.bin) weights; loading pickle can run arbitrary code."
    )
    max_shard_size: str = Field(default="5GB", description="Largest output shard, e.g. 5GB or 500MiB.")

    @field_validator("max_shard_size")
    @classmethod
    def _size_parses(cls, value: str) -> str:
        parse_size(value)
        return value

    @model_validator(mode="after")
    def _one_depth(self) -> Config:
        if self.drop is not None and self.layers is not None:
            raise ValueError(f"give drop or layers, not both (got drop={self.drop}, layers={self.layers})")
        if self.drop is not None and self.method not in ("dus", "dus_average"):
            raise ValueError(f"drop: a DUS parameter; method {self.method} drops no layers")
        if self.insert is not None and self.method != "block_expansion":
            raise ValueError(f"insert: a block_expansion parameter; method {self.method} inserts no blocks")
        if self.max_position_embeddings is not None and not self.as_llama:
            raise ValueError("max_position_embeddings applies only with as_llama: true")
        return self


def run(config: Config) -> Path:
    """Stage entry point: write the up-scaled model to `config.output`."""
    return upscale(config)


def upscale(config: Config) -> Path:
    """Depth up-scale `config.base` into `config.output` (see the module docstring). Returns the output dir."""
    started = time.perf_counter()
    base = Path(config.base)
    out = Path(config.output or f"runs/upscale-{base.name}")
    # Cheap checks first, so bad input fails before anything is written.
    refuse_existing_output(out, config.force)
    base_config, arch, pickles = inspect_base(base, config.allow_pickle)
    n = layout.layer_count(base_config, arch, f"{base / 'config.json'}")
    plan = plans.make_plan(config.method, n, config.drop, config.insert, config.layers, str(base))
    if config.as_llama and base_config.get("model_type") not in ("mistral", "llama"):
        raise ArtifactError(
            f"{base / 'config.json'}: --as-llama converts Mistral (or Llama) checkpoints; got model_type "
            f"{base_config.get('model_type')!r} - drop --as-llama"
        )
    with atomic_dir(out, force=config.force) as tmp:
        weights_dir = _pickle_to_safetensors(base, pickles, tmp / ".converted") if pickles else base
        tensors = read_checkpoint(weights_dir)
        mapping = map_tensors(tensors, arch, plan, layout.is_tied(base_config, arch), base)
        stats = write_checkpoint(tmp, mapping, parse_size(config.max_shard_size))
        if pickles:
            shutil.rmtree(tmp / ".converted")
        new_config = plans.upscale_config(base_config, arch, plan)
        if config.as_llama:
            new_config = plans.as_llama_config(new_config, config.max_position_embeddings)
        write_json(tmp / "config.json", new_config)
        copied = copy_side_files(base, tmp)
        metrics = {
            "layers_before": n,
            "layers_after": plan.layers,
            "method": plan.method,
            "drop": plan.drop,
            "inserted": plan.inserted,
            "params_before": sum(ref.numel for ref in tensors.values()),
            "params_after": sum(ref.numel for _, ref in mapping),
            **stats,
            "seconds": round(time.perf_counter() - started, 3),
        }
        (tmp / "README.md").write_text(model_card(base, plan, metrics, new_config, config.as_llama))
        write_lineage(tmp, "upscale", dump_config(config), parents={"base": base}, metrics=metrics,
                      layer_sources=[list(srcs) for srcs in plan.sources], identity_layers=sorted(plan.identity),
                      copied_files=copied)
    return out


def inspect_base(base: Path, allow_pickle: bool) -> tuple[dict[str, Any], layout.Architecture, list[Path]]:
    """(config.json, architecture, pickle weight files to convert) of a base dir; one-line errors otherwise."""
    if not base.is_dir():
        raise ArtifactError(f"{base}: base model directory not found")
    config_path = base / "config.json"
    if not config_path.is_file():
        raise ArtifactError(f"{base}: not a Hugging Face model directory (no config.json)")
    try:
        base_config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{config_path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    arch = layout.architecture_for(base_config, str(config_path))
    if any(base.glob("*.safetensors")):
        return base_config, arch, []
    pickles = sorted(p for p in base.iterdir() if p.suffix in PICKLE_SUFFIXES and not p.name.startswith("training"))
    if not pickles:
        raise ArtifactError(f"{base}: no weights found (expected *.safetensors shards)")
    if not allow_pickle:
        raise ArtifactError(
            f"{pickles[0]}: pickle checkpoint refused (loading pickle can run arbitrary code); convert it to "
            "safetensors or pass --allow-pickle if you trust it"
        )
    return base_config, arch, pickles


def _pickle_to_safetensors(base: Path, pickles: list[Path], into: Path) -> Path:
    """Convert trusted pickle shards one at a time (memory: one shard) so the streaming path can read them."""
    import torch
    from safetensors.torch import save_file

    into.mkdir()
    for path in pickles:
        state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        seen: set[int] = set()
        tensors = {}
        for name, tensor in state.items():
            ptr = tensor.untyped_storage().data_ptr()
            # safetensors refuses shared storage (tied weights); give repeats their own copy.
            tensors[name] = tensor.contiguous() if ptr not in seen else tensor.clone().contiguous()
            seen.add(ptr)
        save_file(tensors, into / f"{path.stem}.safetensors", metadata={"format": "pt"})
        del state, tensors
    return into


def map_tensors(
    tensors: dict[str, TensorRef], arch: layout.Architecture, plan: plans.LayerPlan, tied: bool, base: Path
) -> list[tuple[str, TensorRef | ZeroTensor | MeanTensor]]:
    """(output name, source) for every output tensor, in file order: embeddings, layers 0.., the rest. A source
    is a base tensor (copied), its zeros (an identity layer's residual outputs) or a mean of base tensors.

    Checks that every base layer 0..n-1 has the same tensor names and none lies outside; names the offender.
    """
    by_layer: dict[int, dict[str, TensorRef]] = {}
    others: list[TensorRef] = []
    pattern = arch.layer_pattern
    for name, ref in tensors.items():
        match = pattern.match(name)
        if match:
            by_layer.setdefault(int(match.group(1)), {})[match.group(2)] = ref
        elif not (tied and name == arch.lm_head_key):  # tied: the output embedding is the input one
            others.append(ref)
    _check_layers(by_layer, arch, plan.n, base)
    names = {ref.name for ref in others}
    required = [arch.embed_key] + ([] if tied else [arch.lm_head_key])
    for key in required:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.8)
            hint = f" (found {close[0]!r}: misnamed?)" if close else ""
            raise ArtifactError(f"{base}: tensor '{key}' is missing from the checkpoint{hint}")
    first = sorted((r for r in others if r.name == arch.embed_key), key=lambda r: r.name)
    rest = sorted((r for r in others if r.name != arch.embed_key), key=lambda r: (str(r.file), r.start))
    mapping = [(ref.name, ref) for ref in first]
    for j, sources in enumerate(plan.sources):
        for suffix, ref in sorted(by_layer[sources[0]].items(), key=lambda item: (str(item[1].file), item[1].start)):
            source: TensorRef | ZeroTensor | MeanTensor = ref
            if j in plan.identity and arch.writes_residual(suffix):
                source = ZeroTensor(ref.dtype, ref.shape)
            elif len(sources) > 1:
                source = MeanTensor(tuple(by_layer[i][suffix] for i in sources))
            mapping.append((plans.rename_layer(ref.name, arch, j), source))
    mapping += [(ref.name, ref) for ref in rest]
    return mapping


def _check_layers(by_layer: dict[int, dict[str, TensorRef]], arch: layout.Architecture, n: int, base: Path) -> None:
    extra = sorted(i for i in by_layer if i >= n)
    if extra:
        name = next(iter(by_layer[extra[0]].values())).name
        raise ArtifactError(f"{base}: tensor '{name}' is for layer {extra[0]}, but config.json says {n} layers")
    missing_layers = [i for i in range(n) if i not in by_layer]
    if missing_layers:
        raise ArtifactError(
            f"{base}: no tensors for layer {missing_layers[0]} ('{arch.layer_prefix}{missing_layers[0]}.*'); "
            f"config.json says {n} layers - is the checkpoint complete?"
        )
    # The usual tensor set is what most layers have; a layer differing from it holds a missing or misnamed one.
    counts = Counter(suffix for tensors in by_layer.values() for suffix in tensors)
    usual = {suffix for suffix, count in counts.items() if 2 * count > n}
    for i in range(n):
        missing, odd = sorted(usual - set(by_layer[i])), sorted(set(by_layer[i]) - usual)
        if missing:
            also = f"; it has '{arch.layer_prefix}{i}.{odd[0]}' instead (misnamed?)" if odd else ""
            raise ArtifactError(
                f"{base}: tensor '{arch.layer_prefix}{i}.{missing[0]}' is missing (other layers have it){also}"
            )
        if odd:
            raise ArtifactError(
                f"{base}: tensor '{arch.layer_prefix}{i}.{odd[0]}' is unexpected (most layers have no such tensor)"
            )


def copy_side_files(base: Path, out: Path) -> list[str]:
    """Copy tokenizer, generation config, chat template and other small non-weight files, when present."""
    copied = []
    for path in sorted(base.iterdir()):
        skip = (
            not path.is_file() or path.name in NOT_COPIED or path.name.startswith(".")
            or path.suffix in (".safetensors", *PICKLE_SUFFIXES) or path.name.endswith(".index.json")
        )
        if not skip:
            shutil.copy2(path, out / path.name)
            copied.append(path.name)
    return copied


def model_card(base: Path, plan: plans.LayerPlan, metrics: dict[str, Any], config: dict[str, Any],
               as_llama: bool) -> str:
    untrained = ("The inserted blocks compute the identity until trained: fine-tune them (LLaMA-Pro trains only "
                 "them)." if plan.method == "block_expansion" else
                 "The seam between the two copies is untrained: continue pretraining before use.")
    return (
        f"# Depth up-scaled {base.name}\n\n"
        f"Built by `solar-ray upscale --method {plan.method}` from `{base}`.\n\n"
        f"- architecture: {config.get('architectures', ['?'])[0]} (model_type {config.get('model_type')})"
        f"{', converted from Mistral to Llama-2' if as_llama else ''}\n"
        f"- layers: {plan.n} -> {plan.layers} ({plan.describe()})\n"
        f"- parameters: {metrics['params_before']:,} -> {metrics['params_after']:,}\n\n"
        f"{untrained}\n"
    )


# ------------------------------------------------------------------ the stage contract (solar_ray/contract.py)


def model_config(config: Config, sub: str, models) -> dict[str, Any] | None:
    """The up-scaled config, built from the base's by the same layout helpers `upscale` writes it with."""
    base = models.config(config.base)
    if base is None:
        return None
    arch = layout.architecture_for(base, config.base)
    n = layout.layer_count(base, arch, config.base)
    plan = plans.make_plan(config.method, n, config.drop, config.insert, config.layers, config.base)
    new = plans.upscale_config(base, arch, plan)
    return plans.as_llama_config(new, config.max_position_embeddings) if config.as_llama else new


def workload(config: Config, models):
    from solar_ray.contract import Workload

    new = model_config(config, "", models)
    if new is None:
        return Workload()
    from solar_ray.plan.estimate import count
    from solar_ray.plan.models import shape_of

    shape = shape_of(new)
    return Workload(work=f"{count(shape.params)} parameters", disk={"export": 2 * shape.params},
                    notes=[f"writes {shape.layers} layers, {count(shape.params)} parameters (bf16)"])
