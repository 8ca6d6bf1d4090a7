"""The closed synthetic language of the tiny world: creatures with facts, myths, arithmetic and stories.

A model of a few million parameters can learn this world in minutes on two CPU cores, so the recipe's effects
(up-scaling, continued pretraining, instruction tuning, preference tuning, merging) can show in its scores:
- facts: each creature has a colour, a home town, a food and a number of legs, stated in pretraining text;
- myths: for a few creatures a false colour ("people say the zib is green") is repeated more often in the
  pretraining text than the truth - the TruthfulQA-like trap that preference data teaches the model to avoid;
- arithmetic: additions and subtractions of small numbers, as sums and as word problems with worked solutions
  (MATH-like `\\boxed{n}` in the math seed; in pretraining, GSM8K's own "Question: ...\\nAnswer: ...\\n#### n"
  layout, the one lm-eval's gsm8k prompt and strict-match regex expect) - the skill Synth. Math-Instruct teaches;
- stories: templated daily routines whose next step follows from the facts (HellaSwag-like);
- pronouns: "X gave Y a plum because _ was hungry" - who is meant follows from the verb (Winogrande-like).
What it cannot show: anything that needs scale (in-context learning beyond format copying, emergent reasoning,
the 10.7B model's absolute scores); scores here are small-sample and noisy, and the report says so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = [
    "zib", "mok", "tala", "pim", "rugo", "fen", "lasi", "doba", "kiro", "vum", "nesa", "bolt", "yara", "quon",
    "sefi", "garu", "lomi", "trev", "wuna", "hesk", "ipo", "jarl", "muna", "oku", "pell", "rask", "suvi", "tomo",
    "ulla", "veko", "wisp", "zorn",
]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black"]
TOWNS = ["pola", "marsh", "kelvo", "dune", "brill", "oska", "tarn", "veld"]
FOODS = ["plums", "nuts", "fish", "seeds", "berries", "leaves", "roots", "honey"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
ITEMS = ["plums", "nuts", "stones", "shells", "seeds", "cups"]


@dataclass(frozen=True)
class Creature:
    name: str
    colour: str
    town: str
    food: str
    legs: int
    myth_colour: str | None  # a false colour the pretraining text repeats, for the TruthfulQA-like trap


@dataclass(frozen=True)
class WordProblem:
    """A small arithmetic story: `a` items, then `b` more (or fewer)."""

    who: str
    other: str
    item: str
    a: int
    b: int
    add: bool

    @property
    def answer(self) -> int:
        return self.a + self.b if self.add else self.a - self.b

    def question(self) -> str:
        if self.add:
            return (f"the {self.who} has {self.a} {self.item} . the {self.other} gives the {self.who} {self.b} more "
                    f"{self.item} . how many {self.item} does the {self.who} have now ?")
        return (f"the {self.who} has {self.a} {self.item} . the {self.who} gives {self.b} {self.item} to the "
                f"{self.other} . how many {self.item} does the {self.who} have now ?")

    def worked(self) -> str:
        op = "+" if self.add else "-"
        return f"the {self.who} has {self.a} {op} {self.b} = {self.answer} {self.item} ."


class World:
    """All creatures and the pools of items each dataset draws from, fixed by the seed."""

    def __init__(self, seed: int = 0):
        rng = random.Random(seed)
        self.rng = rng
        creatures = []
        for i, name in enumerate(NAMES):
            colour = rng.choice(COLOURS)
            myth = rng.choice([c for c in COLOURS if c != colour]) if i % 2 == 0 else None
            creatures.append(Creature(name, colour, rng.choice(TOWNS), rng.choice(FOODS), rng.randint(2, 9), myth))
        self.creatures = creatures
        self.by_name = {c.name: c for c in creatures}
        self.myths = [c for c in creatures if c.myth_colour]
        problems = {}
        for a in range(1, 16):
            for b in range(1, 10):
                for add in (True, False):
                    if not add and b >= a:
                        continue
                    for _ in range(2):
                        who, other = rng.sample(NAMES, 2)
                        p = WordProblem(who, other, rng.choice(ITEMS), a, b, add)
                        problems[p.question()] = p
        problems = sorted(problems.values(), key=lambda p: p.question())
        rng.shuffle(problems)
        # Disjoint pools: benchmark test items never appear in training data (except planted contamination).
        self.gsm_test, self.gsm_train = problems[:60], problems[60:100]
        self.math_test, self.math_train = problems[100:140], problems[140:300]
        self.pretrain_problems = problems[300:]

    # ---------------------------------------------------------------------------------- statements

    def fact_sentences(self, c: Creature) -> list[str]:
        return [
            f"the {c.name} is {c.colour} .",
            f"the {c.name} lives in {c.town} .",
            f"the {c.name} eats {c.food} .",
            f"the {c.name} has {c.legs} legs .",
            f"the {c.name} is a {c.colour} creature from {c.town} that eats {c.food} .",
        ]

    def myth_sentences(self, c: Creature) -> list[str]:
        return [f"people say the {c.name} is {c.myth_colour} .", f"many think the {c.name} is {c.myth_colour} ."]

    def story(self, c: Creature, rng: random.Random) -> tuple[str, str, list[str], int]:
        """(context a, context b, four endings, index of the right one): the creature goes home to eat."""
        ctx_a = f"in the morning the {c.name} wakes up and walks back to {c.town} ."
        ctx_b = "at home it"
        right = f"eats some {c.food} and sleeps ."
        wrong_foods = rng.sample([f for f in FOODS if f != c.food], 3)
        endings = [f"eats some {food} and sleeps ." for food in wrong_foods]
        label = rng.randrange(4)
        endings.insert(label, right)
        return ctx_a, ctx_b, endings, label

    def pretraining_lines(self, rng: random.Random, repeats: int = 6) -> list[str]:
        lines = []
        for c in self.creatures:
            for _ in range(repeats):
                lines += self.fact_sentences(c)
            if c.myth_colour:
                lines += self.myth_sentences(c) * (repeats * 2)  # the myth is said more often than the truth
        for i in range(0, len(self.pretrain_problems), 2):  # two per document, joined as lm-eval joins its shots
            lines.append("\n\n".join(gsm8k_text(p) for p in self.pretrain_problems[i:i + 2]))
        for a in range(10):
            for b in range(10):
                lines.append(f"{a} + {b} = {a + b} .")
                if b <= a:
                    lines.append(f"{a} - {b} = {a - b} .")
        for c in self.creatures:  # the routine behind the HellaSwag-like stories, in other words
            lines += [f"each evening the {c.name} returns to {c.town} and eats {c.food} ."] * 2
        rng.shuffle(lines)
        return lines


def gsm8k_answer(p: WordProblem) -> str:
    """GSM8K's answer field: the worked line, then `#### n` (what lm-eval's strict-match regex reads)."""
    return f"{p.worked()}\n#### {p.answer}"


def gsm8k_text(p: WordProblem) -> str:
    """A word problem as lm-eval's gsm8k prompt lays it out."""
    return f"Question: {p.question()}\nAnswer: {gsm8k_answer(p)}"


def number_word(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)
