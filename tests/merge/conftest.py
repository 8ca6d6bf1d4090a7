"""Tiny random Llama checkpoints for the merge tests: same architecture, different seeds, fp16, bf16, fp32."""

from __future__ import annotations

from pathlib import Path

import pytest

VOCAB_WORDS = [f"w{i}" for i in range(60)]


def build_model(out: Path, seed: int, dtype: str = "float16", layers: int = 3, vocab: int = 64,
                shard: str = "100KB", tie: bool = False, pickle: bool = False) -> Path:
    """A random Llama (hidden 64, 3 layers) with a word-level tokenizer, saved in several safetensors shards."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from solar_ray.tiny.model import build_tiny_model

    out.mkdir(parents=True, exist_ok=True)
    vocab_map = {tok: i for i, tok in enumerate(["<unk>", "<s>", "</s>", *VOCAB_WORDS])}
    word_level = Tokenizer(models.WordLevel(vocab_map, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>")
    tokenizer.save_pretrained(out)

    def perturb_norms(model):  # norms start at exactly 1.0 in every seed; perturb them so merges show there too
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)

    build_tiny_model(out, vocab_size=vocab, seed=seed, dtype=dtype, layers=layers, hidden=64, intermediate=96,
                     heads=2, kv_heads=1, head_dim=32, max_positions=128, tie=tie, shard=shard, edit=perturb_norms,
                     generation={"bos_token_id": 1, "eos_token_id": 2, "do_sample": False},
                     bos_token_id=1, eos_token_id=2)
    if pickle:  # transformers 5 writes safetensors only: rewrite the weights in the legacy pickle layout by hand
        from transformers import AutoModelForCausalLM

        state = AutoModelForCausalLM.from_pretrained(out, dtype=getattr(torch, dtype)).state_dict()
        for name in [*out.glob("model*.safetensors"), *out.glob("model.safetensors.index.json"),
                     out / "generation_config.json"]:
            name.unlink(missing_ok=True)
        torch.save(state, out / "pytorch_model.bin")
    return out


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("merge_models")
    return {
        "a16": build_model(root / "a16", seed=1),
        "b16": build_model(root / "b16", seed=2),
        "c16": build_model(root / "c16", seed=3),
        "a32": build_model(root / "a32", seed=1, dtype="float32"),
        "b32": build_model(root / "b32", seed=2, dtype="float32"),
        "c32": build_model(root / "c32", seed=3, dtype="float32"),
        "abf": build_model(root / "abf", seed=1, dtype="bfloat16"),
        "bbf": build_model(root / "bbf", seed=2, dtype="bfloat16"),
    }


def load_state(path: Path) -> dict:
    """Every tensor of a model directory, as saved (dtype kept)."""
    from safetensors.torch import load_file

    state = {}
    for shard in sorted(Path(path).glob("*.safetensors")):
        state.update(load_file(shard))
    return state
