"""Ray Tune sweeps: merge weights (trials merge in memory and evaluate) and DPO hyper-parameters (each trial a
Ray Train run launched from a Tune driver function), with resumable experiment directories and reports."""
