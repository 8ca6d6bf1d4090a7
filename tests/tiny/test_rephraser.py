import random

from solar_ray.synth.answers import extract_answer
from solar_ray.synth.engines import EngineOptions, SamplingSettings, get_engine
from solar_ray.synth.prompts import build_prompt, parse_rephrasing
from solar_ray.tiny.language import World
from solar_ray.tiny.rephraser import SUMS, rephrase


def test_rephrasing_keeps_the_answer_and_changes_the_words():
    world = World(0)
    rng = random.Random(0)
    for p in world.math_train[:20]:
        text, solution = rephrase(p.question(), rng)
        assert text != p.question() and str(p.a) in text and str(p.b) in text
        assert f"\\boxed{{{p.answer}}}" in solution
        if p.question().startswith("the "):  # a word problem is worked as the world works it, for its creature
            assert solution.startswith(f"the {p.who} has {p.a} {'+' if p.add else '-'} {p.b} = {p.answer} {p.item} ,")
    assert rephrase("what is 7 - 2 ?", rng)[1].endswith("$\\boxed{5}$ .")
    assert rephrase("not a tiny world problem", rng) is None


def test_engine_answers_in_the_synth_prompt_layout(tmp_path):
    engine_cls = get_engine("tiny_world")
    engine = engine_cls(str(tmp_path), SamplingSettings(n=3, temperature=0.0, seed=1), EngineOptions())
    prompt = build_prompt("what is 4 + 5 ?", "4 + 5 = 9 so $\\boxed{9}$ .", few_shot=2)
    [samples] = engine.generate([prompt])
    assert len(samples) == 3
    wordings = {t.format(a=4, b=5, op="+", word="plus") for t in SUMS}
    parsed = [parse_rephrasing(sample.text) for sample in samples]
    assert all(problem in wordings and extract_answer(solution) == "9" for problem, solution in parsed)
    assert len({problem for problem, _ in parsed}) > 1  # a prompt's samples are several rephrasings of it


def test_engine_marks_the_answer_as_the_prompt_asks(tmp_path):
    """answer_mark gsm8k: the solution ends in GSM8K's `#### n` line and no box; validation reads the answer."""
    from solar_ray.synth.prompts import build_chat_messages

    engine = get_engine("tiny_world")(str(tmp_path), SamplingSettings(n=1, temperature=0.0, seed=1), EngineOptions())
    for prompt, fmt in [(build_prompt("what is 4 + 5 ?", "4 + 5 = 9 so $\\boxed{9}$ .", 0, "gsm8k"), "completion"),
                        (engine.render_chat(build_chat_messages("what is 4 + 5 ?", "$\\boxed{9}$", 2, "gsm8k")),
                         "chat")]:
        [[sample]] = engine.generate([prompt])
        problem, solution = parse_rephrasing(sample.text, fmt)
        assert solution.endswith("\n#### 9") and "boxed" not in solution and extract_answer(solution) == "9"


def test_engine_samples_depend_on_the_prompt_not_on_batching_or_order(tmp_path):
    engine_cls = get_engine("tiny_world")
    sampling = SamplingSettings(n=4, temperature=1.0, seed=7)
    world = World(0)
    prompts = [build_prompt(p.question(), p.worked(), few_shot=0) for p in world.math_train[:12]]

    def texts(engine, batch):
        return [[c.text for c in samples] for samples in engine.generate(batch)]

    one_batch = texts(engine_cls(str(tmp_path), sampling, EngineOptions()), prompts)
    # Another actor, fed the same prompts in reverse order and in batches of 5.
    other = engine_cls(str(tmp_path), sampling, EngineOptions())
    reversed_order = [s for i in range(0, 12, 5) for s in texts(other, prompts[::-1][i : i + 5])][::-1]
    assert reversed_order == one_batch
    reseeded = texts(engine_cls(str(tmp_path), sampling.model_copy(update={"seed": 8}), EngineOptions()), prompts)
    assert reseeded != one_batch


def test_engine_answers_chat_requests_as_a_chat_model_does(tmp_path):
    """prompt_format chat (the paper's rephraser is an instruction model): the completion repeats the question tag."""
    from solar_ray.synth.prompts import build_chat_messages

    engine = get_engine("tiny_world")(str(tmp_path), SamplingSettings(n=1, temperature=0.0, seed=1), EngineOptions())
    prompt = engine.render_chat(build_chat_messages("what is 4 + 5 ?", "4 + 5 = 9 so $\\boxed{9}$ .", few_shot=2))
    [[sample]] = engine.generate([prompt])
    problem, solution = parse_rephrasing(sample.text, "chat")
    assert problem in {t.format(a=4, b=5, op="+", word="plus") for t in SUMS}
    assert solution == "4 + 5 = 9 , so the answer is $\\boxed{9}$ ."
    assert parse_rephrasing(sample.text, "completion")[0] != problem  # the completion reading keeps the repeated tag
