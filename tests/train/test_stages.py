"""Each training stage on 2 Ray Train workers with ZeRO-2 and ZeRO-3: loss goes down, the exported model dir
loads in transformers and generates, and the artifact carries metrics and lineage."""

from __future__ import annotations

import json

import pytest

from solar_ray.artifacts import read_lineage
from solar_ray.train import dpo, pretrain, sft
from solar_ray.train.launcher import run

OPTIM = {"max_length": 64, "per_device_batch_size": 4, "max_steps": 6, "learning_rate": 3e-3, "warmup_ratio": 0.2}


def _run(module, model, dataset, tmp_path, zero_stage, **extra):
    name = f"{module.__name__.rsplit('.', 1)[-1]}-z{zero_stage}"
    config = module.Config(
        model=str(model), dataset=str(dataset), output=str(tmp_path / name),
        scaling={"num_workers": 2}, deepspeed={"zero_stage": zero_stage}, optim=OPTIM,
        run={"name": name, "storage_path": str(tmp_path / "ray"), "checkpoint_every": 3}, **extra,
    )
    out = run(config)
    assert not (tmp_path / "ray" / name).exists()  # the run's checkpoints are deleted once the artifact is written
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return out, [row for row in rows if "loss" in row]


def _loads_and_generates(out):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert not [p.name for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pth")]  # safetensors only
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert "### Assistant:" in tokenizer.chat_template
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "what colour is the cat ?"}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        generated = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > prompt["input_ids"].shape[1]


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [3])  # ZeRO-2 pretraining: test_resume.py's uninterrupted run
def test_pretrain_loss_falls_and_export_generates(ray_session, tiny_model, text_dataset, tmp_path, zero_stage):
    out, rows = _run(pretrain, tiny_model, text_dataset, tmp_path, zero_stage)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.3
    assert all(r["tokens_per_second"] > 0 and "learning_rate" in r for r in rows)
    lineage = read_lineage(out)
    assert {p["name"] for p in lineage["parents"]} == {"model", "dataset"}
    assert lineage["metrics"]["final_loss"] == rows[-1]["loss"]
    assert "final_eval_loss" in json.loads((out / "metrics.json").read_text())  # the dataset has a test split
    _loads_and_generates(out)


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [2, 3])
def test_sft_assistant_only_loss_falls(ray_session, tiny_model, chat_dataset, tmp_path, zero_stage):
    out, rows = _run(sft, tiny_model, chat_dataset, tmp_path, zero_stage)
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.3
    assert rows[-1]["step"] == 6
    _loads_and_generates(out)


@pytest.mark.slow
@pytest.mark.parametrize("zero_stage", [2, 3])
def test_dpo_loss_falls_and_rewards_are_logged(ray_session, tiny_model, preference_dataset, tmp_path, zero_stage):
    out, rows = _run(dpo, tiny_model, preference_dataset, tmp_path, zero_stage, beta=0.5)
    assert rows[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1: -log(sigmoid(0))
    assert min(r["loss"] for r in rows[1:]) < rows[0]["loss"]
    assert all("rewards/accuracies" in r and "rewards/margins" in r for r in rows)
    assert rows[-1]["rewards/margins"] > 0
    _loads_and_generates(out)
