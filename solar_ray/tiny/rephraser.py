"""`engine: tiny_world` - the tiny world's stand-in for the strong LLM that rephrases MATH problems.

The paper rephrased MATH with a capable model; no model of the tiny world's size can follow a few-shot
rephrasing prompt. This engine plays that model's part in the CPU demo pipeline: it reads the seed problem
from the synth stage's own prompt and answers in the prompt's layout, rewording the problem with the world's
grammar and solving it again, its final answer marked as the prompt's instruction asks (`answer_mark`). The
Ray Data actor pool, answer validation, deduplication and decontamination around it are the real ones; on GPU
machines use `engine: vllm` with a real model.

`model` is ignored except that it must exist (it names the model this engine stands in for). With
`temperature > 0` a share of samples (`temperature / 4`) carry a slipped answer, so validation has work to do.
"""

from __future__ import annotations

import random
import re

from solar_ray.synth.engines import Completion, GenerationEngine, register_engine
from solar_ray.synth.prompts import INSTRUCTIONS, QUESTION_TAG, SOLUTION_TAG, marked

ADD = re.compile(r"the (\w+) gives the (\w+) more (\w+) \. how many \3 does the \2 have with (\d+) and (\d+) more \?")
SUB = re.compile(r"the (\w+) gives (\w+) to the (\w+) \. how many \2 does the \1 have with (\d+) and (\d+) fewer \?")
SUM = re.compile(r"what is (\d+) ([+-]) (\d+) \?")


# Several wordings per kind of problem, one drawn per sample, so a prompt's samples are several rephrasings of it
# (as MetaMath's are), not one rephrasing repeated.
GIVEN_MORE = (
    "a {who} starts with {a} {item} and the {other} hands over {b} more . how many {item} now ?",
    "the {who} has {a} {item} and the {other} gives it {b} more . how many {item} does the {who} have now ?",
    "the {other} hands {b} {item} to the {who} , who has {a} . how many {item} are there now ?",
    "with {a} {item} , the {who} gets {b} more from the {other} . how many {item} now ?",
)
GIVEN_AWAY = (
    "a {who} starts with {a} {item} and passes {b} to the {other} . how many {item} are left ?",
    "the {who} has {a} {item} and gives {b} to the {other} . how many {item} does the {who} have left ?",
    "the {who} passes {b} of its {a} {item} to the {other} . how many are left ?",
    "with {a} {item} , the {who} hands {b} to the {other} . how many {item} are left now ?",
)
SUMS = ("compute {a} {word} {b} .", "what is {a} {word} {b} ?", "compute {a} {op} {b} .",
        "how many is {a} {word} {b} ?")


def rephrase(problem: str, rng: random.Random, slip: bool = False) -> tuple[str, str] | None:
    """(rephrased problem, worked solution ending in \\boxed{}) for a tiny-world math problem, else None. The
    solution is worked as the world works its sums ("the trev has 4 - 3 = 1 cups"), in the rephrasing's words."""
    if m := ADD.fullmatch(problem.strip()):
        other, who, item, a, b = m.groups()
        a, b, add = int(a), int(b), True
        text = rng.choice(GIVEN_MORE).format(who=who, other=other, item=item, a=a, b=b)
        subject, unit = f"the {who} has ", f" {item}"
    elif m := SUB.fullmatch(problem.strip()):
        who, item, other, a, b = m.groups()
        a, b, add = int(a), int(b), False
        text = rng.choice(GIVEN_AWAY).format(who=who, other=other, item=item, a=a, b=b)
        subject, unit = f"the {who} has ", f" {item}"
    elif m := SUM.fullmatch(problem.strip()):
        a, op, b = m.groups()
        a, b, add = int(a), int(b), op == "+"
        text = rng.choice(SUMS).format(a=a, b=b, op=op, word="plus" if add else "minus")
        subject, unit = "", ""
    else:
        return None
    answer = a + b if add else a - b
    if slip:
        answer += rng.choice([-1, 1])
    solution = f"{subject}{a} {'+' if add else '-'} {b} = {answer}{unit} , so the answer is $\\boxed{{{answer}}}$ ."
    return text, solution


@register_engine("tiny_world")
class TinyWorldEngine(GenerationEngine):
    """Deterministic rephrasing of tiny-world problems; see the module docstring.

    Seeded per prompt (sampling seed + prompt text), as vLLM seeds per request: a prompt gets the same samples
    whichever actor of the pool draws it and in whatever order, so a rerun of the stage writes the same data.
    """

    chat = False  # set by render_chat: chat completions repeat the question tag (synth.prompts.parse_rephrasing)

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """A chat request as its turns' text: this engine reads the seed problem from the text, whatever the chat
        template of the model it stands in for (the rehearsal's rephraser is an instruction model)."""
        self.chat = True
        return "\n\n".join(message["content"] for message in messages)

    def generate(self, prompts: list[str], stop: list[str] | None = None) -> list[list[Completion]]:
        results = []
        for prompt in prompts:
            rng = random.Random(f"{self.sampling.seed}:{prompt}")
            problem = prompt.rsplit("### Problem:\n", 1)[-1].split("\n\n### Solution:", 1)[0]
            answer_mark = next((mark for mark, text in INSTRUCTIONS.items() if prompt.startswith(text)), "boxed")
            samples = []
            for _ in range(self.sampling.n):
                slip = rng.random() < self.sampling.temperature / 4
                pair = rephrase(problem, rng, slip)
                tag = QUESTION_TAG if self.chat else ""
                text = "" if pair is None else f"{tag} {pair[0]}\n{SOLUTION_TAG} {marked(pair[1], answer_mark)}"
                samples.append(Completion(text=text, num_tokens=len(text.split())))
            results.append(samples)
        return results
