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

    def union_stats() -> tuple[list[str], str]:
        union = ray.data.read_parquet(files[0]).union(ray.data.read_parquet(files[1])).materialize()
        return sorted(row["id"] for row in union.iter_rows()), union.stats()

    v2_rows, v2_stats = union_stats()
    assert "ListFiles" in v2_stats  # what V2 plans: a listing operator per read, run one after another
    init_ray()  # Ray is already up (this suite's): the setting is made all the same
    assert context.use_datasource_v2 is False
    v1_rows, v1_stats = union_stats()
    assert "ListFiles" not in v1_stats and v1_rows == v2_rows == sorted(f"{n}.{i}" for n in (0, 1) for i in range(5))

    monkeypatch.setenv("RAY_DATA_USE_DATASOURCE_V2", "1")  # a user's explicit choice wins
    context.use_datasource_v2 = True
    configure_ray_data()
    assert context.use_datasource_v2 is True

