"""Up-scaling: stage.py (Config, run, upscale), plans.py (the methods as layer plans: DUS, averaged DUS, stacking,
block expansion), seam.py (seam diagnostics), cli.py (`solar-ray upscale` / `seam`). Byte-range safetensors I/O
and per-architecture layouts live in solar_ray/tensors, shared with merging."""
