"""SLERP's t schedules (mergekit style): one value, or by tensor family and varying over depth.

    t: 0.5
    t: {self_attn: [0, 0.5, 1], mlp: [1, 0.5, 0], default: 0.5}

A filter is a substring of the tensor name ("self_attn", "mlp"); a list of anchors varies linearly across the
layers. `family_schedule` is the one mapping from the flat `t` / `t_attn` / `t_mlp` knobs (CLI options, sweep
keys) to such a schedule.
"""

from __future__ import annotations

from collections.abc import Mapping

from solar_ray.errors import ConfigError
from solar_ray.tensors.layout import layer_index

TValue = float | list[float]
TSpec = float | dict[str, TValue]
# the tensor families the flat knobs address, as filters on tensor names
FAMILY_FILTERS = {"t_attn": "self_attn", "t_mlp": "mlp"}


def family_schedule(t: TValue | None, t_attn: TValue | None = None, t_mlp: TValue | None = None) -> TSpec | None:
    """t, or {self_attn: t_attn, mlp: t_mlp, default: t} when a family is given (t then covers the rest)."""
    by_family = {FAMILY_FILTERS[k]: v for k, v in (("t_attn", t_attn), ("t_mlp", t_mlp)) if v is not None}
    if not by_family:
        return t
    if t is None:
        raise ConfigError("t: missing; t_attn / t_mlp set some tensors, t gives the rest")
    return {**by_family, "default": t}


def t_for_tensor(t: TSpec, name: str, num_layers: int) -> float:
    """The SLERP t of tensor `name` under schedule `t`.

    A dict picks the first filter (in order) that is a substring of the name, else "default". A list of anchors
    is a gradient over depth: layer i of n sits at x = i/(n-1) and t is interpolated linearly between anchors
    spread evenly over [0, 1] (e.g. [0, 0.5, 1] over 5 layers -> 0, .25, .5, .75, 1). Tensors outside the
    layers sit at the ends: embeddings at x = 0, the final norm and lm_head at x = 1.
    """
    if not isinstance(t, dict):
        return float(t)
    value = next((v for key, v in t.items() if key != "default" and key in name), t["default"])
    if not isinstance(value, list):
        return float(value)
    if len(value) == 1:
        return float(value[0])
    layer = layer_index(name)
    if layer is not None:
        x = layer / (num_layers - 1) if num_layers > 1 else 0.0
    else:
        x = 0.0 if "embed" in name else 1.0
    position = x * (len(value) - 1)
    low = min(int(position), len(value) - 2)
    frac = position - low
    return float(value[low] * (1.0 - frac) + value[low + 1] * frac)


def check_t(t: TSpec, source: str = "t") -> TSpec:
    """Validate a t schedule: values in [0, 1], a dict has a 'default', lists are non-empty."""
    entries: Mapping[str, TValue] = t if isinstance(t, dict) else {"": t}
    if isinstance(t, dict) and "default" not in t:
        raise ConfigError(f"{source}: a t schedule by tensor family needs a 'default' entry, got keys {list(t)}")
    for key, value in entries.items():
        values = value if isinstance(value, list) else [value]
        where = f"{source}.{key}" if key else source
        if not values:
            raise ConfigError(f"{where}: empty list; give a value in [0, 1] or a list of anchors such as [0, 0.5, 1]")
        for v in values:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= float(v) <= 1.0:
                raise ConfigError(f"{where}: t={v!r} is outside [0, 1]; t=0 keeps the base, t=1 the other model")
    return t
