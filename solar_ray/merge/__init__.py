"""Model merging (SOLAR 10.7B s.3.2): weighted average and SLERP, streamed on disk or in memory.

In-memory API (Tune sweeps merge and evaluate without writing checkpoints):
    merge_state_dicts(method, [sd_base, sd_other, ...], weights=None, t=None, normalize=True) -> state dict
    merge_into_model(model, [sd_base, sd_other, ...], method, weights=None, t=None, normalize=True) -> model
On disk: `stage: merge` (solar_ray/merge/stage.py) and `solar-ray merge OUT --method ... --model PATH[:W] ...`.
"""

from solar_ray.merge.core import merge_into_model, merge_state_dicts
from solar_ray.merge.methods import METHODS, MergeSpec, get_method

__all__ = ["METHODS", "MergeSpec", "get_method", "merge_into_model", "merge_state_dicts"]
