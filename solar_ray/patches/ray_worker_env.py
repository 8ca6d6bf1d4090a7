"""Ray patched to give each task or actor environment variables chosen at submission, and to run a function of
ours when a worker process starts, before the job's own setup hook.

Why: Ray has no per-task log destination (solar_ray.console.capture needs one per stage). A task's runtime_env
env_vars reach its worker process (Ray merges them into the job's, and the tasks it starts inherit them), but
Ray Data, Ray Train and Tune submit their tasks and actors themselves, out of our reach. So the submission
methods both go through - RemoteFunction._remote and ActorClass._remote, both private - are wrapped once per
process to merge in what a callable returns at that moment (for the thread submitting). A worker process runs
the function Ray's private setup-hook variable names when it starts; `setup_hook_env` points it at ours and moves
the job's own hook aside, which ours runs last (`run_job_setup_hook`).

    add_env_vars_to_submissions(lambda: {"MY_VAR": "1"} if wanted() else None)
    env = {**setup_hook_env("my_package.module.on_worker_start"), ...}   # in a submitted runtime_env's env_vars

Written against Ray 2.60 (solar_ray.patches.WRITTEN_AGAINST); tests/test_patches.py checks the names and the
parameters used here, tests/console/test_console.py the behaviour (worker output in the stage's log).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

JOB_HOOK_ENV = "SOLAR_RAY_JOB_SETUP_HOOK"  # the job's own worker setup hook, run after ours

EnvVarsNow = Callable[[], dict[str, str] | None]
_env_vars_now: EnvVarsNow | None = None  # what the wrapped submission methods add (driver side only)


def add_env_vars_to_submissions(env_vars_now: EnvVarsNow) -> None:
    """From now on, every task and actor submitted in this process gets `env_vars_now()` (when not None) merged
    into its runtime_env's env_vars. The first call wraps Ray's submission methods; a later one replaces the
    callable."""
    global _env_vars_now
    _env_vars_now = env_vars_now
    from ray.actor import ActorClass
    from ray.remote_function import RemoteFunction

    if getattr(RemoteFunction._remote, "_solar_ray", False):
        return
    submit_task, create_actor = RemoteFunction._remote, ActorClass._remote

    def task_remote(self, args=None, kwargs=None, serialized_runtime_env_info=None, **options):
        env_vars = _env_vars_now() if _env_vars_now else None
        if env_vars:
            from ray._private.utils import get_runtime_env_info

            options["runtime_env"] = _with_env(options.get("runtime_env") or self._runtime_env, env_vars)
            serialized_runtime_env_info = get_runtime_env_info(options["runtime_env"], is_job_runtime_env=False,
                                                               serialize=True)
        return submit_task(self, args, kwargs, serialized_runtime_env_info=serialized_runtime_env_info, **options)

    def actor_remote(self, args=None, kwargs=None, **options):
        env_vars = _env_vars_now() if _env_vars_now else None
        if env_vars:
            base = options.get("runtime_env") or self.__ray_metadata__.runtime_env
            options["runtime_env"] = _with_env(base, env_vars)
        return create_actor(self, args, kwargs, **options)

    task_remote._solar_ray = actor_remote._solar_ray = True  # type: ignore[attr-defined]
    RemoteFunction._remote = task_remote
    ActorClass._remote = actor_remote


def setup_hook_env(hook: str) -> dict[str, str]:
    """Env vars that make a new worker process call `hook` (a dotted function name) when it starts, in place of
    the job's own setup hook, which they keep aside for `hook` to run last through `run_job_setup_hook`."""
    from ray._private.ray_constants import WORKER_PROCESS_SETUP_HOOK_ENV_VAR as HOOK

    env = {HOOK: hook}
    job_hook = _job_env_vars().get(HOOK)
    if job_hook:
        env[JOB_HOOK_ENV] = job_hook
    return env


def run_job_setup_hook() -> None:
    """In a worker started with `setup_hook_env`: run the job's own setup hook, if it had one."""
    job_hook = os.environ.get(JOB_HOOK_ENV)
    if job_hook:
        from ray._private.runtime_env.setup_hook import load_and_execute_setup_hook

        error = load_and_execute_setup_hook(job_hook)
        if error:
            raise RuntimeError(error)


def _with_env(runtime_env: Any, env_vars: dict[str, str]) -> Any:
    from ray._private.utils import parse_runtime_env_for_task_or_actor

    merged = dict(runtime_env or {})
    merged["env_vars"] = {**(merged.get("env_vars") or {}), **env_vars}
    return parse_runtime_env_for_task_or_actor(merged)


def _job_env_vars() -> dict[str, str]:
    import ray

    try:
        return dict(ray.get_runtime_context().runtime_env.get("env_vars") or {})
    except Exception:  # noqa: BLE001 (Ray not started: no job env)
        return {}
