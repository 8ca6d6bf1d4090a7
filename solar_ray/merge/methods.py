"""Merge methods as small plug-ins: a name, a paper reference, its parameters, and per-tensor coefficients.

Both methods of the SOLAR paper produce, for each tensor, a linear combination of the input tensors

    merged = sum_i c_i * x_i          (float32 arithmetic, cast back to the inputs' dtype)

whose coefficients c_i depend on the method's parameters and, for SLERP, on the angle between the two tensors.
A method therefore only computes the c_i (`coefficients`) from its parameters and, when it asks for it
(`needs_gram`), the tensors' Gram statistics (|a|^2, |b|^2, a.b); the element-wise work and the streaming live in
solar_ray/merge/core.py and are shared by every method. Adding a method = one `MergeMethod(...)` in METHODS.

Pure Python (no torch import) so configs validate fast.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from solar_ray.errors import ConfigError

# A t schedule: one value, or {filter: value-or-gradient, ..., "default": ...} (mergekit style). A filter is a
# substring of the tensor name ("self_attn", "mlp"); a list of anchors varies linearly across the layers.
TValue = float | list[float]
TSpec = float | dict[str, TValue]

# mergekit's SLERP threshold: above this |cos|, sin(theta) is too small to divide by, so interpolate linearly.
COLINEAR_COS = 0.9995
LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


@dataclass(frozen=True)
class Gram:
    """Statistics of two tensors a (base) and b (other): float32 chunk dot products summed in float64."""

    aa: float
    bb: float
    ab: float


@dataclass(frozen=True)
class MergeMethod:
    name: str
    reference: str
    parameters: str
    min_models: int
    max_models: int | None
    needs_gram: bool
    # (spec, tensor name, layer count, Gram or None) -> one coefficient per input model
    coefficients: Callable[[MergeSpec, str, int, Gram | None], list[float]]


@dataclass(frozen=True)
class MergeSpec:
    """A validated merge: the method's name and its parameters (weights already normalised when asked)."""

    method: str
    num_models: int
    weights: tuple[float, ...] | None = None
    t: TSpec | None = None

    @classmethod
    def build(cls, method: str, num_models: int, weights: Sequence[float] | None = None, t: TSpec | None = None,
              normalize: bool = True) -> MergeSpec:
        """Check the parameters against the method; ConfigError naming the bad one."""
        plugin = get_method(method)
        if num_models < plugin.min_models or (plugin.max_models and num_models > plugin.max_models):
            want = (f"exactly {plugin.min_models}" if plugin.max_models == plugin.min_models
                    else f"at least {plugin.min_models}")
            raise ConfigError(f"models: {method} merges {want} models, got {num_models}")
        if method == "linear":
            weights = [1.0] * num_models if weights is None else list(weights)
            if len(weights) != num_models:
                raise ConfigError(f"weights: {len(weights)} weights for {num_models} models; give one per model")
            return cls(method, num_models, weights=tuple(linear_weights(weights, normalize)))
        if t is None:
            raise ConfigError(f"t: {method} needs t in [0, 1] (0 = base model, 1 = the other model)")
        return cls(method, num_models, t=check_t(t))

    def coefficients(self, name: str, num_layers: int, gram: Gram | None,
                     models: Sequence[int] | None = None) -> list[float]:
        """One coefficient per input model, or per model in `models` (rows only some models have, vocab="base"):
        a lone model is copied; linear weights of the subset are rescaled to the full weights' total."""
        if models is None or len(models) == self.num_models:
            return get_method(self.method).coefficients(self, name, num_layers, gram)
        if len(models) == 1:
            return [1.0]
        subset = [self.weights[i] for i in models]
        return [w * math.fsum(self.weights) / math.fsum(subset) for w in subset]

    @property
    def needs_gram(self) -> bool:
        return get_method(self.method).needs_gram


# ------------------------------------------------------------------------------------------------ linear


def linear_weights(weights: Sequence[float], normalize: bool, source: str = "weights") -> list[float]:
    """The weights actually applied: divided by their sum unless `normalize` is False. Sum 0 is an error."""
    total = math.fsum(weights)
    if total == 0.0:
        raise ConfigError(
            f"{source}: weights {list(weights)} sum to 0; give weights with a non-zero sum, e.g. 0.5 and 0.5"
        )
    return [float(w) / total for w in weights] if normalize else [float(w) for w in weights]


def _linear(spec: MergeSpec, name: str, num_layers: int, gram: Gram | None) -> list[float]:
    return list(spec.weights)


# ------------------------------------------------------------------------------------------------- SLERP


def slerp_coefficients(t: float, gram: Gram) -> list[float]:
    """Coefficients (s0, s1) with slerp(a, b; t) = s0*a + s1*b.

    1. t = 0 or 1 -> the endpoint itself (exactly: the other coefficient is 0 and is skipped);
    2. cos = a.b / (|a||b|); theta = acos(cos) is the angle of the *normalised* tensors (as in mergekit);
    3. if a tensor is zero or |cos| > 0.9995 (nearly colinear, sin(theta) ~ 0): linear (1-t, t);
    4. else s0 = sin((1-t) theta) / sin(theta), s1 = sin(t theta) / sin(theta), applied to the unnormalised tensors.
    """
    if t == 0.0:
        return [1.0, 0.0]
    if t == 1.0:
        return [0.0, 1.0]
    if gram.aa == 0.0 or gram.bb == 0.0:
        return [1.0 - t, t]
    cos = gram.ab / math.sqrt(gram.aa * gram.bb)
    if abs(cos) > COLINEAR_COS:
        return [1.0 - t, t]
    theta = math.acos(max(-1.0, min(1.0, cos)))
    sin_theta = math.sin(theta)
    return [math.sin((1.0 - t) * theta) / sin_theta, math.sin(t * theta) / sin_theta]


def _slerp(spec: MergeSpec, name: str, num_layers: int, gram: Gram | None) -> list[float]:
    return slerp_coefficients(t_for_tensor(spec.t, name, num_layers), gram)


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
    match = LAYER_INDEX.search(name)
    if match:
        x = int(match.group(1)) / (num_layers - 1) if num_layers > 1 else 0.0
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


METHODS: dict[str, MergeMethod] = {
    "linear": MergeMethod(
        name="linear",
        reference="Wortsman et al. 2022, Model soups (arXiv 2203.05482); SOLAR 10.7B (arXiv 2312.15166) s.3.2",
        parameters="weights: one per model, normalised to sum 1 unless normalize is false",
        min_models=2,
        max_models=None,
        needs_gram=False,
        coefficients=_linear,
    ),
    "slerp": MergeMethod(
        name="slerp",
        reference="Shoemake 1985, Animating rotation with quaternion curves; SOLAR 10.7B (arXiv 2312.15166) s.3.2",
        parameters="t in [0, 1] (0 = base, 1 = other), optionally by tensor family and varying over layers",
        min_models=2,
        max_models=2,
        needs_gram=True,
        coefficients=_slerp,
    ),
}


def get_method(name: str) -> MergeMethod:
    if name not in METHODS:
        raise ConfigError(f"method: unknown merge method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name]

