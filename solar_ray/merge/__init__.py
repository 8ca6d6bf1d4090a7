"""Model merging (SOLAR 10.7B s.3.2, and the field's methods): plug-ins, streamed on disk or in memory.

Methods (solar_ray/merge/methods/, each a plug-in registered by name): linear, slerp, task_arithmetic, ties,
dare_linear, dare_ties, model_stock.

In-memory API (Tune sweeps merge and evaluate without writing checkpoints):
    merge_state_dicts(method, [sd_base, sd_other, ...], weights=None, densities=None, **parameters) -> state dict
    merge_into_model(model, [sd_base, sd_other, ...], method, weights=None, densities=None, **parameters) -> model
e.g. merge_state_dicts("ties", [base, a, b], weights=[None, 1, 1], density=0.5).
On disk: `stage: merge` (solar_ray/merge/stage.py) and `solar-ray merge OUT --method ... --model PATH[:W[:D]] ...`.
"""

from solar_ray.merge.core import merge_into_model, merge_state_dicts
from solar_ray.merge.plugin import METHODS, MergeSpec, get_method

__all__ = ["METHODS", "MergeSpec", "get_method", "merge_into_model", "merge_state_dicts"]
