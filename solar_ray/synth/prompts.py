"""Few-shot prompts for MetaMath-style rephrasing, written for this project, hashed for lineage.

MetaMath (Yu et al. 2023) augments MATH/GSM8K by asking a strong model to rephrase each question and to
answer it again, keeping only answers that still reach the known final answer. One prompt here does both
halves: given a problem and its reference solution, the model writes

    Rephrased problem: <the same problem in new words>
    Rephrased solution: <a worked solution that ends in \\boxed{answer}>

and `parse_rephrasing` splits the completion back into the two parts. `answer_mark` chooses how the solution
marks its final answer: `boxed` (MATH's `\\boxed{}`, the default) or `gsm8k` (GSM8K's last line `#### answer`,
for data meant to teach GSM8K's layout; the examples' answers are rewritten to it). The few-shot examples below
are the project's own (not copied from MetaMath or MATH). `prompts_hash()` covers the instruction, the examples
and the layout, so a changed prompt changes the artifact's lineage and its resume key.
"""

from __future__ import annotations

from dataclasses import dataclass

import xxhash

from solar_ray.synth.answers import extract_boxed

_REWRITE = ("Rewrite the math problem in different words without changing its meaning or its numbers, then write a "
            "clear step-by-step solution to the rewritten problem.")
INSTRUCTIONS = {
    "boxed": f"{_REWRITE} Put the final answer in \\boxed{{}}.",
    "gsm8k": f"{_REWRITE} End the solution with a last line '#### <final answer>'.",
}
INSTRUCTION = INSTRUCTIONS["boxed"]

QUESTION_TAG = "Rephrased problem:"
SOLUTION_TAG = "Rephrased solution:"
STOP = "\n\n###"  # ends an example; a model that continues past its solution starts the next example with it


@dataclass(frozen=True)
class Example:
    problem: str
    solution: str
    rephrased_problem: str
    rephrased_solution: str


FEW_SHOT: tuple[Example, ...] = (
    Example(
        problem="A bag holds 4 red marbles and 6 blue marbles. What fraction of the marbles are red?",
        solution="There are $4+6=10$ marbles, and 4 of them are red, so the fraction is $\\frac{4}{10}="
        "\\boxed{\\frac{2}{5}}$.",
        rephrased_problem="There are 6 blue marbles and 4 red marbles in a bag. Which fraction of all the "
        "marbles in the bag is red?",
        rephrased_solution="The bag holds $6+4=10$ marbles in total. Red ones make up 4 of the 10, which is "
        "$\\frac{4}{10}=\\boxed{\\frac{2}{5}}$.",
    ),
    Example(
        problem="Solve for $x$: $3x - 7 = 11$.",
        solution="Adding 7 to both sides gives $3x = 18$, so $x = \\boxed{6}$.",
        rephrased_problem="Find the value of $x$ that satisfies $3x - 7 = 11$.",
        rephrased_solution="Add 7 to each side of the equation: $3x = 18$. Dividing by 3 gives "
        "$x = \\boxed{6}$.",
    ),
    Example(
        problem="What is the sum of the interior angles of a pentagon, in degrees?",
        solution="A polygon with $n$ sides has interior angles summing to $180(n-2)$ degrees. For $n=5$ this "
        "is $180 \\cdot 3 = \\boxed{540}$.",
        rephrased_problem="How many degrees do the interior angles of a five-sided polygon add up to?",
        rephrased_solution="The interior angles of an $n$-sided polygon add up to $180(n-2)$ degrees. With "
        "five sides that is $180 \\cdot 3 = \\boxed{540}$ degrees.",
    ),
)


def marked(solution: str, answer_mark: str) -> str:
    """A `\\boxed{}` solution with its final answer marked as `answer_mark` asks: as it is for `boxed`; for `gsm8k`
    the box is opened and the answer repeated on a last line `#### answer`."""
    if answer_mark == "boxed":
        return solution
    answer = extract_boxed(solution)
    if answer is None:
        raise ValueError(f"no \\boxed{{}} answer to mark in {solution!r}")
    box = "\\boxed{" + answer + "}"
    return f"{solution.replace(box, answer)}\n#### {answer}"


def _block(problem: str, solution: str) -> str:
    return f"### Problem:\n{problem}\n\n### Solution:\n{solution}\n\n"


def _answer_block(rephrased_problem: str, rephrased_solution: str) -> str:
    return f"{QUESTION_TAG} {rephrased_problem}\n{SOLUTION_TAG} {rephrased_solution}"


def build_prompt(problem: str, solution: str, few_shot: int = 2, answer_mark: str = "boxed") -> str:
    """The completion prompt for one seed row: instruction, `few_shot` worked examples, then the seed.

    The model's completion starts right after `Rephrased problem:`; `parse_rephrasing` reads it.
    """
    parts = [INSTRUCTIONS[answer_mark], "\n\n"]
    for example in FEW_SHOT[:few_shot]:
        parts.append(_block(example.problem, example.solution))
        parts.append(_answer_block(example.rephrased_problem, marked(example.rephrased_solution, answer_mark))
                     + "\n\n")
    parts.append(_block(problem, solution))
    parts.append(QUESTION_TAG)
    return "".join(parts)


def build_chat_messages(problem: str, solution: str, few_shot: int = 2,
                        answer_mark: str = "boxed") -> list[dict[str, str]]:
    """The same request as chat turns (for instruction-tuned models rendered with their chat template)."""
    messages = [{"role": "system", "content": INSTRUCTIONS[answer_mark]}]
    for example in FEW_SHOT[:few_shot]:
        messages.append({"role": "user", "content": _block(example.problem, example.solution).strip()})
        messages.append({"role": "assistant", "content": _answer_block(
            example.rephrased_problem, marked(example.rephrased_solution, answer_mark))})
    messages.append({"role": "user", "content": _block(problem, solution).strip()})
    return messages


def parse_rephrasing(completion: str, prompt_format: str = "completion") -> tuple[str, str] | None:
    """(rephrased problem, rephrased solution) from a completion, or None when the layout is not there.

    Completion prompts end in `Rephrased problem:`, so the completion starts with the problem itself; chat
    completions repeat the tag. Anything after the solution (a model running on into a new example) is cut.
    """
    text = completion.split(STOP, 1)[0]
    if prompt_format == "chat":
        at = text.find(QUESTION_TAG)
        if at < 0:
            return None
        text = text[at + len(QUESTION_TAG) :]
    problem, sep, solution = text.partition(SOLUTION_TAG)
    problem, solution = problem.strip(), solution.strip()
    if not sep or not problem or not solution:
        return None
    return problem, solution


def prompts_hash(few_shot: int = 2, answer_mark: str = "boxed") -> str:
    """xxh3-64 of everything that shapes the prompt: instruction, tags, layout and the examples used."""
    digest = xxhash.xxh3_64()
    digest.update(build_prompt("{problem}", "{solution}", few_shot, answer_mark).encode())
    digest.update(repr(build_chat_messages("{problem}", "{solution}", few_shot, answer_mark)).encode())
    return digest.hexdigest()
