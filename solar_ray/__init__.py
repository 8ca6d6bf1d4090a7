"""solar-ray: the SOLAR 10.7B recipe (depth up-scaling, continual pretraining, SFT, DPO, merging, H6) on Ray."""

__version__ = "0.1.0"
