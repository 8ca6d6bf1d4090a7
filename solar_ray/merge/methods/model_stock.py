"""`model_stock`: the base and the average of two or more fine-tuned models, interpolated per tensor by the angle
between their task vectors (Jang et al. 2024, Model Stock, arXiv 2403.19522).

Per tensor, with N fine-tuned models w_1..w_N of a base w_0 and deltas d_i = w_i - w_0:
1. cos = the mean over pairs i < j of d_i.d_j / max(|d_i||d_j|, 1e-6), each clamped to [-1, 1] (the paper has
   one angle for two models; for more, mergekit's mean of the pairwise cosines);
2. t = N cos / (1 + (N - 1) cos);
3. merged = t * mean(w_1..w_N) + (1 - t) * w_0: coefficients (1 - t, t/N, ..., t/N).
"""

from __future__ import annotations

import math

from solar_ray.config import Strict
from solar_ray.merge.plugin import Linear, MergeMethod, MergeSpec, TensorStats, register

NORM_FLOOR = 1e-6  # as mergekit: |d_i||d_j| below this is taken as this (identical models: cos 0, t 0)


class ModelStockParams(Strict):
    """Model stock has no parameters: t comes from the models themselves."""


def model_stock_t(gram) -> float:
    """t of step 2 from the (N, N) Gram matrix of the deltas."""
    n = gram.shape[0]
    cosines = [max(-1.0, min(1.0, gram[i, j] / max(math.sqrt(gram[i, i] * gram[j, j]), NORM_FLOOR)))
               for i in range(n) for j in range(i + 1, n)]
    cos = math.fsum(cosines) / len(cosines)
    denominator = 1.0 + (n - 1) * cos
    return n * cos / denominator if denominator != 0.0 else 0.0


class ModelStockMerge(MergeMethod):
    name = "model_stock"
    reference = "Jang et al. 2024, Model Stock: All we need is just a few fine-tuned models (arXiv 2403.19522)"
    Params = ModelStockParams
    per_model = ()
    min_models = 3
    gram = "deltas"
    task_vectors = True

    def plan(self, spec: MergeSpec, name: str, num_layers: int, stats: TensorStats) -> Linear:
        n = spec.num_models - 1
        if stats.gram is None:
            return Linear([1.0] + [0.0] * n)
        t = model_stock_t(stats.gram)
        return Linear([1.0 - t] + [t / n] * n)


register(ModelStockMerge())
