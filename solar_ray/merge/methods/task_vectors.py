"""Task-vector merges: task arithmetic, TIES, DARE (linear or TIES) - one class, four configured instances.

The first model is the base x_0; every other model i contributes its task vector d_i = x_i - x_0 with a weight
w_i (default 1) and a density k_i (default the global `density`). Per tensor, element-wise, as mergekit 0.1.5's
generalized task arithmetic does:

1. sparsify each d_i: `magnitude` (TIES) keeps its int(k_i * n) largest |d_i| over the whole tensor (ties
   broken by position: the earlier entry is kept); `random` (DARE) keeps each entry with probability k_i, from a
   seeded counter-based generator (`dare_keep`), and with `rescale` divides the kept ones by k_i = 1 - p, so the
   expected delta is unchanged;
2. weight: e_i = w_i * d_i;
3. mix: without consensus, m = sum_i e_i and the divisor is sum_i w_i (taken as 1 when |.| < 1e-8); with TIES
   consensus, the elected sign is that of sum_i e_i (>= 0 counts as +), only entries e_i of that sign (zeros
   never) are summed, and the divisor is the sum of their w_i (1 where none agree): a disjoint mean;
4. merged = x_0 + lambda * (m / divisor if normalize else m).

Task arithmetic (no sparsification, no consensus) is linear in the inputs, so it runs as coefficients
(c_0 = 1 - sum_i c_i, c_i = lambda w_i / divisor); the others run `apply` on each chunk in float32.
Where mergekit refuses a density that keeps no entry of a small tensor (int(k * n) = 0), the whole task vector
of that tensor is dropped here.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import ConfigDict, Field

from solar_ray.config import Strict
from solar_ray.merge.plugin import Linear, MergeMethod, MergeSpec, TaskVectors, TensorStats, Trim, register

LAMBDA = "Scale of the mixed task vector: merged = base + lambda * mix."
DENSITY = ("Fraction of each task vector's entries kept, in (0, 1]: the largest in magnitude (TIES) or a random "
           "sample (DARE, 1 - drop rate p); a model's own `density` overrides it.")


class TaskArithmeticParams(Strict):
    model_config = ConfigDict(populate_by_name=True)

    lambda_: float = Field(default=1.0, alias="lambda", description=LAMBDA)
    normalize: bool = Field(default=False, description="Divide the mixed task vector by the sum of the weights.")


class TiesParams(TaskArithmeticParams):
    density: float = Field(default=1.0, gt=0.0, le=1.0, description=DENSITY)
    normalize: bool = Field(default=True, description="Divide each entry of the mixed task vector by the sum of "
                            "the weights of the task vectors that agree with the elected sign there.")


class DareParams(TaskArithmeticParams):
    density: float = Field(default=1.0, gt=0.0, le=1.0, description=DENSITY)
    rescale: bool = Field(default=True, description="Divide the kept entries by the density 1 - p (DARE's "
                          "rescale), keeping the expected task vector unchanged.")
    seed: int = Field(default=0, ge=0, description="Seed of DARE's random drop (the same seed drops the same entries).")


@dataclass(eq=False)
class TaskVectorMethod(MergeMethod):
    name: str
    reference: str
    Params: type[Strict]
    sparsify: Literal["magnitude", "random"] | None
    consensus: bool
    per_model: tuple[str, ...] = ("weight", "density")
    task_vectors: bool = True

    def needs_trim(self, spec: MergeSpec) -> bool:
        return self.sparsify == "magnitude" and any(d < 1.0 for d in self.densities(spec))

    def densities(self, spec: MergeSpec) -> list[float]:
        default = getattr(spec.params, "density", 1.0)
        given = spec.densities or [None] * spec.num_models
        return [default if d is None else float(d) for d in given[1:]]

    def plan(self, spec: MergeSpec, name: str, num_layers: int, stats: TensorStats) -> Linear | TaskVectors:
        weights = [1.0 if w is None else float(w) for w in (spec.weights or [None] * spec.num_models)[1:]]
        p = spec.params
        if self.sparsify is None and not self.consensus:  # task arithmetic: linear in the inputs
            total = math.fsum(weights)
            divisor = total if p.normalize and abs(total) >= 1e-8 else 1.0
            coefficients = [p.lambda_ * w / divisor for w in weights]
            return Linear([1.0 - math.fsum(coefficients), *coefficients])
        return TaskVectors(
            weights=tuple(weights), lambda_=p.lambda_, normalize=p.normalize, consensus=self.consensus,
            sparsify=self.sparsify, densities=tuple(self.densities(spec)), rescale=getattr(p, "rescale", False),
            seed=getattr(p, "seed", 0), tensor=name, models=tuple(range(1, spec.num_models)),
        )


# --------------------------------------------------------------------------------------------- the kernel


def dare_keep(seed: int, tensor: str, model: int, start: int, end: int, density: float) -> np.ndarray:
    """Which entries [start, end) of model `model`'s task vector of `tensor` DARE keeps (True with probability
    `density`). Counter-based (splitmix64 of the entry's index, keyed by seed, tensor and model), so an entry's
    fate does not depend on how the tensor is cut into chunks, on threads, or on the engine (disk or memory)."""
    key = hashlib.blake2b(f"{seed}:{model}:{tensor}".encode(), digest_size=8).digest()
    x = np.arange(start + 1, end + 1, dtype=np.uint64)
    x *= np.uint64(0x9E3779B97F4A7C15)
    x += np.uint64(int.from_bytes(key, "little"))
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)) < np.uint64(round(density * 2**53))  # top 53 bits: uniform in [0, 2^53)


def magnitude_keep(delta: np.ndarray, trim: Trim, start: int) -> np.ndarray:
    """Entries of this chunk that the magnitude trim keeps (|d| above the threshold, and its quota of ties)."""
    magnitude = np.abs(delta)
    keep = magnitude > np.float32(trim.threshold)
    quota = trim.quotas.get(start, 0)
    if quota:
        keep[np.flatnonzero(magnitude == np.float32(trim.threshold))[:quota]] = True
    return keep


def apply(plan: TaskVectors, base: np.ndarray, deltas: list[np.ndarray], start: int, end: int,
          trims: tuple[Trim | None, ...] | None) -> np.ndarray:
    """Steps 1-4 on one chunk, in float32: `base` (x_0) becomes the merged values; `deltas` (x_i - x_0) are
    overwritten; `trims[i]` is input i's magnitude trim (index 0, the base, unused). Returns `base`."""
    for i, delta in enumerate(deltas):
        if plan.sparsify == "magnitude" and trims is not None and trims[i + 1] is not None:
            delta[~magnitude_keep(delta, trims[i + 1], start)] = 0.0
        elif plan.sparsify == "random" and plan.densities[i] < 1.0:
            delta[~dare_keep(plan.seed, plan.tensor, plan.models[i], start, end, plan.densities[i])] = 0.0
            if plan.rescale:
                delta *= np.float32(1.0 / plan.densities[i])
        delta *= np.float32(plan.weights[i])
    if plan.consensus:
        positive = np.add.reduce(deltas) >= 0 if len(deltas) > 1 else deltas[0] >= 0
        divisor = np.zeros_like(base)
        agree = [np.where(positive, d > 0, d < 0) for d in deltas]
        for d, a, w in zip(deltas, agree, plan.weights, strict=True):
            d[~a] = 0.0
            divisor[a] += np.float32(w)
        mixed = np.add.reduce(deltas) if len(deltas) > 1 else deltas[0]
        divisor[divisor == 0] = 1.0
    else:
        mixed = np.add.reduce(deltas) if len(deltas) > 1 else deltas[0]
        total = math.fsum(plan.weights)
        divisor = np.float32(total if abs(total) >= 1e-8 else 1.0)
    if plan.normalize:
        mixed = mixed / divisor
    mixed *= np.float32(plan.lambda_)
    base += mixed
    return base


# ------------------------------------------------------------------------------------------- the methods

register(TaskVectorMethod(
    name="task_arithmetic", reference="Ilharco et al. 2023, Editing models with task arithmetic (arXiv 2212.04089)",
    Params=TaskArithmeticParams, sparsify=None, consensus=False, per_model=("weight",),
))
register(TaskVectorMethod(
    name="ties", reference="Yadav et al. 2023, TIES-Merging: resolving interference when merging models "
    "(arXiv 2306.01708)", Params=TiesParams, sparsify="magnitude", consensus=True,
))
register(TaskVectorMethod(
    name="dare_linear", reference="Yu et al. 2024, Language models are Super Mario: absorbing abilities from "
    "homologous models as a free lunch (DARE, arXiv 2311.03099)", Params=DareParams, sparsify="random",
    consensus=False,
))
register(TaskVectorMethod(
    name="dare_ties", reference="Yu et al. 2024, DARE (arXiv 2311.03099) with TIES sign consensus (arXiv 2306.01708)",
    Params=DareParams, sparsify="random", consensus=True,
))
