import subprocess
import sys

import pytest

from solar_ray.config import apply_overrides, deep_merge, load_config
from solar_ray.errors import ConfigError


def write(path, text):
    path.write_text(text)
    return path


def test_misspelt_key_names_key_file_and_suggestion(tmp_path):
    cfg = write(tmp_path / "tiny.yaml", "stage: tiny\nseeed: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    message = str(err.value)
    assert "seeed" in message and str(cfg) in message and "did you mean 'seed'" in message
    assert "\n" not in message


def test_override_changes_value_and_is_parsed_as_yaml(tmp_path):
    cfg = write(tmp_path / "tiny.yaml", "stage: tiny\nseed: 3\n")
    assert load_config(cfg).seed == 3
    assert load_config(cfg, ["seed=11"]).seed == 11


def test_override_with_unknown_key_is_an_error(tmp_path):
    cfg = write(tmp_path / "tiny.yaml", "stage: tiny\n")
    with pytest.raises(ConfigError, match="unknown key 'sed'"):
        load_config(cfg, ["sed=1"])


def test_extends_merges_mappings_and_replaces_scalars(tmp_path):
    write(tmp_path / "base.yaml", "stage: tiny\nseed: 1\nforce: true\n")
    child = write(tmp_path / "child.yaml", "extends: base.yaml\nseed: 2\n")
    config = load_config(child)
    assert (config.seed, config.force) == (2, True)


def test_extends_cycle_is_reported(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\nstage: tiny\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_unknown_stage_lists_known_ones(tmp_path):
    cfg = write(tmp_path / "x.yaml", "stage: pretrian\n")
    with pytest.raises(ConfigError, match="unknown stage 'pretrian'.*pretrain"):
        load_config(cfg)


def test_wrong_type_names_key_and_value(tmp_path):
    cfg = write(tmp_path / "x.yaml", "stage: tiny\nseed: many\n")
    with pytest.raises(ConfigError, match=r"key 'seed'.*'many'"):
        load_config(cfg)


def test_default_output_is_under_runs(tmp_path, monkeypatch):
    cfg = write(tmp_path / "my_run.yaml", "stage: tiny\n")
    monkeypatch.chdir(tmp_path.parent)
    assert load_config(cfg).output == str(tmp_path.parent / "runs" / "my_run")


def test_relative_paths_resolve_against_the_working_directory_not_the_config_file(tmp_path, monkeypatch):
    """Trials and workers run in folders of their own: every path must leave the driver absolute, the sweeps'
    candidates, overrides and storage included; hub ids and URIs stay as given."""
    configs, user = tmp_path / "experiments", tmp_path / "user"
    configs.mkdir(), user.mkdir()
    write(configs / "dpo.yaml", "stage: dpo\nmodel: runs/sft\ndataset: runs/data\n")
    write(configs / "dpo_sweep.yaml", "stage: dpo_sweep\nbase: dpo.yaml\noverrides: {dataset: runs/other}\n"
          "space: {beta: {choice: [0.1]}}\nsearch: {metric: loss}\n")
    write(configs / "merge_sweep.yaml", "stage: merge_sweep\ncandidates: {a: runs/a, b: s3://bucket/b}\n"
          "data_dir: bench\nspace: {weight: {uniform: [0.2, 0.8]}}\nsearch: {metric: mean}\n")
    write(configs / "synth.yaml", "stage: synth_math\nseed_data: math.jsonl\nmodel: org/name\n")
    monkeypatch.chdir(user)
    # `base:` is a file next to the sweep config (like `extends:`); everything inside it is a user path.
    sweep = load_config(configs / "dpo_sweep.yaml", ["base=" + str(configs / "dpo.yaml")])
    assert sweep.base["model"] == str(user / "runs/sft") and sweep.base["dataset"] == str(user / "runs/other")
    assert sweep.overrides == {"dataset": str(user / "runs/other")}
    assert sweep.storage_path == str(user / "runs/ray") and sweep.output == str(user / "runs/dpo_sweep")
    merge = load_config(configs / "merge_sweep.yaml")
    assert merge.candidates == {"a": str(user / "runs/a"), "b": "s3://bucket/b"} and merge.data_dir == str(user / "bench")
    synth = load_config(configs / "synth.yaml", ["decontamination.benchmarks_dir=bench"])
    assert synth.model == "org/name" and synth.seed_data == str(user / "math.jsonl")
    assert synth.decontamination.benchmarks_dir == str(user / "bench")
    # What a trial receives re-validates to the same absolute paths, whatever its working directory.
    monkeypatch.chdir(tmp_path)
    assert type(sweep)(**sweep.model_dump()).dpo_config({}).model == str(user / "runs/sft")


def test_deep_merge_and_dotted_overrides():
    assert deep_merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": 3}, "l": [2]}) == {"a": {"b": 3, "c": 2}, "l": [2]}
    assert apply_overrides({"a": {"b": 1}}, ["a.c=[1, 2]", "d=null"]) == {"a": {"b": 1, "c": [1, 2]}, "d": None}
    with pytest.raises(ConfigError, match="dotted.key=value"):
        apply_overrides({}, ["novalue"])


def test_cli_bad_config_is_one_line_and_nonzero(tmp_path):
    cfg = write(tmp_path / "tiny.yaml", "stage: tiny\nseeed: 3\n")
    result = subprocess.run([sys.executable, "-m", "solar_ray.cli", "run", str(cfg)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "seeed" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


def test_training_inputs_given_relative_reach_workers_as_absolute_paths(tmp_path, monkeypatch):
    # Ray Train V2 workers run in their own working directory: a relative path from the command line must be
    # made absolute against the caller's directory, while a storage URI is kept as given.
    from solar_ray.train import sft

    monkeypatch.chdir(tmp_path)
    config = sft.Config(model="runs/cpt", dataset="s3://bucket/data_sft")
    assert config.model == str(tmp_path / "runs" / "cpt")
    assert config.dataset == "s3://bucket/data_sft"
