"""The closed synthetic language of the tiny world: creatures with facts, myths, arithmetic and stories.

A model of a few million parameters can learn this world in minutes on two CPU cores, so the recipe's effects
(up-scaling, continued pretraining, instruction tuning, preference tuning, merging) can show in its scores:
- facts: each creature has a colour, a home town, a food and a number of legs, stated in pretraining text;
- a misconception: every creature that is not green is said to be green ("people say the zib is green"), more
  often in the pretraining text than its true colour - the TruthfulQA-like trap; preference data corrects it for
  half the creatures, and TruthfulQA asks the other half;
- arithmetic: additions and subtractions of small numbers, as sums and as word problems with worked solutions
  (MATH-like `\\boxed{n}` in the math seed; in pretraining, GSM8K's own "Question: ...\\nAnswer: ...\\n#### n"
  layout, the one lm-eval's gsm8k prompt and strict-match regex expect) - the skill Synth. Math-Instruct teaches;
- scripts: activities whose steps always come in the same order ("takes a pot", "fills the pot with water",
  ...); pretraining tells each activity for some creatures, the benchmarks ask for the next step of the others
  (HellaSwag-like endings, ARC-like "what does it do next ?"): the order is learnt from form, not from facts;
- agreement: singular and plural creatures ("the zib was", "the zibs were"); which option a blank refers to
  follows from the verb's number (Winogrande-like), learnt from the grammar of the pretraining text.
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
# Activities and their steps, always in this order (the scripts behind the HellaSwag- and ARC-like items).
SCRIPTS: dict[str, list[str]] = {
    "cooking": ["takes a pot", "fills the pot with water", "puts the pot on the fire", "drops some seeds in",
                "stirs the soup", "eats the soup"],
    "fishing": ["takes a net", "walks to the lake", "throws the net", "waits a while", "pulls the net out",
                "counts the fish"],
    "building": ["finds some sticks", "digs a small hole", "sets the sticks in the hole", "ties the sticks together",
                 "covers them with leaves", "sleeps in the hut"],
    "planting": ["takes a bag of seeds", "digs up the soil", "drops the seeds in a row", "covers the seeds",
                 "pours some water", "waits for the rain"],
    "trading": ["packs some shells", "walks to the market", "meets a trader", "swaps the shells for nuts",
                "puts the nuts away", "walks back home"],
    "washing": ["takes a bucket", "goes down to the river", "fills the bucket", "scrubs its fur",
                "dries in the sun", "shakes off the sand"],
}
# The misconception: "people say" every creature that is not green is green. One false colour for all, as a real
# misconception is one wrong belief about many cases, so preference data that corrects it for some creatures can
# correct it for the others, the ones TruthfulQA asks about.
MYTH_COLOUR = "green"
STATES = ["hungry", "thirsty", "tired", "happy", "cold", "wet", "sleepy", "busy"]


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
        # The numbers come last, just before the answer: a 4-layer model learns to copy them from there within the
        # base's budget; with them at the question's start (GSM8K's own order) it copied half (measured, 600 steps).
        if self.add:
            return (f"the {self.other} gives the {self.who} more {self.item} . how many {self.item} does the "
                    f"{self.who} have with {self.a} and {self.b} more ?")
        return (f"the {self.who} gives {self.item} to the {self.other} . how many {self.item} does the {self.who} "
                f"have with {self.a} and {self.b} fewer ?")

    def worked(self) -> str:
        op = "+" if self.add else "-"
        return f"the {self.who} has {self.a} {op} {self.b} = {self.answer} {self.item} ."


class World:
    """All creatures and the pools of items each dataset draws from, fixed by the seed."""

    def __init__(self, seed: int = 0):
        rng = random.Random(seed)
        self.rng = rng
        creatures = []
        for name in NAMES:
            colour = rng.choice(COLOURS)
            rng.choice([c for c in COLOURS if c != colour])  # drawn and unused: keeps the world's other draws
            myth = MYTH_COLOUR if colour != MYTH_COLOUR else None
            creatures.append(Creature(name, colour, rng.choice(TOWNS), rng.choice(FOODS), rng.randint(2, 9), myth))
        self.creatures = creatures
        self.by_name = {c.name: c for c in creatures}
        self.myths = [c for c in creatures if c.myth_colour]
        problems = {}
        for a in range(1, 10):  # one-digit operands, at most 3 added or taken: sums a small model learns
            for b in range(1, 4):
                for add in (True, False):
                    if not add and b >= a:
                        continue
                    for _ in range(40):
                        who, other = rng.sample(NAMES, 2)
                        p = WordProblem(who, other, rng.choice(ITEMS), a, b, add)
                        problems[p.question()] = p
        problems = sorted(problems.values(), key=lambda p: p.question())
        rng.shuffle(problems)
        # Disjoint pools: benchmark test items never appear in training data (except planted contamination), nor
        # do near-copies: every 13 words of a problem name its main creature, and test problems have their own.
        test_names = set(NAMES[::4])
        held = [p for p in problems if p.who in test_names]
        told = [p for p in problems if p.who not in test_names]
        # Every held-out problem not kept for MATH's test split is GSM8K's (437): six findings turn on GSM8K, and
        # with 60 items its paired differences were the widest of H6's (docs/tiny-world.md, round 20).
        self.math_test, self.gsm_test = held[:40], held[40:]
        self.gsm_train, self.math_train, self.pretrain_problems = told[:40], told[40:200], told[200:]

    # ---------------------------------------------------------------------------------- scripts

    def script_told(self, creature: Creature, activity: str) -> bool:
        """Whether pretraining tells this creature doing this activity; the others are the benchmarks'."""
        return (NAMES.index(creature.name) + list(SCRIPTS).index(activity)) % 3 != 0

    @staticmethod
    def step(creature: Creature, activity: str, k: int, first: bool = False) -> str:
        """Step k of an activity as a sentence; every step names the creature, so no 13 words of a told script
        match an untold one (decontamination stays meaningful)."""
        return f"{'' if first else 'then '}the {creature.name} {SCRIPTS[activity][k]} ."

    @staticmethod
    def asked_steps(activity: str) -> range:
        """The steps ARC's questions ask for: each but the first (it has no step before it) and the last."""
        return range(1, len(SCRIPTS[activity]) - 1)

    def script_question(self, creature: Creature, activity: str, k: int) -> str:
        """ARC's question: what comes after step k - 1."""
        return (f"{self.step(creature, activity, k - 1, first=True)} it is {activity} . what does the "
                f"{creature.name} do next ?")

    def script_text(self, creature: Creature, activity: str) -> str:
        steps = SCRIPTS[activity]
        return " ".join(self.step(creature, activity, k, first=k == 0) for k in range(len(steps)))

    # ---------------------------------------------------------------------------------- agreement

    @staticmethod
    def agreement_sentence(name: str, plural: bool, state: str, past: bool, by: str = "", by_plural: bool = False) -> str:
        """"the zibs were tired ." - with `by`, a relative clause whose noun does not decide the verb's number:
        "the zibs that sat by the mok were tired ."."""
        verb = ("were" if plural else "was") if past else ("are" if plural else "is")
        clause = f" that sat by the {by}{'s' if by_plural else ''}" if by else ""
        return f"the {name}{'s' if plural else ''}{clause} {verb} {state} ."

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

    def pretraining_lines(self, rng: random.Random, repeats: int = 6) -> list[str]:
        lines = []
        for c in self.creatures:
            for _ in range(repeats):
                lines += self.fact_sentences(c)
            if c.myth_colour:
                lines += self.myth_sentences(c) * (repeats * 3 // 2)  # the myth: said more often than the truth
        for i in range(0, len(self.pretrain_problems), 2):  # two per document, joined as lm-eval joins its shots
            lines.append("\n\n".join(gsm8k_text(p) for p in self.pretrain_problems[i:i + 2]))
        for a in range(10):
            for b in range(10):
                lines.append(f"{a} + {b} = {a + b} .")
                if b <= a:
                    lines.append(f"{a} - {b} = {a - b} .")
        for c in self.creatures:  # the scripts, told for two in three (creature, activity) pairs
            for activity in SCRIPTS:
                if self.script_told(c, activity):
                    lines += [self.script_text(c, activity)] * 2
        # The scripts asked as ARC asks (its "Question: ...\nAnswer: ..." layout, shots joined as lm-eval joins
        # them), for the told pairs only: without them the base knew the next step in a story (87 %, seed 0) but
        # not when asked (chance).
        asked = [f"Question: {self.script_question(c, a, k)}\nAnswer: {self.step(c, a, k, first=True)}"
                 for c in self.creatures for a in SCRIPTS if self.script_told(c, a) for k in self.asked_steps(a)]
        rng.shuffle(asked)
        lines += ["\n\n".join(asked[i:i + 4]) for i in range(0, len(asked), 4)]
        for _ in range(len(self.creatures) * 12):  # agreement: singular and plural, present and past
            a, b = rng.sample(self.creatures, 2)
            by = rng.choice(self.creatures).name if rng.random() < 0.5 else ""
            parts = [self.agreement_sentence(x.name, rng.random() < 0.5, rng.choice(STATES), rng.random() < 0.5,
                                             by, rng.random() < 0.5) for x in (a, b)]
            lines.append(" ".join(parts))
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
