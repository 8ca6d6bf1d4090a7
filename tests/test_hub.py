import pytest

from solar_ray.errors import ArtifactError
from solar_ray.hub import Config, run


def test_fetch_without_a_hub_is_one_line_naming_the_repo_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "base"
    with pytest.raises(ArtifactError, match=r"fetch mistralai/Mistral-7B-v0.1@main: ") as err:
        run(Config(kind="model", repo_id="mistralai/Mistral-7B-v0.1", output=str(out)))
    assert "\n" not in str(err.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_fetch_model_needs_a_repo(tmp_path):
    with pytest.raises(ArtifactError, match="needs repo_id"):
        run(Config(kind="model", output=str(tmp_path / "x")))


def test_fetch_dataset_offline_names_the_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(ArtifactError, match=r"fetch hendrycks/competition_math \(None, train\)"):
        run(Config(kind="dataset", repo_id="hendrycks/competition_math", output=str(tmp_path / "m")))
    assert not (tmp_path / "m").exists()
