"""Tiny random decoders and BPE tokenizers: the tiny world's base, and the one builder tests and benches use.

`build_tiny_model` is the single place a random Llama / Mistral checkpoint is built (sizes, seed, dtype, shards,
optional tokenizer); `train_byte_level_bpe` the single byte-level BPE trained on a local corpus;
`perturbed_copy` a second "fine-tuned" candidate of a model (tests/tune, bench/bench_tune.py).
"""

from __future__ import annotations

import shutil
import string
from pathlib import Path

from solar_ray.chat import SOLAR_CHAT_TEMPLATE

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
VOCAB_SIZE = 1024

# hidden 128 = 2 heads x head_dim 64 (a CPU vLLM needs head_dim 64); 4 layers, up-scaled by DUS to 6 (m = 1 = n/4).
# Depth is what decides whether the base learns to copy a number from its question within the main job's budget:
# on a pure copy task 2 layers learnt it in 150 steps, 4 in about 300, 8 not in 300 (measured); an 8-layer base
# copied GSM8K's operands only by 1,000 steps, this 4-layer one by 600 (docs/tiny-world.md).
# Parameters: embeddings 2 x 1024 x 128 = 0.26M; per layer attention 128x128x2 + 128x64x2 = 49k, MLP 3 x 128 x 384
# = 147k -> 4 layers 0.79M; total about 1.05M, a few ms per token on one CPU core.
MODEL_SHAPE = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 4,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    # The context the base is pretrained on (experiments/tiny/pretrain_base.yaml, max_length). lm-eval cuts a longer
    # few-shot prompt from the left to fit it, as for any model: 25-shot ARC prompts reach about 800 tokens, and
    # scored at positions it never trained on, a base that answers 93 % of ARC within 256 answered 72 % (measured).
    "max_position_embeddings": 256,
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
}


def metaspace_bpe(texts: list[str], specials: list[str], vocab_size: int):
    """A raw `tokenizers` BPE over Metaspace words with digits split one by one (so arithmetic is learnable);
    <unk> is its unknown token when it is the first special."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=specials[0] if specials[0] == "<unk>" else None))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=list(string.printable), show_progress=False,
    ))
    return tokenizer


def train_tokenizer(texts: list[str]):
    """The tiny world's tokenizer: metaspace_bpe with its special tokens and the SOLAR chat template."""
    from transformers import PreTrainedTokenizerFast

    specials = [SPECIAL_TOKENS[k] for k in ("unk_token", "bos_token", "eos_token", "pad_token")]
    tokenizer = metaspace_bpe(texts, specials, VOCAB_SIZE)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=2048, **SPECIAL_TOKENS)
    wrapped.chat_template = SOLAR_CHAT_TEMPLATE
    return wrapped


def train_byte_level_bpe(corpus: list[str], vocab_size: int, chat_template: str | None = None):
    """A byte-level BPE trained on `corpus` with <s>, </s>, <unk>, <pad>; offline, seconds on a CPU."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=vocab_size, min_frequency=1,
                            special_tokens=["<s>", "</s>", "<unk>", "<pad>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<pad>")
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def build_tiny_model(out: Path, tokenizer=None, *, layers: int, hidden: int, intermediate: int, heads: int,
                     kv_heads: int, head_dim: int | None = None, vocab_size: int | None = None, max_positions: int = 2048,
                     seed: int = 0, dtype: str = "float32", architecture: str = "llama", shard: str | None = None,
                     tie: bool | None = None, generation: dict | None = None, edit=None, **extra) -> Path:
    """A random-init decoder saved as safetensors into `out` (with `tokenizer` when given).

    `architecture` is a transformers model type (llama, mistral, qwen2, gemma2, ...); `head_dim` None keeps the
    architecture's default. The vocabulary and special-token ids come from `tokenizer` unless `vocab_size` is
    given; `shard` splits the weights (e.g. "100KB") so readers of an index are exercised; `edit(model)` changes
    weights before saving; `extra` goes to the config (rope_theta, sliding_window, ...).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    if tokenizer is not None:
        extra = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                 "pad_token_id": tokenizer.pad_token_id, **extra}
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    torch.manual_seed(seed)
    if head_dim is not None:
        extra["head_dim"] = head_dim
    if tie is not None:  # None: the architecture's default (Gemma ties, Llama does not)
        extra["tie_word_embeddings"] = tie
    config = AutoConfig.for_model(
        architecture, vocab_size=vocab_size or len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions, **extra,
    )
    model = AutoModelForCausalLM.from_config(config).to(getattr(torch, dtype))
    if edit is not None:
        with torch.no_grad():
            edit(model)
    if generation is not None:
        model.generation_config = GenerationConfig(**generation)
    model.save_pretrained(out, **({"max_shard_size": shard} if shard else {}))
    return out


def build_base_model(tokenizer, seed: int, out: Path) -> None:
    """Random-init LlamaForCausalLM sized by MODEL_SHAPE, saved as safetensors with its tokenizer."""
    shape = dict(MODEL_SHAPE)
    build_tiny_model(
        out, tokenizer, seed=seed, layers=shape.pop("num_hidden_layers"), hidden=shape.pop("hidden_size"),
        intermediate=shape.pop("intermediate_size"), heads=shape.pop("num_attention_heads"),
        kv_heads=shape.pop("num_key_value_heads"), head_dim=shape.pop("head_dim"),
        max_positions=shape.pop("max_position_embeddings"), tie=shape.pop("tie_word_embeddings"),
        generation={"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                    "pad_token_id": tokenizer.pad_token_id, "max_new_tokens": 64},
        **shape,
    )


def perturbed_copy(base: Path, out: Path, scale: float = 0.02, seed: int = 1) -> Path:
    """Copy of `base` whose float tensors get Gaussian noise of std `scale` (a second 'fine-tuned' candidate)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(base, out)
    generator = torch.Generator().manual_seed(seed)
    for shard in out.glob("*.safetensors"):
        state = load_file(shard)
        noisy = {k: (v + scale * torch.randn(v.shape, generator=generator)).to(v.dtype) if v.is_floating_point() else v
                 for k, v in state.items()}
        save_file(noisy, shard, metadata={"format": "pt"})
    return out
