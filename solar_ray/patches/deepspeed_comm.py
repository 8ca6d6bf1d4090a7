"""DeepSpeed's comm layer without its CPU shared-memory op, which training never uses.

On a CPU accelerator, DeepSpeed's `TorchBackend` (created by every `init_distributed`) loads the
`deepspeed_shm_comm` C++ extension, compiling it on first use: 30-45 s of both cores on a fresh machine, where
the main job, the rehearsal and CI each start from one. The op serves only `inference_all_reduce` (tensor-parallel
inference), which falls back to torch.distributed's all_reduce when it is absent; ZeRO training reduces through
torch.distributed either way. So a training worker on CPU skips it.

It replaces `deepspeed.comm.torch.build_shm_op`, a module-level function of DeepSpeed's, not an API, which
`TorchBackend.__init__` looks up there. Written against DeepSpeed 0.19.8 (solar_ray.patches lists it);
tests/train/test_deepspeed_comm.py checks that a CPU process group then starts without loading the op.
"""

from __future__ import annotations


def skip_cpu_shm_op() -> None:
    """Make DeepSpeed's comm backend skip its shared-memory op when the accelerator is the CPU. Call in a training
    worker before anything initialises DeepSpeed's comm (TrainingArguments with a DeepSpeed config does)."""
    import importlib

    from deepspeed.accelerator import get_accelerator

    # Not `import deepspeed.comm.torch as ...`: deepspeed.comm's `torch` attribute is the torch package.
    ds_torch = importlib.import_module("deepspeed.comm.torch")

    if get_accelerator().device_name() != "cpu" or getattr(ds_torch.build_shm_op, "skipped", False):
        return

    def build_shm_op():
        return None

    build_shm_op.skipped = True
    ds_torch.build_shm_op = build_shm_op
