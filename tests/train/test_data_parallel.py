"""Data-parallel pretraining workers read different blocks at every step, over every pass of the data."""

from __future__ import annotations

import threading

import numpy as np


def _read_two_workers(stream) -> tuple[list[int], list[int]]:
    """The block ids each of two workers reads, in order, through the split Ray Train gives them."""
    splits = stream.streaming_split(2, equal=True)
    seen: list[list[int]] = [[], []]

    def read(rank: int) -> None:
        for batch in splits[rank].iter_batches(batch_size=4, drop_last=True):
            seen[rank] += [int(row[0]) for row in batch["input_ids"]]

    threads = [threading.Thread(target=read, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen[0], seen[1]


def test_two_workers_train_on_the_same_block_at_a_step_only_by_chance(ray_session):
    """The packed data is one materialised block, as the tiny base's is: 300 rows read in four passes. Unioning
    the same blocks for each pass gave both workers the same rows at most steps (two in three, measured). With each
    pass in its own order the workers walk different passes, so they meet on a block only by chance: about one
    position in 300."""
    import ray

    from solar_ray.train.pretrain import repeated_passes

    rows = [{"input_ids": np.full(8, i, dtype=np.int32)} for i in range(300)]
    blocks = ray.data.from_items(rows).repartition(1).materialize()
    first, second = _read_two_workers(repeated_passes(blocks, passes=4, seed=0))
    assert len(first) == len(second) == 600
    same_step = [k for k, (a, b) in enumerate(zip(first, second, strict=True)) if a == b]
    assert len(same_step) <= 6, same_step
    # every block is read once per pass, in all: none more often than another
    assert sorted(first + second) == sorted(list(range(300)) * 4)


def test_one_pass_is_the_data_as_packed(ray_session):
    import ray

    from solar_ray.train.pretrain import repeated_passes

    blocks = ray.data.range(10).materialize()
    assert repeated_passes(blocks, passes=1, seed=0) is blocks


def test_the_passes_are_shuffled_before_the_workers_start(ray_session, tiny_model, text_dataset, tmp_path):
    """Ray Data's shuffle tasks need CPUs; left to run inside the stream, they waited for ever on CPUs the run's own
    workers held (two one-CPU runs at once on two cores). The driver materialises the passes before launch."""
    from ray.data.dataset import MaterializedDataset

    from solar_ray.train import pretrain
    from solar_ray.train.launcher import hardware

    config = pretrain.Config(model=str(tiny_model), dataset=str(text_dataset), output=str(tmp_path / "out"),
                             scaling={"num_workers": 1}, optim={"max_length": 64, "per_device_batch_size": 4,
                                                                "max_steps": 40, "learning_rate": 1e-3})
    launch = pretrain.prepare(config, hardware(config))
    stream = launch.datasets["train"]
    assert isinstance(stream, MaterializedDataset)
    assert stream.count() >= 40 * 4  # several passes: the 40 steps' rows (4 a step, one worker), all in the store
