"""Up-scaling tiny Llama / Mistral / Qwen2 checkpoints: tensors per the mapping, loading, generation, equivalence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from solar_ray.artifacts import read_lineage
from solar_ray.config import load_config
from solar_ray.upscale.stage import Config, run

ROOT = Path(__file__).resolve().parents[2]


def all_tensors(model_dir: Path) -> dict[str, torch.Tensor]:
    tensors = {}
    for shard in model_dir.glob("*.safetensors"):
        with safe_open(shard, "pt") as fh:
            tensors.update({name: fh.get_tensor(name) for name in fh.keys()})
    return tensors


def upscale(base: Path, out: Path, **kw) -> Path:
    return run(Config(base=str(base), output=str(out), **kw))


@pytest.fixture(scope="module")
def llama_up(llama_base, tmp_path_factory) -> Path:
    return upscale(llama_base, tmp_path_factory.mktemp("up") / "llama12", drop=2, max_shard_size="100KB")


def test_tensors_equal_base_per_mapping(llama_base, llama_up):
    base, up = all_tensors(llama_base), all_tensors(llama_up)
    sources = list(range(6)) + list(range(2, 8))  # n=8, M=2
    assert len([k for k in up if ".layers." in k]) == 12 * len([k for k in base if ".layers.0." in k])
    for name, tensor in up.items():
        if name.startswith("model.layers."):
            j, rest = name.split(".")[2], name.split(".", 3)[3]
            source = f"model.layers.{sources[int(j)]}.{rest}"
        else:
            source = name
        assert torch.equal(tensor, base[source]), name
    assert {k for k in up if ".layers." not in k} == {k for k in base if ".layers." not in k}
    assert len(list(llama_up.glob("*.safetensors"))) > 1  # sharded, with an index
    index = json.loads((llama_up / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(up)


def test_output_loads_generates_and_first_half_matches_base(llama_base, llama_up):
    base = AutoModelForCausalLM.from_pretrained(llama_base).eval()
    model = AutoModelForCausalLM.from_pretrained(llama_up).eval()
    assert model.config.num_hidden_layers == 12 and len(model.model.layers) == 12
    ids = torch.randint(3, 64, (2, 10))
    with torch.no_grad():
        h_base = base(ids, output_hidden_states=True).hidden_states
        h_up = model(ids, output_hidden_states=True).hidden_states
        out = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=0)
    for k in range(6 + 1):  # embeddings + the first n-M = 6 layers are the base's own
        torch.testing.assert_close(h_up[k], h_base[k], rtol=0, atol=0)
    assert not torch.allclose(h_up[7], h_base[7])  # after the seam: base layer 2 on layer 5's output
    assert out.shape == (2, 15)


def test_side_files_lineage_and_card(llama_base, llama_up):
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        assert (llama_up / name).read_bytes() == (llama_base / name).read_bytes(), name
    tok = AutoTokenizer.from_pretrained(llama_up)
    assert "### Assistant:" in tok.apply_chat_template([{"role": "user", "content": "fox"}], tokenize=False,
                                                       add_generation_prompt=True)
    lineage = read_lineage(llama_up)
    assert lineage["stage"] == "upscale" and lineage["parents"][0]["name"] == "base"
    metrics = lineage["metrics"]
    per_layer = (metrics["params_after"] - metrics["params_before"]) // 4  # 4 extra layers
    assert metrics["params_before"] == sum(p.numel() for p in
                                           AutoModelForCausalLM.from_pretrained(llama_base).parameters())
    assert per_layer > 0 and (metrics["layers_before"], metrics["layers_after"]) == (8, 12)
    assert "8 -> 12" in (llama_up / "README.md").read_text()


def test_layers_option_same_as_drop(llama_base, llama_up, tmp_path):
    out = upscale(llama_base, tmp_path / "by_layers", layers=12, max_shard_size="100KB")
    for shard in llama_up.glob("*.safetensors"):
        assert (out / shard.name).read_bytes() == shard.read_bytes()


@pytest.mark.parametrize("family", ["qwen2", "gemma2"])
def test_tied_families_with_layer_types(family, request, tmp_path):
    base_dir = request.getfixturevalue(f"{family}_base")
    out = upscale(base_dir, tmp_path / "q", drop=2)  # default shard size: one shard
    config = json.loads((out / "config.json").read_text())
    base_types = json.loads((base_dir / "config.json").read_text())["layer_types"]
    assert len(set(base_types)) == 2
    assert config["layer_types"] == base_types[:6] + base_types[2:]
    assert config["tie_word_embeddings"] is True
    assert "lm_head.weight" not in all_tensors(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    base = AutoModelForCausalLM.from_pretrained(base_dir).eval()
    ids = torch.randint(0, 64, (1, 8))
    with torch.no_grad():
        torch.testing.assert_close(model(ids, output_hidden_states=True).hidden_states[6],
                                   base(ids, output_hidden_states=True).hidden_states[6], rtol=0, atol=0)
        assert model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0).shape == (1, 11)


def test_default_drop_is_quarter_and_mistral_as_llama(mistral_base, tmp_path):
    as_mistral = upscale(mistral_base, tmp_path / "m")  # default M = 8/4 = 2
    as_llama = upscale(mistral_base, tmp_path / "l", as_llama=True)
    config = json.loads((as_llama / "config.json").read_text())
    assert (config["model_type"], config["architectures"]) == ("llama", ["LlamaForCausalLM"])
    assert "sliding_window" not in config and config["max_position_embeddings"] == 4096
    assert config["num_hidden_layers"] == 12
    llama = AutoModelForCausalLM.from_pretrained(as_llama).eval()
    mistral = AutoModelForCausalLM.from_pretrained(as_mistral).eval()
    assert type(llama).__name__ == "LlamaForCausalLM" and type(mistral).__name__ == "MistralForCausalLM"
    ids = torch.randint(3, 64, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(llama(ids).logits, mistral(ids).logits)


def test_pickle_base_with_allow_pickle(llama_base, llama_up, tmp_path):
    base = tmp_path / "pickled"
    base.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (base / name).write_bytes((llama_base / name).read_bytes())
    torch.save(all_tensors(llama_base), base / "pytorch_model.bin")
    out = upscale(base, tmp_path / "from_pickle", drop=2, allow_pickle=True)
    assert not (out / ".converted").exists() and not (out / "pytorch_model.bin").exists()
    reference = all_tensors(llama_up)
    assert all(torch.equal(t, reference[k]) for k, t in all_tensors(out).items()) and len(reference) > 0


def test_experiment_yaml_validates():
    path = ROOT / "experiments" / "tiny" / "upscale.yaml"
    assert path.read_text().startswith("# solar-ray run experiments/tiny/upscale.yaml")
    config = load_config(path, ["base=somewhere"])
    assert isinstance(config, Config) and config.base == str(Path("somewhere").resolve())  # resolved where the user runs


def test_interrupted_run_leaves_nothing_and_rerun_works(llama_base, tmp_path, monkeypatch):
    import solar_ray.tensors.safetensors_io as stream

    calls = []
    real_write_shard = stream.write_shard

    def dies_on_third_shard(path, items):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if the run were killed mid-write
        return real_write_shard(path, items)

    monkeypatch.setattr(stream, "write_shard", dies_on_third_shard)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        upscale(llama_base, out, drop=2, max_shard_size="100KB")
    assert not out.exists() and not list(tmp_path.glob(".out.*"))
    monkeypatch.setattr(stream, "write_shard", real_write_shard)
    assert (upscale(llama_base, out, drop=2) / "lineage.json").is_file()
