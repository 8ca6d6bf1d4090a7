import random

from solar_ray.synth.answers import extract_answer
from solar_ray.synth.engines import EngineOptions, SamplingSettings, get_engine
from solar_ray.synth.prompts import build_prompt, parse_rephrasing
from solar_ray.tiny.language import World
from solar_ray.tiny.rephraser import rephrase


def test_rephrasing_keeps_the_answer_and_changes_the_words():
    world = World(0)
    rng = random.Random(0)
    for p in world.math_train[:20]:
        text, solution = rephrase(p.question(), rng)
        assert text != p.question() and str(p.a) in text and str(p.b) in text
        assert f"\\boxed{{{p.answer}}}" in solution
    assert rephrase("what is 7 - 2 ?", rng)[1].endswith("$\\boxed{5}$ .")
    assert rephrase("not a tiny world problem", rng) is None


def test_engine_answers_in_the_synth_prompt_layout(tmp_path):
    engine_cls = get_engine("tiny_world")
    engine = engine_cls(str(tmp_path), SamplingSettings(n=3, temperature=0.0, seed=1), EngineOptions())
    prompt = build_prompt("what is 4 + 5 ?", "4 + 5 = 9 so $\\boxed{9}$ .", few_shot=2)
    [samples] = engine.generate([prompt])
    assert len(samples) == 3
    problem, solution = parse_rephrasing(samples[0].text)
    assert problem == "compute 4 plus 5 ." and extract_answer(solution) == "9"


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
    assert parse_rephrasing(sample.text, "completion") != ("compute 4 plus 5 .", "we have 4 + 5 = 9 , so the answer is $\\boxed{9}$ .")
    assert parse_rephrasing(sample.text, "chat") == ("compute 4 plus 5 .", "we have 4 + 5 = 9 , so the answer is $\\boxed{9}$ .")
