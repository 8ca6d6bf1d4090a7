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
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    vocab_map = {tok: i for i, tok in enumerate(["<unk>", "<s>", "</s>", *VOCAB_WORDS])}
    word_level = Tokenizer(models.WordLevel(vocab_map, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=word_level, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>")
    tokenizer.save_pretrained(out)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=layers, num_attention_heads=2,
        num_key_value_heads=1, head_dim=32, max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=tie,
    )
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    with torch.no_grad():  # norms start at exactly 1.0 in every seed; perturb them so merges are visible there too
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, do_sample=False)
    if pickle:  # transformers 5 writes safetensors only: write the legacy pickle layout by hand
        config.save_pretrained(out)
        torch.save(model.state_dict(), out / "pytorch_model.bin")
    else:
        model.save_pretrained(out, max_shard_size=shard)
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
