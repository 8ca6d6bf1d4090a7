"""Training stages on Ray Train + DeepSpeed: `pretrain` (custom DeepSpeed loop on packed Ray Data blocks),
`sft` (TRL SFTTrainer) and `dpo` (TRL DPOTrainer), all launched by `solar_ray.train.launcher`.

    from solar_ray.train.launcher import fit, run   # fit(config) -> ray.train.Result; run(config) -> artifact Path
"""
