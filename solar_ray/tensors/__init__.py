"""Tensors as bytes, shared by up-scaling and merging: safetensors_io.py (headers, byte-range reads, shard
writing, computed tensors), kernels.py (float16 / bfloat16 <-> float32 in numpy, no torch), layout.py
(per-architecture tensor layouts as data)."""
