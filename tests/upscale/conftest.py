"""Tiny random decoders (Llama, Mistral, Qwen2 with tied embeddings and per-layer layer_types) saved as HF dirs."""

from __future__ import annotations

from pathlib import Path

import pytest

WORDS = ["the", "a", "fox", "dog", "jumps", "over", "lazy", "quick", "brown", "red", "river", "runs", "."]
SIZES = dict(hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, vocab_size=64,
             max_position_embeddings=256)


def word_tokenizer():
    """A word-level fast tokenizer with the SOLAR chat template, built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from solar_ray.chat import SOLAR_CHAT_TEMPLATE

    vocab = {tok: i for i, tok in enumerate(["<unk>", "<s>", "</s>", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tok.chat_template = SOLAR_CHAT_TEMPLATE
    return tok


def save_tiny(path: Path, kind: str, layers: int = 8, tokenizer: bool = True, shard: str = "60KB", **extra) -> Path:
    from solar_ray.tiny.model import build_tiny_model

    sizes = dict(SIZES)
    build_tiny_model(path, architecture=kind, layers=layers, hidden=sizes.pop("hidden_size"),
                     intermediate=sizes.pop("intermediate_size"), heads=sizes.pop("num_attention_heads"),
                     kv_heads=sizes.pop("num_key_value_heads"), vocab_size=sizes.pop("vocab_size"),
                     max_positions=sizes.pop("max_position_embeddings"), shard=shard,  # several shards: the index
                     **sizes, **extra)
    if tokenizer:
        word_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def llama_base(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("llama") / "base", "llama")


@pytest.fixture(scope="session")
def mistral_base(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("mistral") / "base", "mistral", sliding_window=4096)


@pytest.fixture(scope="session")
def qwen2_base(tmp_path_factory) -> Path:
    # Tied embeddings, sliding window on layers >= 2: layer_types differ per layer and must be sliced.
    return save_tiny(tmp_path_factory.mktemp("qwen2") / "base", "qwen2", tokenizer=False, tie_word_embeddings=True,
                     use_sliding_window=True, sliding_window=512, max_window_layers=2)


@pytest.fixture(scope="session")
def gemma2_base(tmp_path_factory) -> Path:
    # Gemma-style: tied by default, alternating sliding/full attention in layer_types.
    return save_tiny(tmp_path_factory.mktemp("gemma2") / "base", "gemma2", tokenizer=False, head_dim=16)
