"""Memory on GPU, checked on the objects the code builds (no 10.7B model here): evaluation loads bf16 on GPU and
frees a model before loading the next; the contamination test runs on GPU actors in bf16, sized by GPUs."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from solar_ray.errors import SolarRayError
from solar_ray.evaluate import contamination, runner
from solar_ray.evaluate.runner import ModelSlot, make_lm, release_lm, resolve_dtype


def test_eval_weights_are_bf16_on_gpu_and_float32_on_cpu_or_when_asked(monkeypatch):
    assert resolve_dtype("auto", "hf", "cuda") == "bfloat16"
    assert resolve_dtype(None, "hf", "cuda:1") == "bfloat16"
    assert resolve_dtype("auto", "hf", "cpu") == "float32"
    assert resolve_dtype("float32", "hf", "cuda") == "float32"
    monkeypatch.setattr("solar_ray.synth.engines.vllm_build", lambda: "cuda")
    assert resolve_dtype("auto", "vllm", "cpu") == "bfloat16"
    monkeypatch.setattr("solar_ray.synth.engines.vllm_build", lambda: "cpu")  # the CPU build computes in float32
    assert resolve_dtype("auto", "vllm", "cpu") == "float32"


def test_hf_lm_on_gpu_is_built_in_bf16(monkeypatch, tmp_path):
    built = {}

    def fake_lm(**kwargs):
        built.update(kwargs)
        return SimpleNamespace(model=SimpleNamespace(generation_config=SimpleNamespace(max_new_tokens=64)))

    monkeypatch.setattr("solar_ray.patches.lm_eval_context.SharedContextHFLM", fake_lm)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    make_lm(tmp_path, backend="hf", device="cuda")
    assert built["dtype"] == "bfloat16" and built["device"] == "cuda"


def test_vllm_lm_is_built_in_bf16_with_one_engine(monkeypatch, tmp_path):
    built = {}
    monkeypatch.setattr("solar_ray.synth.engines.vllm_build", lambda: "cuda")
    # lm-eval's vLLM module imports vllm at its top: a stand-in module records what the runner builds.
    monkeypatch.setitem(sys.modules, "lm_eval.models.vllm_causallms",
                        SimpleNamespace(VLLM=lambda **kwargs: built.update(kwargs)))
    make_lm(tmp_path, backend="vllm", gpu_memory_utilization=0.8)
    assert built["dtype"] == "bfloat16" and built["data_parallel_size"] == 1
    assert built["gpu_memory_utilization"] == 0.8


def test_gpu_lm_without_cuda_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SolarRayError, match=r"^device cuda: torch .* sees no CUDA device where this evaluation runs"):
        make_lm(tmp_path, backend="hf", device="cuda")


def test_switching_models_frees_the_previous_before_building_the_next():
    events = []
    slot = ModelSlot(build=lambda name: events.append(f"build {name}") or f"lm {name}",
                     release=lambda lm: events.append(f"release {lm}"))
    assert slot.get("a") == "lm a" and slot.get("a") == "lm a"  # the same model is loaded once
    assert slot.get("b") == "lm b"
    assert events == ["build a", "release lm a", "build b"]


def test_release_shuts_the_vllm_engine_down_then_returns_gpu_memory(monkeypatch):
    events = []
    core = SimpleNamespace(shutdown=lambda: events.append("engine core shut down"))
    lm = SimpleNamespace(model=SimpleNamespace(llm_engine=SimpleNamespace(engine_core=core)))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: events.append("cache emptied"))
    release_lm(lm)
    assert events == ["engine core shut down", "cache emptied"] and not hasattr(lm, "model")


def test_release_frees_a_real_hf_model(eval_model):
    """lm-eval's HFLM keeps its model behind a read-only `model` property: release drops `_model` (a switch of
    models in an eval actor failed with AttributeError on `del lm.model`)."""
    import weakref

    lm = make_lm(eval_model, backend="hf", device="cpu", batch_size=2)
    model = weakref.ref(lm._model)
    release_lm(lm)
    assert model() is None and not hasattr(lm, "_model")


def contamination_config(**kwargs) -> contamination.Config:
    return contamination.Config(model="m", reference="r", data_dir="d", **kwargs)


def test_contamination_on_gpu_is_one_bf16_actor_per_gpu():
    plan = contamination.plan_workers(contamination_config(), gpu=True, cluster_cpus=64, gpus=8, examples=100)
    assert plan == {"workers": 8, "options": {"num_cpus": 1, "num_gpus": 1}, "device": "cuda", "dtype": "bfloat16",
                    "threads": 1}
    two = contamination.plan_workers(contamination_config(gpus_per_worker=2), gpu=True, cluster_cpus=64, gpus=8,
                                     examples=100)
    assert two["workers"] == 4 and two["options"]["num_gpus"] == 2


def test_contamination_on_cpu_stays_float32_and_never_outnumbers_the_examples():
    plan = contamination.plan_workers(contamination_config(cpus_per_worker=2), gpu=False, cluster_cpus=16, gpus=0,
                                      examples=3)
    assert plan == {"workers": 3, "options": {"num_cpus": 2, "num_gpus": 0}, "device": "cpu", "dtype": "float32",
                    "threads": 2}
    asked = contamination.plan_workers(contamination_config(dtype="float32"), gpu=True, cluster_cpus=8, gpus=2,
                                       examples=10)
    assert asked["dtype"] == "float32"


def test_contamination_puts_the_two_models_on_two_gpus_when_it_has_them(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert contamination.model_devices("cuda") == ("cuda:0", "cuda:1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert contamination.model_devices("cuda") == ("cuda:0", "cuda:0")
    assert contamination.model_devices("cpu") == ("cpu", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SolarRayError, match="given a GPU by Ray but torch sees no CUDA device"):
        contamination.model_devices("cuda")


def test_eval_actor_resources_follow_the_gpu_count():
    assert runner.worker_options(1, 1) == {"num_cpus": 1, "num_gpus": 1}


def test_contamination_reserves_the_gpus_its_actors_take():
    """The pipeline's scheduler reserves what the actors ask Ray for: with device auto, GPUs where the cluster has
    them (it reserved one CPU per actor and no GPU before)."""
    from solar_ray.contract import needs

    gpus = {"CPU": 64.0, "GPU": 8.0}
    auto = contamination_config(workers=4, gpus_per_worker=2, cpus_per_worker=3)
    assert needs(auto).demand(gpus) == {"CPU": 12.0, "GPU": 8.0}
    assert needs(auto).demand({"CPU": 64.0, "GPU": 0.0}) == {"CPU": 12.0, "GPU": 0.0}
    assert needs(contamination_config(workers=4, device="cpu")).demand(gpus) == {"CPU": 4.0, "GPU": 0.0}
