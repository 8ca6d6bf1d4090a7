"""Every private library internal solar-ray reaches into, in one list: what, where, why, and the version it was
written against.

Ray, lm-eval and DeepSpeed give no public way to do these few things (redirect worker output from the first
line, free a stopped Tune trial's workers, score a shared context once, consolidate ZeRO-3 weights, ...), so the
code at each site uses a private name. A private name can move in any release: tests/test_patches.py checks each
one below still exists with the parameters the site relies on, and that the installed version is the one
recorded here, so an upgrade fails one named test instead of a run on a cluster. When a library is upgraded:
run that test, fix the sites it names, then update WRITTEN_AGAINST.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from importlib import metadata

# The versions the entries below were written and checked against.
WRITTEN_AGAINST = {"ray": "2.60.0", "lm_eval": "0.4.13", "deepspeed": "0.19.8"}


@dataclass(frozen=True)
class PrivateApi:
    library: str                      # distribution name, a key of WRITTEN_AGAINST
    target: str                       # "module" or "module:attribute[.attribute]"
    used_in: str                      # the solar_ray module relying on it
    why: str                          # what it gives that no public API does
    parameters: tuple[str, ...] = ()  # parameter names the site calls or overrides with, in order (callables)


PRIVATE_APIS: tuple[PrivateApi, ...] = (
    PrivateApi("ray", "ray._private.state:state", "solar_ray.capacity",
               "the cluster config (node types, max workers) Ray Train and Ray Data read"),
    PrivateApi("ray", "ray._private.ray_constants:DEBUG_AUTOSCALING_STATUS", "solar_ray.capacity",
               "the key under which autoscaler v1 publishes its status"),
    PrivateApi("ray", "ray.experimental.internal_kv:_internal_kv_get", "solar_ray.capacity",
               "reads that autoscaler status from the GCS key-value store", ("key",)),
    PrivateApi("ray", "ray._common.utils:get_ray_address_file", "solar_ray.ray_session",
               "where `ray start` records the local cluster's address (Ray's own lookup)", ("temp_dir",)),
    PrivateApi("ray", "ray.train.v2._internal.execution.controller.placement_group_cleaner",
               "solar_ray.ray_session", "its logger's name: quiets a warning repeated every second"),
    PrivateApi("ray", "ray.train.v2._internal.execution.callback:ControllerCallback.after_controller_start",
               "solar_ray.tune.orphans", "frees a stopped trial's workers", ("self", "train_run_context")),
    PrivateApi("ray", "ray.train.v2._internal.execution.callback:ControllerCallback.before_controller_shutdown",
               "solar_ray.tune.orphans", "frees a stopped trial's workers", ("self",)),
    PrivateApi("ray", "ray.train.v2._internal.execution.callback:ControllerCallback.before_controller_abort",
               "solar_ray.tune.orphans", "frees a stopped trial's workers", ("self",)),
    PrivateApi("ray", "ray.train.v2._internal.execution.callback:WorkerGroupCallback.after_worker_group_start",
               "solar_ray.tune.orphans", "learns the trial's worker actors", ("self", "worker_group")),
    PrivateApi("ray", "ray.data._internal.datasource.huggingface_datasource:HuggingFaceDatasource",
               "solar_ray.data.load", "streams a Hugging Face dataset into Ray Data"),
    PrivateApi("ray", "ray.data._internal.progress.logging_progress", "solar_ray.console.capture",
               "its logger's name: Ray Data's progress lines go to the session log"),
    PrivateApi("ray", "ray._private.ray_constants:WORKER_PROCESS_SETUP_HOOK_ENV_VAR", "solar_ray.console.capture",
               "the variable naming a worker's setup hook (output redirected from a worker's first line)"),
    PrivateApi("ray", "ray._private.runtime_env.setup_hook:load_and_execute_setup_hook", "solar_ray.console.capture",
               "runs the job's own setup hook too", ("worker_process_setup_hook_key",)),
    PrivateApi("ray", "ray.remote_function:RemoteFunction._remote", "solar_ray.console.capture",
               "wrapped: every task carries the session's log variables",
               ("self", "args", "kwargs", "serialized_runtime_env_info")),
    PrivateApi("ray", "ray.actor:ActorClass._remote", "solar_ray.console.capture",
               "wrapped: every actor carries the session's log variables", ("self", "args", "kwargs")),
    PrivateApi("ray", "ray._private.utils:get_runtime_env_info", "solar_ray.console.capture",
               "serializes a task's runtime_env as Ray does"),
    PrivateApi("ray", "ray._private.utils:parse_runtime_env_for_task_or_actor", "solar_ray.console.capture",
               "normalizes a runtime_env as Ray does", ("runtime_env",)),
    PrivateApi("ray", "ray.tune.trainable.trainable_fn_utils:_in_tune_session", "solar_ray.train.launcher",
               "whether a training stage runs as a Tune trial (report to Tune, not to its own run)"),
    PrivateApi("lm_eval", "lm_eval.models.huggingface:HFLM._loglikelihood_tokens",
               "solar_ray.evaluate.shared_context", "overridden: a context shared by several choices runs once",
               ("self", "requests", "disable_tqdm", "override_bs")),
    PrivateApi("deepspeed", "deepspeed.runtime.engine:DeepSpeedEngine._zero3_consolidated_16bit_state_dict",
               "solar_ray.train.export", "DeepSpeed's own ZeRO-3 consolidation of the full weights", ("self",)),
)


def resolve(api: PrivateApi):
    """The module or attribute `api.target` names; ImportError / AttributeError when it moved."""
    module_name, _, attributes = api.target.partition(":")
    value = importlib.import_module(module_name)
    for attribute in filter(None, attributes.split(".")):
        value = getattr(value, attribute)
    return value


def problems(api: PrivateApi) -> list[str]:
    """What no longer holds for `api` in the installed library: [] when the site can rely on it."""
    try:
        value = resolve(api)
    except (ImportError, AttributeError) as exc:
        return [f"{api.target} (used by {api.used_in}) is gone: {exc}"]
    if not api.parameters:
        return []
    names = tuple(inspect.signature(value).parameters)
    if names[: len(api.parameters)] != api.parameters:
        return [f"{api.target} (used by {api.used_in}) takes {names}, the site expects {api.parameters}"]
    return []


def version_drift() -> list[str]:
    """Libraries whose installed version is not the one the entries were written against."""
    return [f"{name} {metadata.version(name)} installed, patches written against {version}"
            for name, version in WRITTEN_AGAINST.items() if metadata.version(name) != version]
