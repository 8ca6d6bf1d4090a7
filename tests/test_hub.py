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


MATH_SUBJECTS = ["algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus"]


def test_math_seed_from_eleutherai_hendrycks_math_layout_feeds_the_math_adapters(tmp_path, monkeypatch):
    """The shipped fetch_math.yaml on a mirror laid out like EleutherAI/hendrycks_math (one config per subject):
    one train.jsonl with every subject's rows, which the registry's MATH adapter and Synth. Math's seed reader take."""
    from solar_ray.config import load_config
    from solar_ray.data.registry import REGISTRY
    from solar_ray.hub import MIRROR_ENV
    from solar_ray.rehearsal.repos import write_dataset_repo
    from solar_ray.synth.validate import read_seed_file, select_seeds

    configs = {subject: {split: [{"problem": f"{subject} {split} problem {i}: what is {i} + 1?", "level": "Level 2",
                                  "type": subject.replace("_", " ").title(),
                                  "solution": f"It is $\\boxed{{{i + 1}}}$."} for i in range(3)]
                         for split in ("train", "test")} for subject in MATH_SUBJECTS}
    write_dataset_repo(tmp_path / "hub", "EleutherAI/hendrycks_math", configs)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "hub"))
    config = load_config("experiments/solar_10_7b/fetch_math.yaml", [f"output={tmp_path / 'math'}"])
    assert config.subsets == MATH_SUBJECTS
    out = run(config)
    seed_path, rows = read_seed_file(str(out / "train.jsonl"))
    assert len(rows) == 21 and [r["problem"].split()[0] for r in rows[::3]] == MATH_SUBJECTS
    assert all(r["problem"].split()[1] == "train" for r in rows)
    assert REGISTRY["math"].adapter(rows[0])["messages"][1]["content"] == "It is $\\boxed{1}$."
    seeds, rejected = select_seeds(seed_path, rows, None)
    assert len(seeds) == 21 and len(rejected) == 0


def test_a_repo_missing_from_the_mirror_is_one_line(tmp_path, monkeypatch):
    from solar_ray.hub import MIRROR_ENV

    (tmp_path / "hub").mkdir()
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "hub"))
    with pytest.raises(ArtifactError, match=r"fetch EleutherAI/hendrycks_math \(algebra, train\): .*no dataset repository"):
        run(Config(kind="dataset", repo_id="EleutherAI/hendrycks_math", subsets=["algebra"], output=str(tmp_path / "m")))
    assert not (tmp_path / "m").exists()
