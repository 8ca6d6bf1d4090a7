"""The tiny world's tokenizer (BPE trained here) and random-init Llama base model."""

from __future__ import annotations

import string
from pathlib import Path

from solar_ray.chat import SOLAR_CHAT_TEMPLATE

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
VOCAB_SIZE = 1024

# hidden 128 = 2 heads x head_dim 64 (a CPU vLLM needs head_dim 64); 8 layers so DUS (m = 2) has room.
# Parameters: embeddings 2 x 1024 x 128 = 0.26M; per layer attention 128x128x2 + 128x64x2 = 49k, MLP 3 x 128 x 384
# = 147k -> 8 layers 1.57M; total about 1.8M, a few ms per token on one CPU core.
MODEL_SHAPE = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 8,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "max_position_embeddings": 2048,  # 25-shot ARC prompts reach about 800 tokens
    "rope_theta": 10000.0,
    "tie_word_embeddings": False,
}


def train_tokenizer(texts: list[str]):
    """BPE over Metaspace words with digits split one by one (so arithmetic is learnable); SOLAR chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(), pre_tokenizers.Digits(individual_digits=True)]
    )
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[SPECIAL_TOKENS[k] for k in ("unk_token", "bos_token", "eos_token", "pad_token")],
        initial_alphabet=list(string.printable),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=2048, **SPECIAL_TOKENS)
    wrapped.chat_template = SOLAR_CHAT_TEMPLATE
    return wrapped


def build_base_model(tokenizer, seed: int, out: Path) -> None:
    """Random-init LlamaForCausalLM sized by MODEL_SHAPE, saved as safetensors with its tokenizer."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **MODEL_SHAPE,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, max_new_tokens=64,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
