"""Bad input is caught before any worker starts; the DeepSpeed dict and packing are right; shipped YAMLs load."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest

from solar_ray.config import load_config
from solar_ray.data.packing import pack_token_ids
from solar_ray.errors import ArtifactError, ConfigError, DataError
from solar_ray.train import dpo, pretrain, sft
from solar_ray.train.common import check_inputs, resolve_hardware
from solar_ray.train.deepspeed_config import deepspeed_config
from tests.train import fixtures

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments" / "tiny"


def _pretrain(tmp_path, **overrides):
    base = {"model": str(tmp_path / "model"), "dataset": str(tmp_path / "data"), "output": str(tmp_path / "out")}
    return pretrain.Config(**{**base, **overrides})


def test_zero_stage_out_of_range_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="zero_stage must be 0, 1, 2 or 3, got 4"):
        _load(tmp_path, "deepspeed.zero_stage=4")


def test_global_batch_that_does_not_divide_names_the_numbers(tmp_path):
    with pytest.raises(ConfigError, match=r"global_batch_size 10 is not a multiple of .* = 8"):
        _load(tmp_path, "optim.global_batch_size=10", "optim.per_device_batch_size=4", "scaling.num_workers=2")


def test_global_batch_sets_gradient_accumulation(tmp_path):
    config = _pretrain(tmp_path, optim={"per_device_batch_size": 2, "global_batch_size": 16}, scaling={"num_workers": 2})
    assert config.gradient_accumulation_steps() == 4


def test_gpu_only_options_on_cpu_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="deepspeed.bf16 is true but training runs on CPU"):
        resolve_hardware(_pretrain(tmp_path, deepspeed={"bf16": True}), cluster_gpus=0)
    with pytest.raises(ConfigError, match="scaling.use_gpu is true but the Ray cluster has no GPU"):
        resolve_hardware(_pretrain(tmp_path, scaling={"use_gpu": True}), cluster_gpus=0)
    with pytest.raises(ConfigError, match="scaling.backend is nccl"):
        resolve_hardware(_pretrain(tmp_path, scaling={"backend": "nccl"}), cluster_gpus=0)


def test_hardware_defaults_follow_the_cluster(tmp_path):
    assert resolve_hardware(_pretrain(tmp_path), cluster_gpus=0) == {"use_gpu": False, "bf16": False, "backend": "gloo"}
    assert resolve_hardware(_pretrain(tmp_path), cluster_gpus=2) == {"use_gpu": True, "bf16": True, "backend": "nccl"}


def test_missing_model_and_empty_or_wrong_dataset(tmp_path, tiny_model):
    with pytest.raises(ArtifactError, match="model directory not found"):
        check_inputs(_pretrain(tmp_path), ("text",))
    with pytest.raises(ArtifactError, match="no train.parquet"):
        check_inputs(_pretrain(tmp_path, model=str(tiny_model)), ("text",))
    with pytest.raises(DataError, match="dataset is empty"):
        check_inputs(_pretrain(tmp_path, model=str(tiny_model), dataset=str(_empty_text(tmp_path))), ("text",))
    chat = fixtures.write_dataset(tmp_path / "chat", fixtures.chat_rows(4))
    with pytest.raises(DataError, match="missing column.*prompt, chosen"):
        check_inputs(dpo.Config(model=str(tiny_model), dataset=str(chat)), ("prompt", "chosen", "rejected"))
    assert check_inputs(sft.Config(model=str(tiny_model), dataset=str(chat)), ("messages",)) == {"train": 4}


def _empty_text(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = tmp_path / "empty_text"
    out.mkdir()
    pq.write_table(pa.table({"text": pa.array([], pa.string()), "source": pa.array([], pa.string())}),
                   out / "train.parquet")
    return out


def test_cli_reports_bad_input_in_one_line_before_training(tmp_path, tiny_model):
    import subprocess
    import sys

    config = tmp_path / "pretrain.yaml"
    config.write_text(f"stage: pretrain\nmodel: {tmp_path / 'nope'}\ndataset: {tmp_path}\noutput: {tmp_path / 'o'}\n")
    cli = [sys.executable, "-c", "from solar_ray.cli import main; main()", "run", str(config)]
    result = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nope'}: model directory not found"
    assert not (tmp_path / "o").exists()


def test_deepspeed_dict_for_custom_loop_and_hf_trainer():
    ds = deepspeed_config(3, bf16=False, micro_batch_size=4, gradient_accumulation_steps=2, num_workers=2)
    assert ds["train_batch_size"] == 16 and ds["train_micro_batch_size_per_gpu"] == 4
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert ds["bf16"] == {"enabled": False}
    hf = deepspeed_config(2, bf16=True, micro_batch_size=4, gradient_accumulation_steps=2, num_workers=2,
                          offload_optimizer=True, for_hf_trainer=True)
    assert hf["train_batch_size"] == "auto" and hf["bf16"] == {"enabled": "auto"}
    assert hf["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    with pytest.raises(ValueError, match="zero_stage must be 0-3"):
        deepspeed_config(5, False, 1, 1, 1)


def test_pack_token_ids_concatenates_with_eos_and_drops_the_tail():
    blocks = pack_token_ids([[1, 2, 3], [4, 5], [6]], block_size=4, eos_id=0)
    # stream: 1 2 3 0 4 5 0 6 0 -> two blocks of 4, tail [0] dropped
    np.testing.assert_array_equal(blocks, [[1, 2, 3, 0], [4, 5, 0, 6]])
    assert blocks.dtype == np.int32
    assert pack_token_ids([[1]], block_size=4, eos_id=None).shape == (0, 4)


def test_pack_dataset_with_ray_data(ray_session, tiny_model):
    import ray.data

    from solar_ray.data.packing import pack_dataset

    rows = ray.data.from_items(fixtures.text_rows(50))
    blocks = pack_dataset(rows, str(tiny_model), block_size=16).take_all()
    assert blocks and all(len(b["input_ids"]) == 16 for b in blocks)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    first_doc = tokenizer(fixtures.text_rows(1)[0]["text"], add_special_tokens=False)["input_ids"]
    assert list(blocks[0]["input_ids"]) == (first_doc + [tokenizer.eos_token_id])[:16]


def test_packed_blocks_keep_the_input_order_across_parallel_tasks(ray_session, tiny_model):
    import ray.data
    from transformers import AutoTokenizer

    from solar_ray.data.packing import pack_dataset

    docs = fixtures.text_rows(120)
    rows = ray.data.from_items(docs, override_num_blocks=6)  # several tasks run at once on the 2 CPUs
    blocks = pack_dataset(rows, str(tiny_model), block_size=16, docs_per_batch=7).take_all()
    stream = " " + " ".join(str(t) for b in blocks for t in b["input_ids"]) + " "
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    positions = []
    counts = collections.Counter(doc["text"] for doc in docs)
    for text in (doc["text"] for doc in docs if counts[doc["text"]] == 1):  # texts that occur once, in order
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        # Whole docs only: from the previous doc's eos to this one's (a batch's first doc and the docs in its
        # dropped tail are not found).
        found = stream.find(f" {tokenizer.eos_token_id} " + " ".join(map(str, ids)) + " ")
        if found >= 0:
            positions.append(found)
    assert len(positions) > 20
    assert positions == sorted(positions)


@pytest.mark.parametrize("name", ["pretrain", "sft", "dpo"])
def test_shipped_tiny_configs_validate_and_start_with_their_command(name):
    path = EXPERIMENTS / f"{name}.yaml"
    assert path.read_text().startswith(f"# solar-ray run experiments/tiny/{name}.yaml")
    config = load_config(path)
    assert config.stage == name


def _load(tmp_path, *overrides):
    path = tmp_path / "c.yaml"
    path.write_text("stage: pretrain\nmodel: m\ndataset: d\n")
    return load_config(path, list(overrides))
