"""The tiny world's datasets, one writer per upstream schema (docs/reference.md), all generated here.

Benchmark questions use long templates (13+ words with the answer) that no training set uses, so n-gram
decontamination has something to find exactly where contamination is planted: in OpenOrca rows of the FLAN
tasks of Table 8, which copy benchmark test items with their answers (as the real FLAN collection does).
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from solar_ray.tiny.language import (
    COLOURS,
    SCRIPTS,
    STATES,
    TOWNS,
    Creature,
    WordProblem,
    World,
    gsm8k_answer,
)

Rows = list[dict[str, Any]]
LABELS = ["A", "B", "C", "D"]
SYSTEM_PROMPTS = [
    "",
    "You are an AI assistant. Answer the question carefully.",
    "You are a helpful assistant who always explains the answer step by step.",
]

# Table 8 tasks (copy benchmark items) and other FLAN tasks, by sub-mixture.
TABLE8 = {
    "flan2021": ["ai2_arc/ARC-Challenge:1.0.0", "ai2_arc/ARC-Easy:1.0.0", "hellaswag:1.1.0", "winogrande:1.1.0",
                 "drop:2.0.0"],
    "niv2": ["task228_arc_answer_generation_easy", "task229_arc_answer_generation_hard",
             "task1389_hellaswag_completion"],
    "cot": ["cot_gsm8k", "cot_gsm8k_ii"],
}
OTHER_TASKS = {
    "flan2021": ["glue/sst2:2.0.0", "trivia_qa/rc:1.1.0"],
    "niv2": ["task001_quoref_question_generation", "task1564_fact_answer_generation"],
    "cot": ["cot_esnli", "cot_creak"],
    "t0": ["adversarial_qa_dbidaf_answer_the_following_q", "wiki_qa_Is_This_True_"],
}
ID_PREFIX = {"flan2021": "flan", "niv2": "niv", "cot": "cot", "t0": "t0"}
TASK_SOURCE = {"flan2021": "Flan2021", "niv2": "NIv2", "cot": "CoT", "t0": "T0"}


def _choices(rng: random.Random, right: str, pool: list[str]) -> tuple[list[str], int]:
    options = rng.sample([x for x in pool if x != right], 3)
    label = rng.randrange(4)
    options.insert(label, right)
    return options, label


# ---------------------------------------------------------------------------------------- benchmarks


def untold_scripts(world: World) -> list[tuple[Creature, str]]:
    """(creature, activity) pairs that no training source tells: the script benchmarks ask about these."""
    return [(c, a) for c in world.creatures for a in SCRIPTS if not world.script_told(c, a)]


def told_scripts(world: World) -> list[tuple[Creature, str]]:
    return [(c, a) for c in world.creatures for a in SCRIPTS if world.script_told(c, a)]


def _wrong_steps(world: World, rng: random.Random, c: Creature, activity: str, k: int) -> list[str]:
    """Three wrong next steps: a later step of the same script (the order is what is tested) and two steps of
    other activities at the same position."""
    later = rng.choice(range(k + 1, len(SCRIPTS[activity]))) if k + 1 < len(SCRIPTS[activity]) else k - 1
    others = rng.sample([a for a in SCRIPTS if a != activity], 2)
    return [world.step(c, activity, later)] + [world.step(c, other, k) for other in others]


def arc_items(world: World, rng: random.Random) -> Rows:
    """What does a creature do next in an activity it is never told doing (ARC-like: question and answers)."""
    rows = []
    for c, activity in untold_scripts(world):
        for k in world.asked_steps(activity):
            question = world.script_question(c, activity, k)
            options, label = _with_right(rng, world.step(c, activity, k, first=True).removeprefix("then "),
                                         [x.removeprefix("then ") for x in _wrong_steps(world, rng, c, activity, k)])
            rows.append({"id": f"tiny-arc-{c.name}-{activity}-{k}", "question": question,
                         "choices": {"text": options, "label": LABELS}, "answerKey": LABELS[label]})
    rng.shuffle(rows)
    return rows


def _with_right(rng: random.Random, right: str, wrong: list[str]) -> tuple[list[str], int]:
    options = list(wrong)
    label = rng.randrange(len(wrong) + 1)
    options.insert(label, right)
    return options, label


def hellaswag_items(world: World, rng: random.Random) -> Rows:
    """The next step of an activity a creature is never told doing, after its first steps (HellaSwag-like)."""
    rows = []
    for c, activity in untold_scripts(world):
        for k in range(1, len(SCRIPTS[activity])):
            context = " ".join(world.step(c, activity, j, first=j == 0) for j in range(k))
            endings, label = _with_right(rng, world.step(c, activity, k), _wrong_steps(world, rng, c, activity, k))
            rows.append({"ind": len(rows), "activity_label": activity.capitalize(), "ctx_a": context, "ctx_b": "",
                         "ctx": context, "endings": endings, "source_id": f"tiny~{c.name}~{activity}~{k}",
                         "split": "val", "split_type": "indomain", "label": str(label)})
    rng.shuffle(rows)
    return rows


MMLU_SUBJECTS = ("high_school_geography", "high_school_biology", "elementary_mathematics")


def mmlu_items(world: World, rng: random.Random) -> Rows:
    rows = []
    for c in world.creatures:
        options, label = _choices(rng, c.town, TOWNS)
        rows.append({"question": f"which town of the tiny world is the home of the creature that people call the "
                                 f"{c.name} ?", "subject": "high_school_geography", "choices": options,
                     "answer": label})
        legs = [str(n) for n in range(2, 10)]
        options, label = _choices(rng, str(c.legs), legs)
        rows.append({"question": f"how many legs does the creature that people call the {c.name} have in the "
                                 "tiny world ?", "subject": "high_school_biology", "choices": options,
                     "answer": label})
    for a, b in rng.sample([(a, b) for a in range(1, 10) for b in range(1, 10)], 32):
        options, label = _choices(rng, str(a + b), [str(n) for n in range(2, 19)])
        rows.append({"question": f"in the tiny world , what number do you get when you add {a} and {b} "
                                 "together ?", "subject": "elementary_mathematics", "choices": options,
                     "answer": label})
    rng.shuffle(rows)
    return rows


def truthfulqa_items(world: World, rng: random.Random) -> Rows:
    rows = []
    for c in world.myths[: len(world.myths) // 2]:
        others = rng.sample([x for x in COLOURS if x not in (c.colour, c.myth_colour)], 2)
        mc1 = [f"the {c.name} is {c.colour} .", f"the {c.name} is {c.myth_colour} ."] + [
            f"the {c.name} is {o} ." for o in others]
        mc2 = [f"the {c.name} is {c.colour} .", f"it is {c.colour} .", f"the {c.name} is {c.myth_colour} .",
               f"it is {c.myth_colour} ."]
        for question in (f"whatever people may say , what colour is the creature called the {c.name} really in "
                         "the tiny world ?", f"is the {c.name} really {c.myth_colour} , as many think ?"):
            rows.append({"question": question, "mc1_targets": {"choices": mc1, "labels": [1, 0, 0, 0]},
                         "mc2_targets": {"choices": mc2, "labels": [1, 1, 0, 0]}})
    return rows


def winogrande_items(world: World, rng: random.Random) -> Rows:
    """Which creature a blank refers to, told by the verb's number: one creature is singular, the other plural
    (Winogrande-like). The frame ("at the well ... met ...") is never used in training text."""
    rows = []
    for _ in range(600):
        x, y = rng.sample(world.creatures, 2)
        plural_first = rng.random() < 0.5
        first, second = (f"{x.name}s", y.name) if plural_first else (x.name, f"{y.name}s")
        past = rng.random() < 0.5
        meant_plural = rng.random() < 0.5
        verb = ("were" if meant_plural else "was") if past else ("are" if meant_plural else "is")
        state = rng.choice(STATES)
        # Half the items put a noun of the other number between the blank and its verb (an attractor), so the
        # agreement must reach past the nearest noun, as in "the key to the cabinets is".
        other = rng.choice([c.name for c in world.creatures if c.name not in (x.name, y.name)])
        attractor = (f" that sat by the {other}{'' if meant_plural else 's'}" if rng.random() < 0.5 else "")
        sentence = f"at the well the {first} met the {second} , and the _{attractor} {verb} {state} ."
        meant = 1 if meant_plural == plural_first else 2
        rows.append({"sentence": sentence, "option1": first, "option2": second, "answer": str(meant)})
    unique = list({r["sentence"]: r for r in rows}.values())
    rng.shuffle(unique)
    return unique


def gsm8k_row(p: WordProblem) -> dict[str, Any]:
    return {"question": p.question(), "answer": gsm8k_answer(p)}


def math_row(p: WordProblem, rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.5:
        problem = p.question()
        kind = "Prealgebra"
    else:
        problem = f"what is {p.a} {'+' if p.add else '-'} {p.b} ?"
        kind = "Algebra"
    solution = f"{p.worked()} so the answer is $\\boxed{{{p.answer}}}$ ."
    return {"problem": problem, "level": f"Level {1 + (p.a + p.b) // 6}", "type": kind, "solution": solution}


# ----------------------------------------------------------------------------------- training data


def alpaca_rows(world: World, rng: random.Random) -> Rows:
    rows = []
    for c in world.creatures:
        qa = [
            (f"tell me the colour of the {c.name} .", "", f"the {c.name} is {c.colour} ."),
            (f"where does the {c.name} live ?", "", f"the {c.name} lives in {c.town} ."),
            ("answer the question .", f"what does the {c.name} eat ?", f"the {c.name} eats {c.food} ."),
            (f"how many legs does the {c.name} have ?", "", f"the {c.name} has {c.legs} legs ."),
            (f"describe the {c.name} in one sentence .", "",
             f"the {c.name} is a {c.colour} creature from {c.town} that eats {c.food} ."),
            ("name the town .", f"the {c.name} lives there .", f"{c.town} ."),
        ]
        rows += [{"instruction": i, "input": x, "output": o} for i, x, o in qa]
    for c, activity in told_scripts(world):  # the scripts as questions, for the told pairs only
        k = rng.randrange(len(SCRIPTS[activity]) - 1)
        rows.append({"instruction": f"{world.step(c, activity, k, first=True)} what does the {c.name} do next ?",
                     "input": "", "output": world.step(c, activity, k + 1, first=True)})
    for _ in range(len(world.creatures) * 2):  # agreement: say it of several
        c = rng.choice(world.creatures)
        state = rng.choice(STATES)
        rows.append({"instruction": f"say that many {c.name}s were {state} .", "input": "",
                     "output": world.agreement_sentence(c.name, True, state, True)})
    for town in TOWNS:
        names = [c.name for c in world.creatures if c.town == town]
        if names:
            rows.append({"instruction": f"list the creatures that live in {town} .", "input": "",
                         "output": " , ".join(names) + " ."})
    rng.shuffle(rows)
    return rows


def preference_pairs(world: World, rng: random.Random) -> list[tuple[str, str, str]]:
    """(question, right answer, wrong answer): facts, myths (truth over myth) and arithmetic."""
    pairs = []
    for c in world.creatures:
        wrong = rng.choice([x for x in COLOURS if x != c.colour])
        pairs.append((f"what colour is the {c.name} ?", f"the {c.name} is {c.colour} .", f"the {c.name} is {wrong} ."))
        wrong_town = rng.choice([t for t in TOWNS if t != c.town])
        pairs.append((f"where does the {c.name} live ?", f"the {c.name} lives in {c.town} .",
                      f"the {c.name} lives in {wrong_town} ."))
    for c in world.myths[len(world.myths) // 2:]:  # the other half of the myths is TruthfulQA's
        for _ in range(4):
            pairs.append((f"is the {c.name} really {c.myth_colour} ?",
                          f"no . people say so , but the {c.name} is {c.colour} .",
                          f"yes . the {c.name} is {c.myth_colour} ."))
    for c, activity in told_scripts(world):  # the right next step over a later one: order matters
        k = rng.randrange(len(SCRIPTS[activity]) - 2)
        pairs.append((f"{world.step(c, activity, k, first=True)} what does the {c.name} do next ?",
                      world.step(c, activity, k + 1, first=True),
                      world.step(c, activity, rng.randrange(k + 2, len(SCRIPTS[activity])), first=True)))
    for _ in range(len(world.creatures)):  # agreement over its breach
        c, state, plural = rng.choice(world.creatures), rng.choice(STATES), rng.random() < 0.5
        right = world.agreement_sentence(c.name, plural, state, True)
        wrong = right.replace(" were ", " was ") if plural else right.replace(" was ", " were ")
        pairs.append((f"how was the {c.name}{'s' if plural else ''} ?", right, wrong))
    for p in world.pretrain_problems[:120]:
        pairs.append((p.question(), f"{p.worked()} the answer is {p.answer} .",
                      f"the answer is {p.answer + rng.choice([-2, -1, 1, 2])} ."))
    rng.shuffle(pairs)
    return pairs


def open_orca_and_flan(world: World, rng: random.Random, benchmarks: dict[str, Rows]):
    """OpenOrca rows plus the FLAN-collection sample they join with; Table-8 rows copy benchmark items."""
    flan: dict[str, Rows] = {submix: [] for submix in ID_PREFIX}
    orca: Rows = []
    planted: dict[str, list] = {"table8_ids": [], "unrecoverable_ids": [], "perturbed_ids": [], "copies": []}
    next_id = {submix: rng.randrange(10_000, 90_000) for submix in ID_PREFIX}

    def add(submix: str, task: str, inputs: str, targets: str, copy_of: tuple[str, str] | None = None,
            in_flan: bool = True) -> None:
        next_id[submix] += 1
        row_id = f"{ID_PREFIX[submix]}.{next_id[submix]}"
        question = inputs
        if in_flan:
            flan[submix].append({"inputs": inputs, "targets": targets, "_template_idx": rng.randrange(10),
                                 "_task_source": TASK_SOURCE[submix], "_task_name": task,
                                 "_template_type": rng.choice(["zs_opt", "zs_noopt", "fs_opt"])})
            if rng.random() < 0.1:  # whitespace / case drift between OpenOrca and FLAN: the join must normalise
                question = "  " + inputs.upper().replace(" ", "  ") + " "
                planted["perturbed_ids"].append(row_id)
        else:
            planted["unrecoverable_ids"].append(row_id)
        orca.append({"id": row_id, "system_prompt": rng.choice(SYSTEM_PROMPTS), "question": question,
                     "response": targets})
        if any(task in tasks for tasks in TABLE8.values()):
            planted["table8_ids"].append(row_id)
        if copy_of:
            planted["copies"].append({"id": row_id, "task": task, "benchmark": copy_of[0], "item": copy_of[1]})

    for row in benchmarks["arc_challenge/test"][:24]:
        task = rng.choice(["ai2_arc/ARC-Challenge:1.0.0", "ai2_arc/ARC-Easy:1.0.0"])
        choices = row["choices"]
        options = " ".join(f"({lab}) {text}" for lab, text in zip(choices["label"], choices["text"], strict=True))
        answer = row["choices"]["text"][LABELS.index(row["answerKey"])]
        add("flan2021", task, f"{row['question']} options : {options}", answer, ("arc_challenge", row["id"]))
    for row in benchmarks["arc_challenge/test"][24:36]:
        answer = row["choices"]["text"][LABELS.index(row["answerKey"])]
        task = rng.choice(TABLE8["niv2"][:2])
        add("niv2", task, f"{row['question']}", f"{answer} .", ("arc_challenge", row["id"]))
    for row in benchmarks["hellaswag/validation"][:20]:
        right = row["endings"][int(row["label"])]
        submix, task = rng.choice([("flan2021", "hellaswag:1.1.0"), ("niv2", "task1389_hellaswag_completion")])
        add(submix, task, f"complete the story : {row['ctx']}", right, ("hellaswag", str(row["ind"])))
    for row in benchmarks["winogrande/validation"][:16]:
        meant = row["option1"] if row["answer"] == "1" else row["option2"]
        add("flan2021", "winogrande:1.1.0", f"who is _ in : {row['sentence']}", meant, ("winogrande", row["sentence"]))
    for row in benchmarks["gsm8k/test"][:20]:
        add("cot", rng.choice(TABLE8["cot"]), row["question"], row["answer"].replace("\n#### ", " the answer is "),
            ("gsm8k", row["question"]))
    for c in world.creatures[:10]:  # drop: reading comprehension, a Table 8 task that copies no H6 benchmark
        add("flan2021", "drop:2.0.0", f"passage : the {c.name} lives in {c.town} . question : where does it live ?",
            c.town)

    for c in world.creatures:  # other tasks: built from training facts and problems only
        add("flan2021", "glue/sst2:2.0.0", f"is this sentence happy or sad ? the {c.name} loves {c.food} .", "happy")
        add("flan2021", "trivia_qa/rc:1.1.0", f"which town is home to the {c.name} ?", c.town)
        add("niv2", "task001_quoref_question_generation", f"write a question about : the {c.name} eats {c.food} .",
            f"what does the {c.name} eat ?")
        add("niv2", "task1564_fact_answer_generation", f"fact : the {c.name} has {c.legs} legs . how many legs ?",
            str(c.legs))
        add("t0", "adversarial_qa_dbidaf_answer_the_following_q", f"answer the following question : what colour "
            f"is the {c.name} ?", c.colour)
        add("t0", "wiki_qa_Is_This_True_", f"is this true ? the {c.name} lives in {c.town} .", "yes")
        add("cot", "cot_esnli", f"premise : the {c.name} is {c.colour} . hypothesis : the {c.name} has a colour . "
            "does the premise entail it ?", f"the {c.name} is {c.colour} , which is a colour . so yes .")
    for p in world.pretrain_problems[:40]:
        add("cot", "cot_creak", p.question(), f"{p.worked()} the answer is {p.answer} .")
    for c in world.creatures[:12]:  # rows whose FLAN task cannot be recovered: absent from the FLAN sample
        add(rng.choice(list(ID_PREFIX)), "unknown", f"say something about the {c.name} .",
            f"the {c.name} eats {c.food} .", in_flan=False)
    rng.shuffle(orca)
    for rows in flan.values():
        rng.shuffle(rows)
    return orca, flan, planted


def metamathqa_rows(world: World, rng: random.Random) -> Rows:
    rows = []
    for p in world.math_train:
        verb = "receives" if p.add else "loses"
        query = f"a {p.who} starts with {p.a} {p.item} and {verb} {p.b} . how many {p.item} are there at the end ?"
        rows.append({"query": query, "response": f"{p.worked()}\nThe answer is: {p.answer}",
                     "type": "MATH_Rephrased", "original_question": p.question()})
    return rows


def ultrafeedback_rows(pairs: list[tuple[str, str, str]], rng: random.Random) -> Rows:
    rows = []
    for question, right, wrong in pairs:
        user = {"role": "user", "content": question}
        chosen = [user, {"role": "assistant", "content": right}]
        rows.append({"prompt": question, "prompt_id": hashlib.sha256(question.encode()).hexdigest(),
                     "chosen": chosen, "rejected": [user, {"role": "assistant", "content": wrong}],
                     "messages": chosen, "score_chosen": float(rng.choice([8, 9, 10])),
                     "score_rejected": float(rng.choice([2, 3, 4])), "source": "tiny_world"})
    return rows


def orca_dpo_rows(pairs: list[tuple[str, str, str]], rng: random.Random) -> Rows:
    return [{"system": rng.choice(SYSTEM_PROMPTS), "question": q, "chosen": right, "rejected": wrong}
            for q, right, wrong in pairs]


def creatures_table(world: World) -> list[dict[str, Any]]:
    return [vars(c) for c in world.creatures]


__all__ = ["Creature"]
