"""Stage configs: YAML files validated by pydantic, with `extends:` inheritance and dotted overrides.

A config file names its stage (`stage: sft`); the stage's pydantic model validates the rest. Unknown keys are
an error that names the key, the file and the nearest valid spelling. A file may start from another:

    extends: data_sft_v2.yaml   # path relative to this file; mappings merge, lists and scalars replace
    sources:
      synth_math_instruct: {cap: 52000}

Overrides on the command line use dotted keys and YAML values:
`solar-ray run experiments/tiny/sft.yaml optim.learning_rate=2e-5 scaling.num_workers=1`.

Paths: every path field is typed `LocalPath` (or `ModelPath`), and validation makes it absolute against the
directory solar-ray runs from (the driver's working directory, not the config file's). Configs are validated in
the driver, so no Ray worker, Tune trial or actor (each with a working directory of its own) ever sees a relative
path; re-validating an absolute path in a worker changes nothing. Only `extends:` is relative to its file.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from solar_ray.errors import ConfigError


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, and defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True, protected_namespaces=())


def absolute_unless_uri(value: str) -> str:
    """A storage URI (s3://, gs://...) as given; a local path made absolute."""
    return value if "://" in value else str(Path(value).expanduser().resolve())


# A local path (or a storage URI such as s3://...) that reaches Ray workers as an absolute path: Ray Train V2
# workers, Tune trials and the workers of a joined `ray start` cluster run in working directories of their own,
# so a relative path would name another file there (or, for transformers, a hub repo id).
LocalPath = Annotated[str, AfterValidator(absolute_unless_uri)]


def local_dir_or_hub_id(value: str) -> str:
    """A hub id (`org/name` or `name`, with no such local directory) as given; a local path made absolute."""
    is_hub_id = re.fullmatch(r"[\w.-]+(/[\w.-]+)?", value) and not value.startswith(".")
    return value if is_hub_id and not Path(value).exists() else absolute_unless_uri(value)


# A model reference: a local model directory (made absolute like LocalPath) or a model hub id.
ModelPath = Annotated[str, AfterValidator(local_dir_or_hub_id)]


class StageConfig(Strict):
    """Fields every stage config has. A stage's own model subclasses this with `stage: Literal[...]`."""

    stage: str = Field(description="The stage this config runs, e.g. upscale, merge, data, sft, dpo, eval.")
    output: LocalPath | None = Field(
        default=None,
        description="Artifact directory to write. Default: runs/<config file name>; the pipeline sets it.",
    )
    force: bool = Field(default=False, description="Replace the output directory if it exists.")


# ---------------------------------------------------------------------------------------------- loading


def read_yaml(path: Path) -> dict[str, Any]:
    """One YAML mapping from a file; errors name the file."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(tree).__name__}")
    return tree


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in `update` replaces the value in `base`."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_extends(path: Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read `path` and merge it over the file it `extends` (recursively). Returns the flattened tree."""
    path = path.resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"{path}: 'extends' forms a cycle: {chain}")
    tree = read_yaml(path)
    parent = tree.pop("extends", None)
    if parent is None:
        return tree
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must be a file path, got {parent!r}")
    return deep_merge(resolve_extends(path.parent / parent, (*_seen, path)), tree)


def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set `tree["a"]["b"]["c"] = value` for key "a.b.c", creating (copies of) mappings on the way."""
    parts = key.split(".")
    if not key or any(not part for part in parts):
        raise ConfigError(f"override key {key!r}: expected dotted.key")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        child = dict(child) if isinstance(child, dict) else {}
        node[part] = child
        node = child
    node[parts[-1]] = value


def apply_overrides(tree: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply `dotted.key=value` overrides; values are parsed as YAML (`3`, `2e-5`, `[a, b]`, `null`)."""
    tree = dict(tree)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        set_dotted(tree, key, value)
    return tree


# ------------------------------------------------------------------------------------------- validating


def _model_fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model found by following `loc` from `model`; [] if not a model."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _first_model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _first_model_in(annotation: Any) -> Any:
    """The BaseModel class inside an annotation such as `Foo | None` or `dict[str, Foo]`, else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _first_model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def describe_validation_error(exc: ValidationError, model: type[BaseModel], source: str) -> str:
    """One line naming the source, the dotted key, what was wrong and (for typos) the closest valid key."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc) or "<top level>"
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    if err["type"] == "extra_forbidden":
        valid = _model_fields_at(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else (f"; valid keys: {', '.join(valid)}" if valid else "")
        return f"{source}: unknown key '{key}'{hint}{more}"
    if err["type"] == "missing":
        return f"{source}: missing required key '{key}'{more}"
    value = err.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a mapping"
    return f"{source}: key '{key}': {err['msg']} (got {shown}){more}"


def validate(model: type[StageConfig], tree: dict[str, Any], source: str) -> StageConfig:
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, model, source)) from None


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> StageConfig:
    """Read a stage config file, apply overrides, pick the stage's model from its `stage:` key, validate.

    Raises ConfigError (one line naming file and key) for missing files, bad YAML, unknown stages or keys.
    """
    path = Path(path)
    tree = apply_overrides(resolve_extends(path), overrides)
    source = f"{path}" + (f" (with overrides {' '.join(overrides)})" if overrides else "")
    config = build_config(tree, source)
    if config.output is None:
        config.output = absolute_unless_uri(str(Path("runs") / path.stem))
    return config


def build_config(tree: dict[str, Any], source: str) -> StageConfig:
    """Validate a config tree against the model of the stage its `stage:` key names."""
    from solar_ray.stages import stage_module

    stage = tree.get("stage")
    if not isinstance(stage, str):
        raise ConfigError(f"{source}: missing required key 'stage' (which stage this config runs)")
    return validate(stage_module(stage, source=source).Config, tree, source)


def dump_config(config: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of a config, for lineage and hashing."""
    return config.model_dump(mode="json")
