"""The rehearsal's scale profile: size changes only, laid over an experiment's stage configs where they are built.

A profile file (e.g. experiments/solar_10_7b/rehearsal.yaml) gives dotted keys per stage kind (`kinds:`, by the
config's `stage:`) and per stage (`stages:`, by name, over its kind's), plus the experiment's `parallel`. A mapping
value merges into the mapping at its key with its keys taken literally, which is how a sweep's `overrides`
({"scaling.num_workers": 8}) are resized.

Only sizes may change: model dimensions (those live in the rehearsal hub's models), row caps, steps, eval item
limits, worker counts, device and dtype: `SIZE_KEYS`. A key outside them is refused when the profile is read, and
tests/rehearsal/test_profile.py compares every stage's effective config with and without the profile.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

from pydantic import Field

from solar_ray.config import Strict

# Dotted config keys a profile may change, as fnmatch patterns; a sweep's `overrides.` and `base.` prefixes are
# looked through (its trial config).
SIZE_KEYS = (
    # worker counts
    "parallel", "scaling.num_workers", "scaling.cpus_per_worker", "workers", "cpus_per_worker", "actors",
    "num_cpus_per_actor", "cpus_per_trial", "gpus_per_trial", "search.max_concurrent_trials",
    # device and dtype: vllm (engine, eval backend) is the GPU path; transformers / hf run the same prompts on CPU
    "scaling.use_gpu", "scaling.backend", "deepspeed.bf16", "device", "dtype", "backend", "engine",
    "engine_options.*",
    # steps, batch and sequence sizes
    "optim.max_steps", "optim.epochs", "optim.per_device_batch_size", "optim.global_batch_size",
    "optim.gradient_accumulation_steps", "optim.max_length", "run.checkpoint_every", "run.log_every", "batch_size",
    "block_size", "search.num_samples", "scheduler.grace_period", "scheduler.max_t",
    # row caps and eval item limits
    "sources.*.cap", "test_size", "max_seed_rows", "sampling.n", "sampling.max_tokens", "max_gen_toks", "limit",
    "limit.*", "examples", "neighbours",
)


def is_size_key(key: str) -> bool:
    key = key.removeprefix("overrides.").removeprefix("base.")  # a sweep's trial config, resized
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in SIZE_KEYS)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are leaves."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


class Profile(Strict):
    """A scale profile: what changes, per stage kind and per stage."""

    parallel: int | None = Field(default=None, ge=1, description="The experiment's `parallel` (stages at once).")
    hub: bool = Field(default=True, description="Whether the experiment reads the hub, so the rehearsal builds "
                                                "its stand-in (the tiny world reads local files only).")
    kinds: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Stage kind -> dotted key -> value.")
    stages: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Stage name -> dotted key -> value.")

    @classmethod
    def read(cls, path: str | Path) -> Profile:
        from solar_ray.config import read_yaml, validate
        from solar_ray.errors import ConfigError

        profile = validate(cls, read_yaml(Path(path)), str(path))
        for section, entries in (("kinds", profile.kinds), ("stages", profile.stages)):
            for name, changes in entries.items():
                for key in flatten(changes):
                    if not is_size_key(key):
                        raise ConfigError(f"{path}: {section}.{name}: '{key}' is not a size (model dimensions, row "
                                          "caps, steps, eval item limits, worker counts, device, dtype); a rehearsal "
                                          "may not change it")
        return profile

    def apply(self, stage_name: str, tree: dict[str, Any]) -> None:
        """Lay the profile's changes for this stage over its config tree (in place)."""
        from solar_ray.config import deep_merge, set_dotted

        changes = {**self.kinds.get(str(tree.get("stage")), {}), **self.stages.get(stage_name, {})}
        for key, value in changes.items():
            if isinstance(value, dict):
                node = tree.get(key) if isinstance(tree.get(key), dict) else {}
                tree[key] = deep_merge(node, value)
            else:
                set_dotted(tree, key, value)
