"""Eval actors leave no task directory behind once their pool is stopped."""

from __future__ import annotations

from pathlib import Path

from solar_ray.evaluate.runner import EvalWorker, resolve_tasks, stop_pool


def test_stopped_pool_leaves_no_task_dirs(ray_session, bench_dir):
    import ray

    pool = [EvalWorker.options(num_cpus=0.5).remote(
        str(bench_dir), resolve_tasks("arc"), {"backend": "hf", "device": "cpu", "batch_size": 1}, 1, None)
            for _ in range(2)]
    task_dirs = [Path(d) for d in ray.get([w.__ray_call__.remote(lambda self: self.task_dir) for w in pool])]
    assert all(d.is_dir() and any(d.iterdir()) for d in task_dirs)
    stop_pool(pool)
    assert [d for d in task_dirs if d.exists()] == []
