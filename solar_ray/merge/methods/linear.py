"""`linear`: the weighted average of the models (model soups; the SOLAR paper's Average merges)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from pydantic import Field

from solar_ray.config import Strict
from solar_ray.merge.plugin import Linear, MergeMethod, MergeSpec, TensorStats, normalized, register


class LinearParams(Strict):
    normalize: bool = Field(default=True, description="Divide the weights by their sum (a sum of 0 is an error).")


class LinearMerge(MergeMethod):
    name = "linear"
    reference = "Wortsman et al. 2022, Model soups (arXiv 2203.05482); SOLAR 10.7B (arXiv 2312.15166) s.3.2"
    Params = LinearParams

    def check(self, spec: MergeSpec) -> MergeSpec:
        weights = [1.0 if w is None else w for w in (spec.weights or [None] * spec.num_models)]
        return replace(spec, weights=tuple(normalized(weights, spec.params.normalize)))

    def plan(self, spec: MergeSpec, name: str, num_layers: int, stats: TensorStats) -> Linear:
        return Linear(list(spec.weights))

    def subset(self, spec: MergeSpec, models: Sequence[int]) -> MergeSpec:
        """Rows some models lack: the others' weights rescaled to the full weights' total."""
        subset = [spec.weights[i] for i in models]
        scale = math.fsum(spec.weights) / math.fsum(subset)
        return replace(spec, num_models=len(models), weights=tuple(w * scale for w in subset))


register(LinearMerge())
