"""solar-ray reads parquet through Ray Data's V1 reader (solar_ray.ray_session.configure_ray_data): under Ray 2.60's
DataSourceV2 a union of parquet reads, which every data stage makes, ran ~10 s a file on 2 cores."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pyarrow.parquet as pq


def test_the_setting_is_a_field_of_rays_data_context():
    """Fails when Ray renames or drops the setting: assigning a missing field would be silently ignored."""
    from ray.data import DataContext

    assert "use_datasource_v2" in {field.name for field in dataclasses.fields(DataContext)}


def test_init_ray_reads_parquet_with_the_first_reader(ray_session, tmp_path, monkeypatch):
    import ray.data

    from solar_ray.ray_session import configure_ray_data, init_ray

    files = []
    for number in range(2):
        files.append(str(tmp_path / f"part-{number}.parquet"))
        pq.write_table(pa.table({"id": [f"{number}.{i}" for i in range(5)]}), files[-1])
    context = ray.data.DataContext.get_current()
    monkeypatch.setattr(context, "use_datasource_v2", True)
    monkeypatch.delenv("RAY_DATA_USE_DATASOURCE_V2", raising=False)

    def read(*names: str) -> tuple[list[str], str]:
        first, *others = (ray.data.read_parquet(name) for name in names)
        dataset = (first.union(*others) if others else first).materialize()
        return sorted(row["id"] for row in dataset.iter_rows()), dataset.stats()

    v2_rows, v2_stats = read(files[0])  # one file: a V2 union costs ~10 s a read on 2 cores
    assert "ListFiles" in v2_stats  # what V2 plans: a listing operator per read
    init_ray()  # Ray is already up (this suite's): the setting is made all the same
    assert context.use_datasource_v2 is False
    v1_rows, v1_stats = read(*files)
    assert "ListFiles" not in v1_stats
    assert v1_rows == sorted(f"{n}.{i}" for n in (0, 1) for i in range(5)) and set(v2_rows) < set(v1_rows)

    monkeypatch.setenv("RAY_DATA_USE_DATASOURCE_V2", "1")  # a user's explicit choice wins
    context.use_datasource_v2 = True
    configure_ray_data()
    assert context.use_datasource_v2 is True


def test_pretraining_reads_the_same_blocks_whichever_the_reader(ray_session, tmp_path, monkeypatch):
    """Documents are packed within a block: the blocks, and so the trained model, must not depend on the reader."""
    import ray.data

    from solar_ray.train.pretrain import read_documents

    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"text": [f"document {i}" for i in range(7)]}), path, row_group_size=3)  # 3 + 3 + 1
    context = ray.data.DataContext.get_current()
    blocks = {}
    for v2 in (False, True):
        monkeypatch.setattr(context, "use_datasource_v2", v2)
        dataset = read_documents(path).materialize()
        blocks[v2] = [block["text"].to_pylist() for block in dataset.iter_batches(batch_size=None,
                                                                                  batch_format="pyarrow")]
    assert blocks[False] == blocks[True] == [[f"document {i}" for i in range(7)]]  # V1 unpinned: 4 blocks
