"""A data source never reads a rejected-rows file (the quarantine kept beside a dataset)."""

from pathlib import Path

import pandas as pd
import pytest

from solar_ray.data.load import local_files
from solar_ray.errors import DataError


def _synth_artifact(root):
    """The synth stage's layout: kept + rejected at the top, the datasets in sub-directories."""
    root.mkdir()
    pd.DataFrame({"x": [1]}).to_parquet(root / "kept.parquet")
    pd.DataFrame({"x": [2], "reason": ["wrong_answer"]}).to_parquet(root / "rejected.parquet")
    (root / "instruct").mkdir()
    pd.DataFrame({"messages": [[]]}).to_parquet(root / "instruct" / "train.parquet")
    return root


def test_a_directory_whose_glob_takes_in_rejected_rows_is_refused(tmp_path):
    root = _synth_artifact(tmp_path / "synth_math")
    with pytest.raises(DataError, match=r"synth_math: .*rejected-rows file rejected.parquet; point at .*instruct"):
        local_files(root, "train")


def test_a_rejected_rows_file_named_directly_is_refused(tmp_path):
    root = _synth_artifact(tmp_path / "synth_math")
    with pytest.raises(DataError, match="rejected-rows file is not data"):
        local_files(root / "rejected.parquet", "train")


def test_the_dataset_sub_directory_reads_its_train_file(tmp_path):
    root = _synth_artifact(tmp_path / "synth_math")
    assert local_files(root / "instruct", "train") == ("parquet", [str(root / "instruct" / "train.parquet")])


def _alpaca_mirror(root, files):
    """A hub mirror holding vicgalle/alpaca-gpt4 as the hub lays it out: split files under a config folder."""
    repo = root / "datasets" / "vicgalle" / "alpaca-gpt4"
    (repo / "default").mkdir(parents=True)
    (repo / "README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
                                    "    path: default/train-*\n---\n")
    rows = [{"instruction": f"say {i}", "input": "", "output": f"{i}"} for i in range(10)]
    for number, suffix in enumerate(files):
        part = rows[number * 5:(number + 1) * 5]
        name = repo / "default" / f"train-{number:05d}-of-{len(files):05d}.{suffix}"
        if suffix == "parquet":
            pd.DataFrame(part).to_parquet(name)
        else:
            name.write_text("".join(f'{{"instruction": "{r["instruction"]}", "input": "", "output": "{r["output"]}"}}\n'
                                    for r in part))
    return rows


@pytest.mark.parametrize("files", [["parquet", "parquet"], ["jsonl", "jsonl"]])
def test_a_mirrored_hub_dataset_is_read_by_rays_own_reader_in_the_hubs_order(tmp_path, monkeypatch, ray_session,
                                                                             files):
    """Streaming a mirror through `datasets` in one Ray task cost 1.2-1.4x a direct read (more beside other stages):
    its files are read directly, the split's files as `datasets` resolves them, rows in order."""
    from solar_ray.data.load import load_source, local_split_files
    from solar_ray.data.registry import get_spec

    rows = _alpaca_mirror(tmp_path, files)
    monkeypatch.setenv("SOLAR_RAY_HUB_MIRROR", str(tmp_path))
    repo = tmp_path / "datasets" / "vicgalle" / "alpaca-gpt4"
    fmt, names = local_split_files(str(repo), None, "train")
    assert (fmt, [Path(n).name for n in names]) == (files[0], [f"train-0000{i}-of-00002.{s}" for i, s in enumerate(files)])
    from ray.data._internal.datasource import huggingface_datasource

    def no_stream(**_):
        raise AssertionError("the mirror was streamed through `datasets`")

    monkeypatch.setattr(huggingface_datasource, "HuggingFaceDatasource", no_stream)
    from ray.data import DataContext

    monkeypatch.setattr(DataContext.get_current().execution_options, "preserve_order", True)  # as the data stage
    read = load_source("alpaca_gpt4", get_spec("alpaca_gpt4")).take_all()
    assert [r["messages"][-1]["content"] for r in read] == [r["output"] for r in rows]
    assert all(r["reason"] is None for r in read)


def test_a_mirror_in_a_format_ray_cannot_read_alone_is_still_streamed(tmp_path):
    from solar_ray.data.load import local_split_files

    _alpaca_mirror(tmp_path, ["parquet", "jsonl"])  # two formats in one split: `datasets` reconciles them, not Ray
    assert local_split_files(str(tmp_path / "datasets" / "vicgalle" / "alpaca-gpt4"), None, "train") is None
    assert local_split_files(str(tmp_path / "no_such_repo"), None, "train") is None
