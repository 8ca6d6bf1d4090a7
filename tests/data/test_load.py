"""A data source never reads a rejected-rows file (the quarantine kept beside a dataset)."""

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
