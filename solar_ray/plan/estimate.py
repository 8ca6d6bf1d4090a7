"""Memory, work and disk of the kinds of work stages do, for their `workload` contracts (solar_ray/contract.py).

Training model states come from DeepSpeed's own estimators (the functions its `estimate_zero{2,3}_model_states_
mem_needs_all_cold` print for every option; called directly here because those print instead of returning);
ZeRO 0/1 and fp32 training, which DeepSpeed does not estimate, are counted by hand from the same per-parameter
bytes. Activations, KV cache and logits are counted from the model's config (formulas in each function).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from solar_ray.contract import Workload
from solar_ray.plan.models import ModelShape, PlanContext

GB = 1e9


def model_states(shape: ModelShape, zero_stage: int, offload: bool, devices: int, bf16: bool) -> dict[str, float]:
    """Weights, gradients and optimizer states (AdamW) per device, by part.

    16-bit ZeRO-2/3: DeepSpeed's total per GPU, split as DeepSpeed's comments count it: 2 B/param of 16-bit
    weights, 6 of gradients (16- and 32-bit), 12 of optimizer states (32-bit master weights, Adam's two moments),
    sharded over the devices as the stage shards them, plus ZeRO-3's buffer for gathering the largest layer.
    """
    n = shape.params
    if bf16 and zero_stage == 3:
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        _, gpu, gather = estimate_zero3_model_states_mem_needs(
            n, shape.largest_layer, num_gpus_per_node=devices, num_nodes=1, cpu_offload=offload,
            cpu_offload_params=False, zero_init=True)
        weights = 2 * n / devices
        grads = 0.0 if offload else 4 * n / devices  # DeepSpeed counts 18 B/param for ZeRO-3: 2 + 4 + 12
        return {"weights": weights, "gradients": grads, "optimizer": gpu - gather - weights - grads,
                "ZeRO-3 gather buffer": gather}
    if bf16 and zero_stage == 2:
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        _, gpu = estimate_zero2_model_states_mem_needs(n, num_gpus_per_node=devices, num_nodes=1, cpu_offload=offload)
        grads = 0.0 if offload else 6 * n / devices
        return {"weights": 2 * n, "gradients": grads, "optimizer": gpu - 2 * n - grads}
    # Not estimated by DeepSpeed: ZeRO 0/1, and fp32 training (CPU). Same bytes per parameter, sharded by stage:
    # 16-bit: weights 2, gradients 2 (+4 fp32 copy, sharded from ZeRO-1), optimizer 12; fp32: 4, 4, 8.
    w, g, o = (2, 6, 12) if bf16 else (4, 4, 8)
    share = [1.0 / devices if zero_stage >= k else 1.0 for k in (3, 2, 1)]
    return {"weights": w * n * share[0], "gradients": 0.0 if offload else g * n * share[1],
            "optimizer": 0.0 if offload else o * n * share[2]}


def offload_host_memory(shape: ModelShape, zero_stage: int, devices: int):
    """Host memory per node that ZeRO-Offload keeps the optimizer in, as DeepSpeed estimates it (given nodes)."""
    def per_node(nodes: int) -> float:
        per = max(1, devices // nodes)
        if zero_stage == 3:
            from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

            return estimate_zero3_model_states_mem_needs(shape.params, shape.largest_layer, per, nodes, True, False,
                                                         True)[0]
        from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

        return estimate_zero2_model_states_mem_needs(shape.params, per, nodes, True)[0]
    return per_node


def activation_bytes(shape: ModelShape, batch: int, seq: int, checkpointing: bool, nbytes: int) -> float:
    """Activations kept for the backward pass, per device.

    A Llama block keeps, per token, about 5 hidden-size vectors (norm inputs, attention input, q, the attention
    output), k and v, and 4 intermediate-size vectors (MLP gate, up, activation, product); attention scores are
    not kept (SDPA / flash attention). Gradient checkpointing keeps each block's input and recomputes one block
    at a time.
    """
    block = (5 * shape.hidden + 2 * shape.kv_heads * shape.head_dim + 4 * shape.intermediate) * nbytes
    if checkpointing:
        return batch * seq * (shape.layers * shape.hidden * nbytes + block)
    return batch * seq * shape.layers * block


def logits_bytes(shape: ModelShape, batch: int, seq: int) -> float:
    """fp32 logits for the loss and their gradient."""
    return batch * seq * shape.vocab * 4 * 2


def unknown(device: str, devices: int | None, what: str) -> Workload:
    return Workload(device=device, devices=devices, work="-", notes=[f"{what}: size unknown, not estimated"])


def training(config: Any, ctx: PlanContext, *, packed: bool = False, pairs: bool = False,
             reference: bool = False) -> Workload:
    """A Ray Train + DeepSpeed stage: `packed` sequences fill max_length (pretraining); `pairs` trains on chosen
    and rejected sequences together; `reference` adds DPO's frozen reference model (sharded like the weights)."""
    s, ds, o = config.scaling, config.deepspeed, config.optim
    devices = s.num_workers
    device = "cpu" if s.use_gpu is False else "gpu"
    optional = s.use_gpu is None
    shape = ctx.shape(config.model)
    if shape is None:
        return Workload(device=device, devices=devices, gpu_optional=optional,
                        notes=[f"model {config.model}: size unknown, not estimated"])
    bf16 = ds.bf16 if ds.bf16 is not None else device == "gpu"
    nbytes = 2 if bf16 else 4
    memory = model_states(shape, ds.zero_stage, ds.offload_optimizer, devices, bf16)
    if reference:
        memory["reference weights"] = nbytes * shape.params / (devices if ds.zero_stage == 3 else 1)
    per_step = o.per_device_batch_size * (2 if pairs else 1)
    memory["activations"] = activation_bytes(shape, per_step, o.max_length, o.gradient_checkpointing, nbytes)
    memory["logits"] = logits_bytes(shape, per_step, o.max_length)

    global_batch = o.per_device_batch_size * devices * config.gradient_accumulation_steps()
    rows = ctx.rows(config.dataset)
    if o.max_steps:
        sequences = o.max_steps * global_batch
    elif rows is not None:
        sequences = max(1, int(o.epochs * (rows // global_batch))) * global_batch
    else:
        return Workload(device=device, devices=devices, gpu_optional=optional, memory=memory,
                        notes=[f"{config.dataset}: rows unknown"])
    if packed:
        seq_tokens = o.max_length
    else:
        seq_tokens = min(o.max_length, ctx.note("tokens_per_row", "{value} tokens per SFT example or DPO response "
                                                                  "(prompt + response)"))
    tokens = sequences * seq_tokens * (2 if pairs else 1)
    flops = 6 * shape.params * tokens + (2 * shape.params * tokens if reference else 0)
    checkpoint = (nbytes + (12 if bf16 else 8)) * shape.params  # weights + fp32 master copy and Adam moments
    work = f"{count(tokens)} tokens, {sequences:,} {'pairs' if pairs else 'seqs'}"
    from solar_ray.data.stage import TEST_FILE

    held_out = ctx.rows(Path(config.dataset) / TEST_FILE) or 0
    if held_out and not packed:  # a TRL stage scores its test split first and every eval_steps (train/hf.py)
        evaluations = 1 + (sequences // global_batch) // config.run.eval_steps
        eval_tokens = evaluations * held_out * seq_tokens * (2 if pairs else 1)
        flops += 2 * shape.params * eval_tokens * (2 if reference else 1)  # forward passes only
        work += f", {evaluations} evaluations of {held_out:,} held-out {'pairs' if pairs else 'seqs'}"
    return Workload(
        device=device, devices=devices, gpu_optional=optional, memory=memory, work=work, train_flops=flops,
        host_memory=offload_host_memory(shape, ds.zero_stage, devices) if ds.offload_optimizer else None,
        disk={f"Ray storage ({config.run.keep_checkpoints} checkpoints)": config.run.keep_checkpoints * checkpoint,
              "export": nbytes * shape.params},
        notes=[f"model {count(shape.params)} parameters, {shape.layers} layers"],
    )


def vllm_engine(shape: ModelShape, ctx: PlanContext, *, tensor_parallel: int, share: float, max_len: int | None,
                nbytes: int = 2) -> tuple[dict[str, float], tuple[str, float, float]]:
    """Memory per GPU of one vLLM engine: its weight shard and overhead; the KV cache takes what is left of
    `share` of the GPU, and needs room for at least one sequence of `max_len` tokens."""
    overhead = ctx.note("vllm_overhead_gb", "vLLM engine overhead besides weights and KV cache: {value} GB per GPU")
    memory = {"weights": nbytes * shape.params / tensor_parallel, "vLLM overhead": overhead * GB}
    kv_token = shape.kv_bytes_per_token(nbytes) / min(tensor_parallel, shape.kv_heads)
    return memory, ("KV cache", share, kv_token * (max_len or shape.max_positions))


def hf_inference(shape: ModelShape, *, batch: int, seq: int, nbytes: int) -> dict[str, float]:
    """Memory of a transformers model scoring a batch: its weights, and the batch's KV cache and fp32 logits."""
    return {"weights": nbytes * shape.params,
            "eval batch": batch * seq * (shape.kv_bytes_per_token(nbytes) + shape.vocab * 4)}


def dtype_bytes(dtype: str | None, default: int) -> int:
    return {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2}.get(str(dtype), default)


def count(n: float) -> str:
    """10.73B, 12.6M, 950K."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.2f}B" if unit == "B" else f"{n / scale:.1f}{unit}"
    return f"{n:g}"
