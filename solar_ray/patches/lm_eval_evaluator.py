"""lm-eval's evaluator made cheaper per call, for a runner that makes one `simple_evaluate` call per (model,
task): its environment report is taken once per process, its prompt templates compiled once per process.

Both replace a function in an lm-eval module (evaluator.add_env_info, utils.apply_template), which its code looks
up there on every call: an internal of lm-eval's, not an API. Written against lm-eval 0.4.13 (solar_ray.patches
lists both with their parameters); tests/evaluate/test_metrics.py checks the behaviour (one report per process,
prompts rendered as lm-eval renders them, each template compiled once).
"""

from __future__ import annotations

from typing import Any


def reuse_env_info() -> None:
    """Every simple_evaluate call ends with lm-eval's add_env_info, which runs torch's collect_env (subprocesses):
    2.6 s the first time in a process and 0.5 s after, measured here - more than a tiny task's whole evaluation,
    and the runner makes one call per (model, task). The report is the same all process long, so it is taken once
    per process and copied into each result."""
    import lm_eval.evaluator as evaluator

    if getattr(evaluator.add_env_info, "reused", False):
        return
    collect, cached = evaluator.add_env_info, {}

    def add_env_info(storage: dict[str, Any]) -> None:
        if not cached:
            collect(cached)
        storage.update(cached)

    add_env_info.reused = True
    evaluator.add_env_info = add_env_info


def compile_templates_once() -> None:
    """lm-eval renders each prompt field with `env.from_string(template).render(doc)`, compiling the same few
    jinja templates again for every document and shot: 2,816 compiles, 2.2 s of a tiny model's 16 s H6
    (measured). Each template is compiled once per process; rendering is unchanged."""
    import functools

    import lm_eval.utils as utils

    if getattr(utils.apply_template, "compiled_once", False):
        return
    compile_template = functools.lru_cache(maxsize=4096)(utils.env.from_string)

    def apply_template(template: str, doc: dict) -> str:
        return compile_template(template).render(**doc)

    apply_template.compiled_once = True
    utils.apply_template = apply_template
