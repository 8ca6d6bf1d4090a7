"""GPU-cluster paths checked on the objects the code builds (no GPU here): the TRL configs, ZeRO-Offload's
optimiser, the device of the eval-loss reduction, and where SFT/DPO checkpoints go on every rank."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from solar_ray.train import dpo, hf, pretrain, sft
from solar_ray.train.deepspeed_config import deepspeed_config

CPU = {"use_gpu": False, "bf16": False, "backend": "gloo"}
OPTIM = {"max_length": 64, "per_device_batch_size": 4, "max_steps": 6, "learning_rate": 3e-3, "warmup_ratio": 0.2,
         "weight_decay": 0.01}


def trl_args(module, config_class, monkeypatch, **settings):
    """The TRL config object a worker builds for this stage config (DeepSpeed's process-wide switch restored)."""
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "false")
    config = module.Config(model="m", dataset="d", output="o", optim=OPTIM, run={"checkpoint_every": 3}, **settings)
    cfg = {"args": hf.trainer_arguments(config, CPU, total_steps=6, has_eval=False), "by_name": hf.settings_by_name(config)}
    return hf.trl_config(config_class, cfg, "unused")


def test_stage_settings_reach_trl_by_name(monkeypatch):
    from trl import DPOConfig, SFTConfig

    args = trl_args(dpo, DPOConfig, monkeypatch, beta=0.5, loss_type="ipo")
    assert (args.beta, args.loss_type) == (0.5, ["ipo"])
    assert (args.learning_rate, args.weight_decay, args.max_length, args.seed) == (3e-3, 0.01, 64, 0)
    assert (args.warmup_steps, args.max_steps, args.per_device_train_batch_size, args.save_steps) == (0.2, 6, 4, 3)
    assert trl_args(sft, SFTConfig, monkeypatch, assistant_only_loss=False).assistant_only_loss is False
    grouped = trl_args(sft, SFTConfig, monkeypatch, train_sampling_strategy="group_by_length")
    assert grouped.train_sampling_strategy == "group_by_length"
    assert trl_args(sft, SFTConfig, monkeypatch).train_sampling_strategy == "random"
    # The stages' own TRL settings are named as TRL names them, so none is dropped on the way.
    for config_class, names in ((SFTConfig, {"assistant_only_loss", "train_sampling_strategy"}),
                                (DPOConfig, {"beta", "loss_type"})):
        assert names <= {f.name for f in dataclasses.fields(config_class)}, config_class.__name__


def test_offload_lets_deepspeed_build_its_cpu_optimiser_in_the_hf_trainer(monkeypatch):
    from transformers.integrations.deepspeed import deepspeed_optim_sched
    from trl import DPOConfig

    args = trl_args(dpo, DPOConfig, monkeypatch, deepspeed={"zero_stage": 3, "offload_optimizer": True})
    ds = args.hf_deepspeed_config.config
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["optimizer"] == {"type": "AdamW", "params": {"lr": 3e-3, "weight_decay": 0.01, "betas": [0.9, 0.999],
                                                           "eps": 1e-8}}

    class Trainer:  # without an optimizer section the Trainer would build torch's AdamW, which DeepSpeed refuses
        def create_optimizer(self):
            raise AssertionError("the HF Trainer built its own optimiser next to ZeRO-Offload")

    optimizer, _ = deepspeed_optim_sched(Trainer(), args.hf_deepspeed_config, args, 6, [torch.nn.Parameter(torch.ones(2))])
    assert type(optimizer).__name__ == "DummyOptim"  # DeepSpeed builds it from the config: DeepSpeedCPUAdam


def test_offload_lets_deepspeed_build_its_cpu_optimiser_in_pretraining():
    model = torch.nn.Linear(2, 2)
    cfg = {"learning_rate": 3e-3, "weight_decay": 0.01, "lr_scheduler": "cosine", "warmup_steps": 2, "total_steps": 6}
    offload = pretrain.optimizer_arguments(model, {**cfg, "deepspeed": deepspeed_config(
        2, False, 4, 1, 2, offload_optimizer=True, learning_rate=3e-3, weight_decay=0.01)})
    assert "optimizer" not in offload and len(offload["model_parameters"]) == 2
    schedule = offload["lr_scheduler"](torch.optim.SGD(model.parameters(), lr=3e-3))  # DeepSpeed calls it on its optimiser
    assert schedule.get_last_lr() == [0.0]  # warmup starts at 0 (one param group)
    plain = pretrain.optimizer_arguments(model, {**cfg, "deepspeed": deepspeed_config(2, False, 4, 1, 2)})
    assert isinstance(plain["optimizer"], torch.optim.AdamW) and plain["optimizer"].defaults["weight_decay"] == 0.01
    with pytest.raises(ValueError, match="needs the learning_rate"):
        deepspeed_config(2, False, 4, 1, 2, offload_optimizer=True)


def test_eval_loss_is_reduced_on_the_backends_device():
    assert pretrain.collective_device("nccl", torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert pretrain.collective_device("gloo", torch.device("cuda", 1)) == torch.device("cpu")
    assert pretrain.collective_device("gloo", "cpu") == torch.device("cpu")


def _reduce_on_gloo(rank: int, init_file: str, results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    total, count = [(6.0, 3), (2.0, 1)][rank]
    results.put((rank, pretrain.mean_over_ranks(total, count, pretrain.collective_device(dist.get_backend(), "cpu"))))
    dist.destroy_process_group()


def test_eval_loss_reduction_runs_on_gloo_with_two_ranks(tmp_path):
    ctx = torch.multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_reduce_on_gloo, args=(rank, str(tmp_path / "init"), results)) for rank in range(2)]
    for proc in procs:
        proc.start()
    got = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    assert got == {0: 2.0, 1: 2.0}  # (6 + 2) / (3 + 1) on both ranks


def test_saved_checkpoints_leave_every_ranks_output_dir(tmp_path, monkeypatch):
    """Two saves on one rank: each HF checkpoint goes to Ray whole and none stays behind (transformers prunes
    old checkpoints on rank 0 only; the other ranks would keep every ZeRO-3 optimiser shard)."""
    import ray.train
    from transformers import TrainerControl, TrainerState, TrainingArguments

    reported = []

    def report(metrics, checkpoint=None):
        with checkpoint.as_directory() as directory:
            files = sorted(p.relative_to(directory).as_posix() for p in __import__("pathlib").Path(directory).rglob("*")
                           if p.is_file())
        reported.append((metrics["loss"], files))

    monkeypatch.setattr(ray.train, "report", report)
    (callback,) = [c for c in hf.trainer_callbacks(log_every=10) if hasattr(c, "on_save")
                   and type(c).on_save is not type(c).__mro__[1].on_save]
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    state = TrainerState()
    for step in (3, 6):
        shard = tmp_path / f"checkpoint-{step}" / f"global_step{step}"
        shard.mkdir(parents=True)
        (shard / "zero_pp_rank_1_mp_rank_00_optim_states.pt").write_bytes(b"0" * 64)
        state.log_history.append({"loss": float(step), "step": step})
        callback.on_save(args, state, TrainerControl())
    assert reported == [(float(s), [f"checkpoint/global_step{s}/zero_pp_rank_1_mp_rank_00_optim_states.pt"])
                        for s in (3, 6)]
    assert list(tmp_path.iterdir()) == []
