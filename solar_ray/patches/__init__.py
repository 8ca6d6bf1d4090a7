"""Every private library internal solar-ray reaches into: the patches themselves, and one list of all of them
with the version each was written against.

Ray, lm-eval and DeepSpeed give no public way to do these few things (redirect worker output from the first
line, free a stopped Tune trial's workers, score a shared context once, consolidate ZeRO-3 weights, ...), so the
package uses their private names. Where that code lives:

- A patch - code that replaces, wraps or overrides a library's private code: a wrapper assigned over a private
  method, a subclass of a private class or one overriding a private method, a hook chained in through a private
  variable - lives in a module of this package, one per library area, and its site imports it from here:
    lm_eval_context      lm-eval's HFLM._loglikelihood_tokens overridden: a shared few-shot context runs once
    lm_eval_evaluator    lm-eval's evaluator.add_env_info and utils.apply_template replaced: once per process
    ray_worker_env       Ray's task and actor submission wrapped to add env vars; a worker setup hook chained
                         before the job's own (solar_ray.console.capture routes worker output with both)
    ray_train_callbacks  Ray Train v2's private controller and worker-group callbacks subclassed: a trial Tune
                         stops frees its workers; Ray's PlacementGroupCleaner left out where no dashboard is
    deepspeed_comm       DeepSpeed's build_shm_op replaced on CPU: training skips compiling an op it never uses
- A plain use of a private name - a constant, a logger's name, one call of a private function or method - stays
  at its site when it fits in one line (besides its import): moving it would only add an indirection.

Both kinds are listed in PRIVATE_APIS below, with the module using them. A private name can move in any release:
tests/test_patches.py checks that each entry still exists with the parameters the code relies on, that the
installed versions are the ones in WRITTEN_AGAINST, that no private import or logger name in the package is
missing from the list, and that no module outside this package patches a library. So an upgrade fails one named
test instead of a run on a cluster. When a library is upgraded: run that test, fix the modules it names, then
update WRITTEN_AGAINST.

This module imports no library (the patch modules do): reading the list costs nothing.
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
    PrivateApi("ray", "ray._private.state:state.get_cluster_config", "solar_ray.capacity",
               "autoscaler v2's node types with their max counts"),
    PrivateApi("ray", "ray._private.state:state.get_max_resources_from_cluster_config", "solar_ray.capacity",
               "the most of each resource autoscaler v2 can reach"),
    PrivateApi("ray", "ray._private.ray_constants:DEBUG_AUTOSCALING_STATUS", "solar_ray.capacity",
               "the key under which autoscaler v1 publishes its status"),
    PrivateApi("ray", "ray.experimental.internal_kv:_internal_kv_get", "solar_ray.capacity",
               "reads that autoscaler status from the GCS key-value store", ("key",)),
    PrivateApi("ray", "ray._common.utils:get_ray_address_file", "solar_ray.ray_session",
               "where `ray start` records the local cluster's address (Ray's own lookup)", ("temp_dir",)),
    PrivateApi("ray", "ray.train.v2._internal.execution.controller.placement_group_cleaner",
               "solar_ray.ray_session", "its logger's name: quiets a warning repeated every second"),
    PrivateApi("ray", "ray.train.v2._internal.execution.callback:ControllerCallback.after_controller_start",
               "solar_ray.patches.ray_train_callbacks", "frees a stopped trial's workers",
               ("self", "train_run_context")),
    PrivateApi("ray", "ray.train.v2._internal.execution.callback:ControllerCallback.before_controller_shutdown",
               "solar_ray.patches.ray_train_callbacks", "frees a stopped trial's workers", ("self",)),
    PrivateApi("ray", "ray.train.v2._internal.execution.callback:ControllerCallback.before_controller_abort",
               "solar_ray.patches.ray_train_callbacks", "frees a stopped trial's workers", ("self",)),
    PrivateApi("ray", "ray.train.v2._internal.execution.callback:WorkerGroupCallback.after_worker_group_start",
               "solar_ray.patches.ray_train_callbacks", "learns the trial's worker actors", ("self", "worker_group")),
    PrivateApi("ray", "ray.train.v2.api.data_parallel_trainer:DataParallelTrainer._create_default_callbacks",
               "solar_ray.patches.ray_train_callbacks", "wrapped: Ray's PlacementGroupCleaner left out where Ray "
               "has no dashboard (it cannot work there)", ("self",)),
    PrivateApi("ray", "ray.train.v2._internal.callbacks.placement_group_callback:PlacementGroupCleanerCallback",
               "solar_ray.patches.ray_train_callbacks", "the callback that starts the cleaner"),
    PrivateApi("ray", "ray.data._internal.datasource.huggingface_datasource:HuggingFaceDatasource",
               "solar_ray.data.load", "streams a Hugging Face dataset into Ray Data"),
    PrivateApi("ray", "ray.data._internal.progress.logging_progress", "solar_ray.console.capture",
               "its logger's name: Ray Data's progress lines go to the session log"),
    PrivateApi("ray", "ray._private.ray_constants:WORKER_PROCESS_SETUP_HOOK_ENV_VAR",
               "solar_ray.patches.ray_worker_env",
               "the variable naming a worker's setup hook (output redirected from a worker's first line)"),
    PrivateApi("ray", "ray._private.runtime_env.setup_hook:load_and_execute_setup_hook",
               "solar_ray.patches.ray_worker_env", "runs the job's own setup hook too",
               ("worker_process_setup_hook_key",)),
    PrivateApi("ray", "ray.remote_function:RemoteFunction._remote", "solar_ray.patches.ray_worker_env",
               "wrapped: a task carries env vars chosen as it is submitted (its stage's log); reads `_runtime_env`",
               ("self", "args", "kwargs", "serialized_runtime_env_info")),
    PrivateApi("ray", "ray.actor:ActorClass._remote", "solar_ray.patches.ray_worker_env",
               "wrapped: an actor carries env vars chosen as it is submitted (its stage's log)",
               ("self", "args", "kwargs")),
    PrivateApi("ray", "ray._private.utils:get_runtime_env_info", "solar_ray.patches.ray_worker_env",
               "serializes a task's runtime_env as Ray does", ("runtime_env", "is_job_runtime_env", "serialize")),
    PrivateApi("ray", "ray._private.utils:parse_runtime_env_for_task_or_actor", "solar_ray.patches.ray_worker_env",
               "normalizes a runtime_env as Ray does", ("runtime_env",)),
    PrivateApi("ray", "ray.tune.trainable.trainable_fn_utils:_in_tune_session", "solar_ray.train.launcher",
               "whether a training stage runs as a Tune trial (report to Tune, not to its own run)"),
    PrivateApi("lm_eval", "lm_eval.models.huggingface:HFLM._loglikelihood_tokens",
               "solar_ray.patches.lm_eval_context", "overridden: a context shared by several choices runs once",
               ("self", "requests", "disable_tqdm", "override_bs")),
    PrivateApi("lm_eval", "lm_eval.evaluator:add_env_info", "solar_ray.patches.lm_eval_evaluator",
               "replaced: the environment report (torch's collect_env, 0.5-2.6 s) taken once per process",
               ("storage",)),
    PrivateApi("lm_eval", "lm_eval.utils:apply_template", "solar_ray.patches.lm_eval_evaluator",
               "replaced: each prompt template compiled once per process", ("template", "doc")),
    PrivateApi("lm_eval", "lm_eval.utils:env", "solar_ray.patches.lm_eval_evaluator",
               "the jinja environment lm-eval compiles prompt templates with"),
    PrivateApi("deepspeed", "deepspeed.comm.torch:build_shm_op", "solar_ray.patches.deepspeed_comm",
               "replaced on CPU: the comm backend skips compiling its shared-memory op (inference-only)"),
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
