"""`slerp`: spherical interpolation between a base and one other model, per tensor (SOLAR's Merge v4)."""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from solar_ray.config import Strict
from solar_ray.errors import ConfigError
from solar_ray.merge.plugin import Linear, MergeMethod, MergeSpec, TensorStats, register
from solar_ray.merge.schedule import TSpec, check_t, t_for_tensor

# mergekit's SLERP threshold: above this |cos|, sin(theta) is too small to divide by, so interpolate linearly.
COLINEAR_COS = 0.9995


class SlerpParams(Strict):
    t: TSpec = Field(
        description="t in [0, 1] (0 = base, 1 = other), or {filter: t or [anchors over layers], default: t}, "
        "e.g. {self_attn: [0, 0.5, 1], mlp: [1, 0.5, 0], default: 0.5}."
    )

    @field_validator("t")
    @classmethod
    def _in_range(cls, value):
        try:
            return check_t(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None  # names the key: "t.mlp: t=1.2 is outside ..."


def slerp_coefficients(t: float, aa: float, bb: float, ab: float) -> list[float]:
    """Coefficients (s0, s1) with slerp(a, b; t) = s0*a + s1*b, from |a|^2, |b|^2 and a.b.

    1. t = 0 or 1 -> the endpoint itself (exactly: the other coefficient is 0 and is skipped);
    2. cos = a.b / (|a||b|); theta = acos(cos) is the angle of the *normalised* tensors (as in mergekit);
    3. if a tensor is zero or |cos| > 0.9995 (nearly colinear, sin(theta) ~ 0): linear (1-t, t);
    4. else s0 = sin((1-t) theta) / sin(theta), s1 = sin(t theta) / sin(theta), applied to the unnormalised tensors.
    """
    if t == 0.0:
        return [1.0, 0.0]
    if t == 1.0:
        return [0.0, 1.0]
    if aa == 0.0 or bb == 0.0:
        return [1.0 - t, t]
    cos = ab / math.sqrt(aa * bb)
    if abs(cos) > COLINEAR_COS:
        return [1.0 - t, t]
    theta = math.acos(max(-1.0, min(1.0, cos)))
    sin_theta = math.sin(theta)
    return [math.sin((1.0 - t) * theta) / sin_theta, math.sin(t * theta) / sin_theta]


class SlerpMerge(MergeMethod):
    name = "slerp"
    reference = "Shoemake 1985, Animating rotation with quaternion curves; SOLAR 10.7B (arXiv 2312.15166) s.3.2"
    Params = SlerpParams
    per_model = ()
    max_models = 2
    gram = "inputs"

    def plan(self, spec: MergeSpec, name: str, num_layers: int, stats: TensorStats) -> Linear:
        t = t_for_tensor(spec.params.t, name, num_layers)
        if stats.gram is None:  # integer tensors have no Gram (the engine keeps the base's)
            return Linear([1.0, 0.0])
        g = stats.gram
        return Linear(slerp_coefficients(t, g[0, 0], g[1, 1], g[0, 1]))


register(SlerpMerge())
