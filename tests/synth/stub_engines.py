"""A scripted engine for pipeline tests: deterministic rephrasings chosen by markers in the seed problem.

It is registered here, in the tests, not in the package: it exists to drive every validation outcome through
the real Ray Data pipeline without a trained model. Markers in a seed problem pick the outcome:
    FAIL      the engine raises for this prompt (generation_failed)
    WRONG     the rephrased solution ends in a different answer (answer_mismatch)
    GARBLE    the completion lacks the layout (unparseable)
    LEAK      the rephrasing copies a benchmark sentence (contaminated)
    otherwise a correct rephrasing: "Restated: <problem>" with the original solution reworded.
"""

from __future__ import annotations

import re

from solar_ray.synth.engines import Completion, GenerationEngine, register_engine

LEAKED_SENTENCE = "Janet has sixteen ducks that lay eggs every single morning and she sells the rest at the market"


@register_engine("scripted")
class ScriptedEngine(GenerationEngine):
    def __init__(self, model, sampling, options):
        super().__init__(model, sampling, options)
        self.calls = 0

    @classmethod
    def preflight(cls, model, options) -> None:  # no model files needed
        return None

    def generate(self, prompts, stop=None):
        self.calls += 1
        if any("FAIL" in p.rsplit("### Problem:", 1)[-1] for p in prompts):
            if len(prompts) > 1:
                raise RuntimeError("batch contains a failing prompt")
            raise RuntimeError("scripted failure for this prompt")
        return [[self._complete(p, k) for k in range(self.sampling.n)] for p in prompts]

    def _complete(self, prompt: str, sample: int) -> Completion:
        seed = prompt.rsplit("### Problem:\n", 1)[-1]
        problem, _, solution = seed.partition("\n\n### Solution:\n")
        solution = solution.rsplit("\n\nRephrased problem:", 1)[0]
        if "GARBLE" in problem:
            text = " the the the"
        elif "WRONG" in problem:
            text = f" Restated: {problem}\nRephrased solution: Working it out, the result is \\boxed{{-999}}."
        else:
            extra = f" {LEAKED_SENTENCE}." if "LEAK" in problem else ""
            reworded = re.sub(r"^", "In other words, ", solution)
            text = f" Restated: {problem}{extra}\nRephrased solution: {reworded}"
        text += "\n\n### Problem:\nthe engine ran on into a new example"  # cut by the stop string
        return Completion(text=text, num_tokens=len(text.split()))
