"""Synthetic math data (issue 7): MetaMath-style rephrasing of MATH into Synth. Math-Instruct / -Alignment.

engines.py (transformers, vllm; registry), prompts.py (few-shot prompts, hash), answers.py (final answers),
validate.py (seed and sample rules), generate.py (Ray Data actor pool, resumable blocks), stage.py (`synth_math`).
"""
