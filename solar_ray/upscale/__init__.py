"""Depth up-scaling (DUS): stage.py (Config, run, upscale), layout.py (architectures as data, the layer mapping),
stream.py (byte-range safetensors copy), seam.py (seam diagnostics), cli.py (`solar-ray upscale` / `seam`)."""
