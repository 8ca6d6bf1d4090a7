"""Ray's submission methods wrapped to add env vars, and a worker setup hook chained before the job's own
(solar_ray/patches/ray_worker_env.py), on a real local Ray. tests/console checks what they are for: every
worker line of a stage in that stage's log."""

from __future__ import annotations

import logging
import os

from solar_ray.patches.ray_worker_env import JOB_HOOK_ENV, add_env_vars_to_submissions, setup_hook_env

VARIABLE = "SOLAR_RAY_TEST_SUBMISSION"


def test_tasks_and_actors_carry_the_env_vars_of_the_moment_they_are_submitted(ray_session):
    ray = ray_session
    wanted = {"on": True}

    @ray.remote(num_cpus=0)
    def read() -> str | None:
        return os.environ.get(VARIABLE)

    @ray.remote(num_cpus=0)
    class Reader:
        def read(self) -> str | None:
            return os.environ.get(VARIABLE)

    add_env_vars_to_submissions(lambda: {VARIABLE: "set"} if wanted["on"] else None)
    try:
        assert ray.get(read.remote()) == "set"
        assert ray.get(read.options(runtime_env={"env_vars": {"OTHER": "1"}}).remote()) == "set"  # merged in
        assert ray.get(Reader.remote().read.remote()) == "set"
        wanted["on"] = False
        assert ray.get(read.remote()) is None
        assert ray.get(Reader.remote().read.remote()) is None
    finally:
        add_env_vars_to_submissions(lambda: None)


def test_a_worker_runs_our_setup_hook_and_then_the_jobs_own(ray_session):
    ray = ray_session
    from ray._private.ray_constants import WORKER_PROCESS_SETUP_HOOK_ENV_VAR as HOOK

    # Our hook here is the chaining step itself: the job's hook (init_ray's quiet_local_workers, which sets the
    # Train placement-group cleaner's logger to ERROR) must still run in the worker, behind ours.
    ours = "solar_ray.patches.ray_worker_env.run_job_setup_hook"
    env = setup_hook_env(ours)
    assert env[HOOK] == ours and env[JOB_HOOK_ENV]

    @ray.remote(num_cpus=0)
    def hooks() -> tuple[str | None, int]:
        cleaner = logging.getLogger("ray.train.v2._internal.execution.controller.placement_group_cleaner")
        return os.environ.get(HOOK), cleaner.level

    ran, level = ray.get(hooks.options(runtime_env={"env_vars": env}).remote())
    assert ran == ours  # Ray ran ours in place of the job's...
    assert level == logging.ERROR  # ...and ours ran the job's
