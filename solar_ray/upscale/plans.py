"""Up-scaling methods as layer plans: which base layers build each output layer. Pure functions, no weights.

An n-layer base becomes an L-layer model; output layer j is built from `sources[j]`, one base layer (copied byte
for byte) or two (averaged element-wise), and, for the layers in `identity`, with the tensors that write into
the residual stream zeroed so the layer passes its input through unchanged. Methods (`METHODS`):

- `dus` (SOLAR 10.7B, arXiv 2312.15166): two copies, the last M layers of the first and the first M of the
  second dropped: 0..n-M-1, M..n-1 -> 2(n-M) layers (n=32, M=8 -> 48);
- `dus_average`: the same two full copies, the second placed to start at output layer n-2M so the output again
  has 2(n-M) layers; the 2M positions where the copies overlap hold the average of the two base layers there
  (base j and j-(n-2M)) instead of DUS's cut (mergekit issue 252 asks for this "SOLAR-like" slicing);
- `stack`: two full copies, no drop: n -> 2n;
- `block_expansion` (LLaMA-Pro, Wu et al. 2024, arXiv 2401.02415): after each of P even groups of n/P layers,
  a copy of the group's last layer with its attention output and MLP down projections zeroed: n -> n + P, and
  the expanded model computes exactly what the base computes until it is trained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from solar_ray.errors import ArtifactError
from solar_ray.tensors.layout import Architecture


@dataclass(frozen=True)
class LayerPlan:
    """Output layer j is the average of base layers `sources[j]` (one layer: a copy); `identity` lists the output
    layers whose residual-writing tensors are zero."""

    method: str
    n: int
    sources: tuple[tuple[int, ...], ...]
    identity: frozenset[int] = frozenset()
    drop: int | None = None
    inserted: int | None = None

    @property
    def layers(self) -> int:
        return len(self.sources)

    def targets(self, source_layer: int) -> list[int]:
        """Output layers that read base layer `source_layer`."""
        return [j for j, srcs in enumerate(self.sources) if source_layer in srcs]

    def describe(self) -> str:
        """One line for model cards and logs."""
        if self.method == "dus":
            keep = self.n - self.drop
            return f"dropped M={self.drop}: layers 0..{keep - 1}, then {self.drop}..{self.n - 1} of the base"
        if self.method == "dus_average":
            return (f"M={self.drop}: two copies overlapping on output layers {self.n - 2 * self.drop}.."
                    f"{self.n - 1}, averaged there")
        if self.method == "stack":
            return "two copies of every layer, no drop"
        return f"{self.inserted} identity blocks inserted, one after every {self.n // self.inserted} layers"


def dus(n: int, drop: int) -> LayerPlan:
    keep = n - drop
    return LayerPlan("dus", n, tuple((i,) for i in (*range(keep), *range(drop, n))), drop=drop)


def dus_average(n: int, drop: int) -> LayerPlan:
    shift = n - 2 * drop  # where the second copy starts; output length shift + n = 2(n - M)
    sources = []
    for j in range(shift + n):
        first = (j,) if j < n else ()
        second = (j - shift,) if j >= shift else ()
        sources.append(first + second)
    return LayerPlan("dus_average", n, tuple(sources), drop=drop)


def stack(n: int) -> LayerPlan:
    return LayerPlan("stack", n, tuple((i,) for i in (*range(n), *range(n))))


def block_expansion(n: int, inserted: int) -> LayerPlan:
    group = n // inserted
    sources, identity = [], set()
    for g in range(inserted):
        sources += [(i,) for i in range(g * group, (g + 1) * group)]
        identity.add(len(sources))
        sources.append(((g + 1) * group - 1,))
    return LayerPlan("block_expansion", n, tuple(sources), frozenset(identity), inserted=inserted)


def resolve_drop(n: int, drop: int | None, layers: int | None, source: str) -> int:
    """M from --drop or --layers (L = 2(n-M)); default n/4. ArtifactError unless 1 <= M and 2M < n."""
    if drop is not None and layers is not None:
        raise ArtifactError(f"{source}: give drop or layers, not both (got drop={drop}, layers={layers})")
    if layers is not None:
        if layers % 2:
            raise ArtifactError(
                f"{source}: layers={layers} is odd; the output has 2(n-M) layers, so give an even count "
                f"between {n + 2 - n % 2} and {2 * n - 2} for this {n}-layer base"
            )
        drop = n - layers // 2
    elif drop is None:
        drop = n // 4  # the paper's 8 of 32
    if drop < 1 or 2 * drop >= n:
        what = f"layers={layers} gives drop M={drop}" if layers is not None else f"drop M={drop}"
        hint = f"1..{(n - 1) // 2}" if n >= 3 else "none (the base needs at least 3 layers)"
        raise ArtifactError(f"{source}: {what} is out of range for a {n}-layer base; need 1 <= M and 2M < n: M in {hint}")
    return drop


def resolve_inserted(n: int, inserted: int | None, layers: int | None, source: str) -> int:
    """P from `insert` or `layers` (L = n + P); default n/4. P must divide n (even groups, as LLaMA-Pro)."""
    if inserted is not None and layers is not None:
        raise ArtifactError(f"{source}: give insert or layers, not both (got insert={inserted}, layers={layers})")
    p = layers - n if layers is not None else (inserted if inserted is not None else max(1, n // 4))
    if p < 1 or n % p:
        divisors = [d for d in range(1, n + 1) if n % d == 0]
        what = f"layers={layers} gives insert P={p}" if layers is not None else f"insert P={p}"
        raise ArtifactError(f"{source}: {what} does not split {n} layers into even groups; P in {divisors}")
    return p


def make_plan(method: str, n: int, drop: int | None, inserted: int | None, layers: int | None,
              source: str) -> LayerPlan:
    """The plan of `method` for an n-layer base; ArtifactError naming the parameter that does not fit."""
    if method in ("dus", "dus_average"):
        if inserted is not None:
            raise ArtifactError(f"{source}: insert is a block_expansion parameter; {method} takes drop or layers")
        return METHODS[method](n, resolve_drop(n, drop, layers, source))
    if drop is not None:
        raise ArtifactError(f"{source}: drop is a DUS parameter; method {method} drops no layers")
    if method == "stack":
        if inserted is not None or (layers is not None and layers != 2 * n):
            raise ArtifactError(f"{source}: stack always makes 2n = {2 * n} layers; give no insert or layers")
        return stack(n)
    return block_expansion(n, resolve_inserted(n, inserted, layers, source))


METHODS: dict[str, Callable[..., LayerPlan]] = {
    "dus": dus, "dus_average": dus_average, "stack": stack, "block_expansion": block_expansion,
}


def rename_layer(name: str, arch: Architecture, new_index: int) -> str:
    match = arch.layer_pattern.match(name)
    return f"{arch.layer_prefix}{new_index}.{match.group(2)}"


def upscale_config(config: dict[str, Any], arch: Architecture, plan: LayerPlan) -> dict[str, Any]:
    """config.json of the up-scaled model: layer count, per-layer lists mapped (an averaged layer takes its first
    source's entry), layer-index lists remapped."""
    out = dict(config)
    out[arch.layer_count_key] = plan.layers
    for key in arch.per_layer_keys:
        values = config.get(key)
        if isinstance(values, list) and len(values) == plan.n:
            out[key] = [values[srcs[0]] for srcs in plan.sources]
    for key in arch.layer_index_keys:
        values = config.get(key)
        if isinstance(values, list):
            out[key] = [j for j, srcs in enumerate(plan.sources) if set(srcs) & set(values)]
    return out


def as_llama_config(config: dict[str, Any], max_position_embeddings: int | None) -> dict[str, Any]:
    """Re-express a Mistral-style config as Llama-2 (how SOLAR's base was built): same tensors, full attention."""
    out = {k: v for k, v in config.items() if k not in ("sliding_window", "layer_types", "use_sliding_window",
                                                         "max_window_layers")}
    out["model_type"] = "llama"
    out["architectures"] = ["LlamaForCausalLM"]
    out["max_position_embeddings"] = max_position_embeddings or 4096
    return out
