"""What a merge method is, and the registry the engines and configs look methods up in.

A method is a plug-in (an instance of a `MergeMethod` subclass, registered by name with `register`): it declares
its name, a paper reference, its parameters as a pydantic model (`Params`: types, bounds, defaults and a
description per field, which the CLI and config docs show), which per-model parameters it reads (`weight`,
`density`), how many models it merges, and which statistics of a tensor it needs before merging it:

- `gram`: "inputs" (SLERP: dot products of the input tensors) or "deltas" (model stock: of the task vectors
  x_i - x_0), summed over the whole tensor by the engine's first pass;
- `needs_trim(spec)`: TIES keeps each task vector's `density` largest-magnitude entries, a whole-tensor rank the
  engine computes in a pass of its own (solar_ray/merge/core.py).

Per tensor it then returns a plan the engine runs chunk by chunk: `Linear` (merged = sum_i c_i x_i) or
`TaskVectors` (merged = x_0 + lambda * mix of the sparsified, weighted deltas, element-wise; see
solar_ray/merge/methods/task_vectors.py). Variants are configured instances of one class (TIES and DARE are
`TaskVectorMethod`s with other settings), and nothing outside a plug-in branches on a method's name.

Pure Python + numpy + pydantic (no torch import) so configs validate fast and the on-disk merge stays torch-free.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import ValidationError

from solar_ray.config import Strict
from solar_ray.errors import ConfigError

PER_MODEL = ("weight", "density")


@dataclass(frozen=True)
class Trim:
    """The magnitude trim of one task vector over one tensor: keep |d| > threshold, and of the entries equal to
    it the first ones in flat order, `quotas[chunk start]` of them in each chunk (so exactly k are kept)."""

    threshold: float
    quotas: Mapping[int, int]


@dataclass(frozen=True)
class TensorStats:
    """What the engine measured on one tensor before merging it."""

    gram: np.ndarray | None = None  # float64 (k, k): dot products of the inputs or of the deltas
    trims: tuple[Trim | None, ...] | None = None  # per input model (None: keep every entry)


@dataclass(frozen=True)
class Linear:
    """merged = sum_i coefficients[i] * x_i."""

    coefficients: list[float]


@dataclass(frozen=True)
class TaskVectors:
    """merged = x_0 + lambda * mix(d_1 .. d_k), d_i = x_i - x_0 sparsified and weighted (element-wise)."""

    weights: tuple[float, ...]  # per task vector (inputs 1..k)
    lambda_: float
    normalize: bool
    consensus: bool  # TIES sign election + disjoint mean
    sparsify: Literal["magnitude", "random"] | None
    densities: tuple[float, ...]
    rescale: bool  # random drop: divide the kept entries by the density
    seed: int
    tensor: str  # name of the tensor (keys the random drop)
    models: tuple[int, ...]  # input-model index of each task vector (keys the random drop)


class MergeMethod:
    """Base of the plug-ins: class attributes describe the method, `plan` merges one tensor."""

    name: str
    reference: str
    Params: ClassVar[type[Strict]]
    per_model: tuple[str, ...] = ("weight",)
    min_models: int = 2
    max_models: int | None = None
    gram: Literal["inputs", "deltas"] | None = None
    task_vectors: bool = False  # the first model is a base, the others contribute x_i - x_0

    def check(self, spec: MergeSpec) -> MergeSpec:
        """Cross-parameter rules (ConfigError naming the key); may return the spec with resolved values."""
        return spec

    def needs_trim(self, spec: MergeSpec) -> bool:
        return False

    def plan(self, spec: MergeSpec, name: str, num_layers: int, stats: TensorStats) -> Linear | TaskVectors:
        raise NotImplementedError

    def subset(self, spec: MergeSpec, models: Sequence[int]) -> MergeSpec:
        """The spec for rows only `models` have (vocab="base"): their own per-model values."""
        def pick(values):
            return None if values is None else tuple(values[i] for i in models)

        return replace(spec, num_models=len(models), weights=pick(spec.weights), densities=pick(spec.densities))


METHODS: dict[str, MergeMethod] = {}

# The built-in plug-ins' package, imported by path on first lookup (as solar_ray/stages.py does for stages):
# its modules import this one to register, so an import statement here would close an import circle.
BUILTIN_METHODS = "solar_ray.merge.methods"


def register(method: MergeMethod) -> MergeMethod:
    METHODS[method.name] = method
    return method


def get_method(name: str) -> MergeMethod:
    importlib.import_module(BUILTIN_METHODS)  # the built-in plug-ins register themselves on import

    if name not in METHODS:
        raise ConfigError(f"method: unknown merge method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def method_names() -> list[str]:
    get_method("linear")
    return sorted(METHODS)


def check_method_name(value: str) -> str:
    """A config validator's check: `value` names a registered merge method (ValueError otherwise)."""
    if value not in method_names():
        raise ValueError(f"unknown merge method {value!r}; known: {', '.join(method_names())}")
    return value


@dataclass(frozen=True)
class MergeSpec:
    """A validated merge: the method, its parameters (`params`, the plug-in's Params) and per-model values."""

    method: str
    num_models: int
    params: Any
    weights: tuple[float, ...] | None = None
    densities: tuple[float | None, ...] | None = None
    labels: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def build(cls, method: str, num_models: int, weights: Sequence[float | None] | None = None,
              densities: Sequence[float | None] | None = None, labels: Sequence[str] | None = None,
              **parameters: Any) -> MergeSpec:
        """Check everything against the method; one-line ConfigError naming the bad key. `labels` name the
        models in messages (default `models[i]`); None parameters count as not given."""
        plugin = get_method(method)
        labels = tuple(labels or (f"models[{i}]" for i in range(num_models)))
        if num_models < plugin.min_models or (plugin.max_models and num_models > plugin.max_models):
            want = (f"exactly {plugin.min_models}" if plugin.max_models == plugin.min_models
                    else f"at least {plugin.min_models}")
            raise ConfigError(f"models: {method} merges {want} models, got {num_models}")
        params = validate_parameters(plugin, {k: v for k, v in parameters.items() if v is not None})
        per_model = {"weight": weights, "density": densities}
        for key, values in per_model.items():
            if values is None:
                continue
            if len(values) != num_models:
                raise ConfigError(f"{key}: {len(values)} values for {num_models} models; give one per model")
            given = [i for i, v in enumerate(values) if v is not None]
            if given and key not in plugin.per_model:
                raise ConfigError(f"{labels[given[0]]}.{key}: {method} takes no per-model {key}")
            if plugin.task_vectors and 0 in given:
                raise ConfigError(f"{labels[0]}.{key}: the base model of {method} has no task vector; "
                                  f"give a {key} to the other models only")
            if key == "density":
                for i in given:
                    if not 0.0 < float(values[i]) <= 1.0:
                        raise ConfigError(f"{labels[i]}.density: {values[i]!r} is outside (0, 1]; it is the "
                                          "fraction of the task vector's entries kept")
        spec = cls(method, num_models, params, None if weights is None else tuple(weights),
                   None if densities is None else tuple(densities), labels)
        return plugin.check(spec)

    @property
    def plugin(self) -> MergeMethod:
        return get_method(self.method)

    def plan(self, name: str, num_layers: int, stats: TensorStats,
             models: Sequence[int] | None = None) -> Linear | TaskVectors:
        """The merge of one tensor, or of rows only `models` have (vocab="base"): a lone model is copied, and
        a subset smaller than the method's minimum keeps the base's rows."""
        if models is None or len(models) == self.num_models:
            return self.plugin.plan(self, name, num_layers, stats)
        if len(models) == 1 or len(models) < self.plugin.min_models:
            return Linear([1.0] + [0.0] * (len(models) - 1))
        return self.plugin.plan(self.plugin.subset(self, models), name, num_layers, stats)

    def summary(self) -> dict[str, Any]:
        """The method's parameters as given to lineage.json and model cards."""
        return self.params.model_dump(by_alias=True)


def validate_parameters(plugin: MergeMethod, parameters: Mapping[str, Any]) -> Any:
    """`parameters` as the plug-in's Params; ConfigError `parameters.<key>: ...` for the first problem."""
    try:
        return plugin.Params.model_validate(dict(parameters))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"]) or "parameters"
        if error["type"] == "extra_forbidden":
            known = ", ".join(f.alias or n for n, f in plugin.Params.model_fields.items()) or "none"
            raise ConfigError(f"parameters.{key}: not a parameter of {plugin.name}; its parameters: {known}") from None
        if error["type"] == "missing":
            description = plugin.Params.model_fields[_field_name(plugin, key)].description
            raise ConfigError(f"parameters.{key}: {plugin.name} needs {key}: {description}") from None
        if error["type"] == "value_error":  # our own validators' messages show the value (and may name the key)
            message = error["msg"].removeprefix("Value error, ")
            named = message.startswith((f"{key}:", f"{key}."))
            raise ConfigError(f"parameters.{message}" if named else f"parameters.{key}: {message}") from None
        raise ConfigError(f"parameters.{key}: {error['msg']} (got {error.get('input')!r})") from None


def _field_name(plugin: MergeMethod, key: str) -> str:
    for name, info in plugin.Params.model_fields.items():
        if key in (name, info.alias):
            return name
    return key


def parameter_help(key: str) -> str:
    """A parameter's description (from the first plug-in declaring it) and the methods taking it, for --help."""
    get_method("linear")
    users, description = [], ""
    for name in sorted(METHODS):
        for field_name, info in METHODS[name].Params.model_fields.items():
            if key in (field_name, info.alias):
                users.append(name)
                description = description or (info.description or "")
    return f"{description} Methods: {', '.join(users)}."


def normalized(weights: Sequence[float], normalize: bool, source: str = "weights") -> list[float]:
    """The weights applied: divided by their sum unless `normalize` is False. Sum 0 is an error."""
    total = math.fsum(weights)
    if total == 0.0:
        raise ConfigError(
            f"{source}: weights {list(weights)} sum to 0; give weights with a non-zero sum, e.g. 0.5 and 0.5"
        )
    return [float(w) / total for w in weights] if normalize else [float(w) for w in weights]
