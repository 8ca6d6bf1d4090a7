"""Build the DeepSpeed config dict from a training stage's settings.

One builder for both engines: the custom pretraining loop (explicit numbers) and the Hugging Face / TRL Trainer
(which fills `"auto"` values from its own TrainingArguments, so the two never disagree).
"""

from __future__ import annotations

from typing import Any


def deepspeed_config(
    zero_stage: int,
    bf16: bool,
    micro_batch_size: int,
    gradient_accumulation_steps: int,
    num_workers: int,
    max_grad_norm: float = 1.0,
    offload_optimizer: bool = False,
    for_hf_trainer: bool = False,
    learning_rate: float | None = None,
    weight_decay: float = 0.0,
) -> dict[str, Any]:
    """DeepSpeed JSON config. fp32 when bf16 is off (CPU training has no fast half precision).

    With ZeRO-Offload the config names the optimiser (AdamW, with `learning_rate` and `weight_decay`; the HF
    Trainer fills them from its arguments), and DeepSpeed builds it: its CPU Adam, which steps the optimiser
    states where they live. DeepSpeed refuses a client torch.optim.AdamW next to offloaded states on GPU.
    """
    if not 0 <= zero_stage <= 3:
        raise ValueError(f"zero_stage must be 0-3, got {zero_stage}")
    offload = offload_optimizer and zero_stage >= 1
    if offload and learning_rate is None and not for_hf_trainer:
        raise ValueError("offload_optimizer needs the learning_rate for DeepSpeed's optimiser")
    zero: dict[str, Any] = {"stage": zero_stage, "contiguous_gradients": True, "overlap_comm": False}
    if zero_stage == 3:
        # Export gathers the shards into one state dict on rank 0 (save_16bit_model / Trainer.save_model).
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}

    def auto(value: Any) -> Any:
        return "auto" if for_hf_trainer else value

    config: dict[str, Any] = {
        "train_batch_size": auto(micro_batch_size * gradient_accumulation_steps * num_workers),
        "train_micro_batch_size_per_gpu": auto(micro_batch_size),
        "gradient_accumulation_steps": auto(gradient_accumulation_steps),
        "gradient_clipping": auto(max_grad_norm),
        "bf16": {"enabled": auto(bf16)},
        "fp16": {"enabled": False},
        "zero_optimization": zero,
        "steps_per_print": 10**9,  # progress comes from our own rank-0 log, not DeepSpeed's
        "wall_clock_breakdown": False,
    }
    if offload:
        # torch.optim.AdamW's defaults (betas, eps), so offloading changes where the step runs, not the step.
        config["optimizer"] = {"type": "AdamW", "params": {
            "lr": auto(learning_rate), "weight_decay": auto(weight_decay), "betas": auto([0.9, 0.999]), "eps": auto(1e-8),
        }}
    return config
