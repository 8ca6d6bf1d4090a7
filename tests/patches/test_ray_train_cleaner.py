"""Ray Train's PlacementGroupCleaner is left out where Ray has no dashboard (solar_ray.patches.ray_train_callbacks)."""

from __future__ import annotations


def default_callbacks():
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(lambda: None, scaling_config=ScalingConfig(num_workers=1))
    return [type(callback).__name__ for callback in trainer._create_default_callbacks()]


def test_a_trainer_built_after_the_patch_has_every_default_callback_but_the_cleaner():
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from solar_ray.patches.ray_train_callbacks import skip_placement_group_cleaner

    original = DataParallelTrainer._create_default_callbacks
    try:
        DataParallelTrainer._create_default_callbacks = getattr(original, "original", original)  # unpatched
        before = default_callbacks()
        assert "PlacementGroupCleanerCallback" in before  # Ray still adds it: the patch has something to do
        skip_placement_group_cleaner()
        skip_placement_group_cleaner()  # a second call changes nothing
        after = default_callbacks()
        assert after == [name for name in before if name != "PlacementGroupCleanerCallback"]
    finally:
        DataParallelTrainer._create_default_callbacks = original


def test_our_local_ray_marks_its_processes_as_having_no_dashboard(ray_session):
    ray = ray_session

    from solar_ray.ray_session import NO_DASHBOARD_ENV, no_dashboard

    @ray.remote(num_cpus=0)
    def in_worker() -> str | None:
        import os

        return os.environ.get(NO_DASHBOARD_ENV)

    assert no_dashboard() and ray.get(in_worker.remote()) == "1"  # a Tune trial's process leaves it out too
