"""Export a trained model as a consolidated Hugging Face directory, ready for merge and evaluation.

ZeRO-3 shards every parameter across workers: the shards are gathered collectively (every rank must call) into
one state dict on rank 0, in the training dtype: 16-bit (bf16) on GPU, fp32 on CPU. Rank 0 then writes
safetensors, the tokenizer with its chat template, and the generation config. ZeRO 0-2 keep whole parameters
on every rank, so rank 0 writes its own copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def gathered_state_dict(engine: Any, zero_stage: int) -> dict[str, Any] | None:
    """Full state dict on rank 0 (None on other ranks). Collective under ZeRO-3: call on every rank."""
    import torch.distributed as dist

    if zero_stage == 3:
        # DeepSpeed's own ZeRO-3 consolidation; needs stage3_gather_16bit_weights_on_model_save (our default).
        # private library API, a plain use kept here: listed and checked in solar_ray/patches/__init__.py
        return engine._zero3_consolidated_16bit_state_dict()
    return engine.module.state_dict() if dist.get_rank() == 0 else None


def save_hf_model(model: Any, state_dict: dict[str, Any] | None, tokenizer_path: str, out: str | Path) -> None:
    """Rank 0: write `model` (weights from `state_dict` when given) + tokenizer as a safetensors HF directory."""
    from transformers import AutoTokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state_dict = {k: v.detach().cpu().contiguous() for k, v in (state_dict or model.state_dict()).items()}
    model.config.use_cache = True  # training turns the KV cache off; generation wants it back
    model.save_pretrained(out, state_dict=state_dict, safe_serialization=True, max_shard_size="2GB")
    AutoTokenizer.from_pretrained(tokenizer_path).save_pretrained(out)


def export_engine(engine: Any, zero_stage: int, tokenizer_path: str, out: str | Path) -> None:
    """Every rank calls; rank 0 writes the consolidated model directory."""
    import torch.distributed as dist

    state_dict = gathered_state_dict(engine, zero_stage)
    if dist.get_rank() == 0:
        save_hf_model(engine.module, state_dict, tokenizer_path, out)
    dist.barrier()
