"""Ray Train v2's private controller and worker-group callbacks: subclassed to free a Train run's worker placement
group when Tune stops its trial, and Ray's own PlacementGroupCleaner left out on a Ray without a dashboard.

Why: when ASHA stops a trial (or it reaches max_t), Tune terminates the trial actor; the Train controller it
owns dies with it, without shutting down, and the workers' placement group - created by the controller, but
scoped to the job - stays reserved until the sweep's driver exits. On a 2-CPU Ray two such leftovers hold every
CPU and the next trials wait for workers forever (ray-project/ray#54305). Ray 2.60 ships a cleaner for this
(PlacementGroupCleaner) but it checks the controller through the state API, i.e. the dashboard, which our local
Ray does not start (and which cannot pick the cluster when several local Rays share a machine). This one
watches the controller through its actor handle, which needs neither. Ray Train v2 gives no public hook for this:
its ControllerCallback / WorkerGroupCallback are private (written against Ray 2.60, solar_ray.patches; the
behaviour is tested by tests/tune/test_dpo_sweep.py, which finds no placement group left after ASHA stops trials).

    fit(dpo_config, callbacks=[FreeWorkersOnControllerDeath()])   # inside a Tune driver function

`skip_placement_group_cleaner`: without a dashboard that cleaner cannot see the controller it watches. It is one
more actor process per Train run that asks the state API every second, fails and warns: 2.0 CPU-s of a 5-step
continued-pretraining run that took 40 CPU-s in all (measured per process), and the controller waits for it to
stop (up to 2 s) at the end of every run. `_create_default_callbacks` is private (Ray 2.60, solar_ray.patches);
tests/patches/test_ray_train_cleaner.py checks a run then starts no cleaner and still trains.
"""

from __future__ import annotations

import time

import ray
from ray.train.v2._internal.execution.callback import ControllerCallback, WorkerGroupCallback

CHECK_EVERY_S = 1.0


class PlacementGroupWatcher:
    """Detached actor: removes the registered placement group once the watched controller is dead."""

    def __init__(self, controller):
        self._controller = controller
        self._placement_group = None
        self._stopped = False

    def watch(self, placement_group) -> None:
        self._placement_group = placement_group  # a restarted worker group replaces the old (removed) one

    def stop(self) -> None:
        """The controller is shutting down on its own (and removes its placement group)."""
        self._stopped = True

    def run(self) -> None:
        from ray.util.placement_group import remove_placement_group

        while not self._stopped:
            try:
                ray.get(self._controller.__ray_ready__.remote(), timeout=30)
            except ray.exceptions.RayActorError:
                if self._placement_group is not None:
                    remove_placement_group(self._placement_group)
                break
            except ray.exceptions.GetTimeoutError:
                pass  # a busy controller is alive

            time.sleep(CHECK_EVERY_S)
        ray.actor.exit_actor()


class FreeWorkersOnControllerDeath(ControllerCallback, WorkerGroupCallback):
    """Train callback (runs in the controller): starts a watcher and registers each worker group's placement
    group with it; a graceful controller shutdown stops the watcher first."""

    def __init__(self):
        self._watcher = None

    def after_controller_start(self, train_run_context) -> None:
        controller = ray.get_runtime_context().current_actor
        # max_concurrency 2: `run` loops while `watch`/`stop` calls arrive.
        watcher_cls = ray.remote(num_cpus=0, max_concurrency=2)(PlacementGroupWatcher)
        # Detached and outside the trial's placement group (which Tune's trial captures its children into, and
        # removes - killing what runs in it - when it stops the trial): it must outlive the trial.
        self._watcher = watcher_cls.options(lifetime="detached", scheduling_strategy="DEFAULT").remote(controller)
        self._watcher.run.remote()

    def after_worker_group_start(self, worker_group) -> None:
        if self._watcher is not None:
            state = worker_group.get_worker_group_state()
            ray.get(self._watcher.watch.remote(state.placement_group_handle.placement_group))

    async def before_controller_shutdown(self) -> None:
        self._stop()

    def before_controller_abort(self) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop.remote()
            self._watcher = None


def skip_placement_group_cleaner() -> None:
    """Ray Train runs started from this process start no PlacementGroupCleaner. Call it only where Ray has no
    dashboard (our own local Ray: it ends with its driver, and sweeps free stopped trials' workers with
    FreeWorkersOnControllerDeath); on a cluster with a dashboard the cleaner does its job and stays."""
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    original = DataParallelTrainer._create_default_callbacks
    if getattr(original, "skips_cleaner", False):
        return

    def without_cleaner(self):
        return [callback for callback in original(self) if not isinstance(callback, PlacementGroupCleanerCallback)]

    without_cleaner.skips_cleaner, without_cleaner.original = True, original
    DataParallelTrainer._create_default_callbacks = without_cleaner
