"""The planner's figures against independent ones: hand arithmetic from a config, DeepSpeed's own printout."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from solar_ray.errors import ConfigError
from solar_ray.plan.cluster import load_cluster
from solar_ray.plan.estimate import activation_bytes, model_states, vllm_engine
from solar_ray.plan.models import PlanContext, hub_config, shape_of

REPO = Path(__file__).resolve().parents[2]

# SOLAR 10.7B: Llama, hidden 4096, intermediate 14336, 48 layers, 32 heads, 8 KV heads, vocab 32000, untied.
LLAMA_10_7B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 48,
               "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000,
               "max_position_embeddings": 4096, "tie_word_embeddings": False}
H, FFN, L, KV_DIM, V = 4096, 14336, 48, 8 * 128, 32000


@pytest.fixture(scope="module")
def solar():
    return shape_of(LLAMA_10_7B)


def test_parameters_come_from_the_config_and_match_hand_arithmetic(solar):
    attention = H * H + 2 * H * KV_DIM + H * H     # q, k, v, o (no biases)
    mlp = 3 * H * FFN                              # gate, up, down
    per_layer = attention + mlp + 2 * H            # + two RMSNorm weights
    assert solar.params == L * per_layer + 2 * V * H + H == 10_731_524_096  # + embeddings, lm_head, final norm
    assert solar.largest_layer == V * H  # the embedding (and lm_head): DeepSpeed's "largest layer"
    assert shape_of({**LLAMA_10_7B, "num_hidden_layers": 32}).params == 32 * per_layer + 2 * V * H + H


def test_kv_cache_per_token(solar):
    assert solar.kv_bytes_per_token(2) == 2 * 48 * 8 * 128 * 2 == 196_608  # K and V, every layer, bf16
    qwen = shape_of(hub_config("Qwen/Qwen2.5-72B-Instruct"))
    assert qwen.kv_bytes_per_token(2) == 2 * 80 * 8 * 128 * 2
    assert 72.0e9 < qwen.params < 73.5e9  # Qwen2.5-72B's card: 72.7B


def _deepspeed_printout(function, *args, **kwargs) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        function(*args, **kwargs)
    return out.getvalue()


def test_zero3_model_states_match_deepspeeds_printed_estimate(solar):
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold

    text = _deepspeed_printout(estimate_zero3_model_states_mem_needs_all_cold, solar.params, solar.largest_layer,
                               num_gpus_per_node=8, num_nodes=2)
    per_gpu = {(m[2], m[3]): float(m[1]) for m in re.finditer(
        r"\|\s+([\d.]+)GB \| offload_param=(\S+), offload_optimizer=(\S+), zero_init=1", text)}
    ours = model_states(solar, 3, False, 16, True)
    assert round(sum(ours.values()) / 2**30, 2) == per_gpu[("none", "none")] == 11.73  # DeepSpeed prints GiB
    offloaded = model_states(solar, 3, True, 16, True)
    assert round(sum(offloaded.values()) / 2**30, 2) == per_gpu[("none", "OffloadDeviceEnum.cpu")]
    # the parts, by hand: 2 B/param of bf16 weights, 4 of gradients, 12 of optimizer states, over 16 GPUs
    n = solar.params
    assert ours["weights"] == 2 * n / 16 and ours["gradients"] == 4 * n / 16
    assert ours["optimizer"] == pytest.approx(12 * n / 16, abs=2) and ours["ZeRO-3 gather buffer"] == 4 * V * H


def test_zero2_model_states_match_deepspeeds_printed_estimate(solar):
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs_all_cold

    text = _deepspeed_printout(estimate_zero2_model_states_mem_needs_all_cold, solar.params, num_gpus_per_node=8,
                               num_nodes=2)
    per_gpu = {m[2]: float(m[1]) for m in re.finditer(r"\|\s+([\d.]+)GB \| offload_optimizer=(\S+)", text)}
    assert round(sum(model_states(solar, 2, False, 16, True).values()) / 2**30, 2) == per_gpu["none"] == 31.23
    assert round(sum(model_states(solar, 2, True, 16, True).values()) / 2**30, 2) == per_gpu["OffloadDeviceEnum.cpu"]


def test_activations_by_hand(solar):
    block = (5 * H + 2 * KV_DIM + 4 * FFN) * 2  # bytes per token kept by one Llama block in bf16
    assert activation_bytes(solar, 1, 4096, False, 2) == 4096 * L * block  # 31.4 GB: every block's activations
    assert activation_bytes(solar, 1, 4096, True, 2) == 4096 * (L * H * 2 + block)  # inputs + one block recomputed


def test_vllm_engine_kv_cache_is_what_is_left_of_its_share(solar):
    ctx = PlanContext(assume={"vllm_overhead_gb": 3})
    memory, (part, share, least) = vllm_engine(solar, ctx, tensor_parallel=2, share=0.9, max_len=4096)
    assert memory == {"weights": 2 * solar.params / 2, "vLLM overhead": 3e9}
    assert (part, share, least) == ("KV cache", 0.9, 196_608 / 2 * 4096)  # one 4096-token sequence, KV heads split


# --------------------------------------------------------------------------------------- cluster specs


def test_launcher_and_kuberay_yamls_are_cluster_specs():
    aws = {n.name: n for n in load_cluster(REPO / "cluster/aws/solar-ray.yaml").nodes}
    h100 = aws["train_8xh100"]
    assert (h100.gpus, h100.gpu, h100.gpu_memory, h100.count, h100.price_per_hour) == (8, "H100-80GB", 80e9, 2, 55.04)
    assert aws["head"].head and aws["eval_1xl40s"].gpu_memory == 48e9 and aws["train_8xh100_spot"].spot
    gcp = {n.name: n for n in load_cluster(REPO / "cluster/gcp/solar-ray.yaml").nodes}
    assert (gcp["train_8xh100"].gpus, gcp["eval_1xa100"].gpu) == (8, "A100-80GB")
    kube = {n.name: n for n in load_cluster(REPO / "cluster/kuberay/raycluster.yaml").nodes}
    assert (kube["train-8xh100"].gpus, kube["train-8xh100"].memory, kube["infer-1xgpu"].gpu) == (
        8, 1500 * 2**30, "L40S-48GB")
    assert kube["data-cpu"].gpus == 0 and kube["train-8xh100"].count == 2
    small = {n.name: n for n in load_cluster(REPO / "solar_ray/plan/cluster_example.yaml").nodes}
    assert (small["infer"].gpu_memory, small["infer"].gpu_tflops, small["train"].count) == (48e9, 362, 2)
    assert small["head"].head


def test_an_unknown_instance_type_is_one_line_naming_it(tmp_path):
    path = tmp_path / "cluster.yaml"
    text = (REPO / "cluster/aws/solar-ray.yaml").read_text().replace("g6e.2xlarge   #", "x9.huge   #")
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"node type eval_1xl40s: instance type 'x9.huge' is not in"):
        load_cluster(path)


def test_a_model_type_transformers_cannot_build_is_left_unsized_with_a_note(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "not-a-model", "hidden_size": 8}')
    ctx = PlanContext()
    assert ctx.shape(tmp_path) is None
    assert any("not sized" in note and str(tmp_path) in note for note in ctx.used.values())


def test_a_run_reading_a_hub_mirror_is_planned_on_the_mirror_s_model(tmp_path, monkeypatch):
    """The rehearsal fetches a scaled-down Mistral from its hub stand-in: the live fit check must size that model,
    not the shipped 7B config (it refused synth_math at 290.8 GB per actor before)."""
    import json

    repo = tmp_path / "models" / "mistralai" / "Mistral-7B-v0.1"
    repo.mkdir(parents=True)
    shipped = hub_config("mistralai/Mistral-7B-v0.1")
    (repo / "config.json").write_text(json.dumps({**shipped, "num_hidden_layers": 2, "hidden_size": 64}))
    monkeypatch.setenv("SOLAR_RAY_HUB_MIRROR", str(tmp_path))
    assert hub_config("mistralai/Mistral-7B-v0.1")["num_hidden_layers"] == 2
    assert hub_config("upstage/SOLAR-10.7B-v1.0")["num_hidden_layers"] == 48  # not in the mirror: the shipped copy
    monkeypatch.delenv("SOLAR_RAY_HUB_MIRROR")
    assert hub_config("mistralai/Mistral-7B-v0.1") == shipped


def test_a_held_out_split_adds_its_evaluations_forward_passes(tmp_path):
    import json

    import pandas as pd

    from solar_ray.plan.estimate import training
    from solar_ray.train.dpo import Config

    model, data = tmp_path / "model", tmp_path / "prefs"
    model.mkdir()
    data.mkdir()
    (model / "config.json").write_text(json.dumps(LLAMA_10_7B))
    pd.DataFrame({"prompt": ["p"] * 64}).to_parquet(data / "train.parquet")
    config = Config(model=str(model), dataset=str(data), scaling={"num_workers": 8}, run={"eval_every": 10},
                    optim={"max_steps": 100, "global_batch_size": 8, "per_device_batch_size": 1, "max_length": 1024})
    before = training(config, PlanContext(), pairs=True, reference=True)
    pd.DataFrame({"prompt": ["p"] * 16}).to_parquet(data / "test.parquet")
    after = training(config, PlanContext(), pairs=True, reference=True)
    # 1 + 100 / 10 evaluations of 16 pairs (chosen and rejected), forward passes of the policy and the reference
    tokens = 11 * 16 * 2 * min(1024, PlanContext().assume["tokens_per_row"])
    assert after.train_flops - before.train_flops == pytest.approx(2 * shape_of(LLAMA_10_7B).params * tokens * 2)
    assert after.work.endswith(", 11 evaluations of 16 held-out pairs") and "held-out" not in before.work
