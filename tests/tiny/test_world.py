import json
import re
from pathlib import Path

import pytest

from solar_ray.evaluate.suites import H6, TASKS
from solar_ray.tiny.build import generate_datasets

SCHEMAS = {
    "pretrain": {"text"},
    "alpaca_gpt4": {"instruction", "input", "output"},
    "open_orca": {"id", "system_prompt", "question", "response"},
    "flan_collection": {"inputs", "targets", "_template_idx", "_task_source", "_task_name", "_template_type"},
    "math": {"problem", "level", "type", "solution"},
    "metamathqa": {"query", "response", "type", "original_question"},
    "orca_dpo_pairs": {"system", "question", "chosen", "rejected"},
    "ultrafeedback_binarized": {"prompt", "prompt_id", "chosen", "rejected", "messages", "score_chosen",
                                "score_rejected", "source"},
    "benchmarks/arc_challenge": {"id", "question", "choices", "answerKey"},
    "benchmarks/hellaswag": {"ind", "activity_label", "ctx_a", "ctx_b", "ctx", "endings", "source_id", "split",
                             "split_type", "label"},
    "benchmarks/mmlu": {"question", "subject", "choices", "answer"},
    "benchmarks/truthfulqa_mc": {"question", "mc1_targets", "mc2_targets"},
    "benchmarks/winogrande": {"sentence", "option1", "option2", "answer"},
    "benchmarks/gsm8k": {"question", "answer"},
}
STRICT_MATCH = re.compile(r"#### (\-?[0-9\.\,]+)")  # lm-eval gsm8k.yaml, filter "strict-match"
EVAL_SPLITS = {f"{TASKS[key].folder}/{TASKS[key].eval_split}" for key in H6}


def read(world, key):
    return [json.loads(line) for line in (world / "data" / f"{key}.jsonl").read_text().splitlines()]


def schema_of(key):
    return next(fields for prefix, fields in SCHEMAS.items() if key.startswith(prefix + "/"))


def test_every_file_has_its_upstream_schema(tiny_world):
    manifest = json.loads((tiny_world / "data" / "manifest.json").read_text())
    for key, count in manifest["rows"].items():
        rows = read(tiny_world, key)
        assert len(rows) == count > 0, key
        assert all(set(row) == schema_of(key) for row in rows), key
    for row in read(tiny_world, "benchmarks/arc_challenge/test"):
        assert row["answerKey"] in row["choices"]["label"] and len(row["choices"]["text"]) == 4
    assert all(r["answer"].rsplit("#### ", 1)[1].isdigit() for r in read(tiny_world, "benchmarks/gsm8k/test"))
    assert all("\\boxed{" in r["solution"] for r in read(tiny_world, "math/train"))
    assert all(r["score_chosen"] > r["score_rejected"] for r in read(tiny_world, "ultrafeedback_binarized/train_prefs"))
    assert {r["subject"] for r in read(tiny_world, "benchmarks/mmlu/test")} == set(manifest["mmlu_subjects"])
    assert len(read(tiny_world, "benchmarks/arc_challenge/train")) >= 25  # 25-shot few-shot pool


def test_same_seed_same_world_other_seed_other_world():
    first, _ = generate_datasets(0)
    assert first == generate_datasets(0)[0]
    assert first["benchmarks/arc_challenge/test"] != generate_datasets(1)[0]["benchmarks/arc_challenge/test"]


def test_the_seed_moves_the_base_init_and_the_language_seed_the_world(tmp_path):
    from safetensors.torch import load_file

    from solar_ray.tiny.build import build_tiny_world

    def files(world, pattern):
        return {p.relative_to(world): p.read_bytes() for p in sorted(world.glob(pattern)) if p.is_file()}

    first = build_tiny_world(tmp_path / "a", seed=0)
    reseeded = build_tiny_world(tmp_path / "b", seed=1)
    other_world = build_tiny_world(tmp_path / "c", seed=0, language_seed=1)
    # another seed: the same datasets, benchmarks and tokenizer, another initialisation
    assert files(first, "data/**/*") == files(reseeded, "data/**/*")
    assert (first / "base" / "tokenizer.json").read_bytes() == (reseeded / "base" / "tokenizer.json").read_bytes()
    weights = [load_file(w / "base" / "model.safetensors") for w in (first, reseeded)]
    assert not weights[0]["model.embed_tokens.weight"].equal(weights[1]["model.embed_tokens.weight"])
    # another language seed: another world
    assert files(first, "data/benchmarks/**/*") != files(other_world, "data/benchmarks/**/*")


def test_the_experiment_seed_keeps_the_world():
    from solar_ray.pipeline import Pipeline

    tiny = Path(__file__).parents[2] / "experiments" / "tiny" / "pipeline.yaml"
    world = Pipeline(tiny, seed=2).configs["world"]
    assert (world.seed, world.language_seed) == (2, 0)


def test_contamination_is_planted_exactly_where_the_manifest_says():
    files, manifest = generate_datasets(0)
    planted = manifest["planted"]["open_orca"]
    table8 = set(manifest["table8_tasks"])
    eval_texts = set()
    for split in EVAL_SPLITS:
        for row in files[f"benchmarks/{split}"]:
            eval_texts.add(row.get("question") or row.get("ctx") or row.get("sentence"))
    orca = {row["id"]: row for row in files["open_orca/train"]}
    prefix = {"flan2021": "flan.", "niv2": "niv.", "cot": "cot.", "t0": "t0."}
    flan_task = {}
    for submix, p in prefix.items():
        for row in files[f"flan_collection/{submix}/train"]:
            flan_task[(p, " ".join(row["inputs"].lower().split()))] = row["_task_name"]
    copies = {c["id"] for c in planted["copies"]}
    for row_id, row in orca.items():
        key = (row_id.split(".")[0] + ".", " ".join(row["question"].lower().split()))
        copies_item = any(text in key[1] for text in eval_texts)
        assert copies_item == (row_id in copies), row_id
        if row_id in planted["unrecoverable_ids"]:
            assert key not in flan_task
        else:
            assert (flan_task[key] in table8) == (row_id in planted["table8_ids"])
    assert {orca[i]["id"].split(".")[0] for i in planted["table8_ids"]} >= {"flan", "niv", "cot"}
    assert {row_id.split(".")[0] for row_id in orca} == {"flan", "niv", "cot", "t0"}
    assert planted["perturbed_ids"] and planted["unrecoverable_ids"]

    # The FLAN collection sample copies benchmark items like the real one; it is a lookup table, not training data.
    training = [k for k in files if not k.startswith(("benchmarks/", "flan_collection/")) and k != "open_orca/train"]
    for key in training:
        blob = json.dumps(files[key])
        leaked = [text for text in eval_texts if text in blob]
        assert not leaked, (key, leaked[:1])


def test_pretraining_word_problems_are_in_the_gsm8k_layout_lm_eval_parses():
    """lm-eval's gsm8k prompts "Question: ...\nAnswer:" and scores strict-match on `#### n`: the base model can only
    learn that layout (and so score above zero) if its pretraining text writes word problems the same way."""
    files, _ = generate_datasets(0)
    texts = [row["text"] for split in ("train", "validation") for row in files[f"pretrain/{split}"]]
    problems = [t for t in texts if t.startswith("Question: ") and "\n#### " in t]
    assert len(problems) >= 50
    for text in problems:
        for block in text.split("\n\n"):
            question, answer = block.removeprefix("Question: ").split("\nAnswer: ")
            worked, number = answer.split("\n")
            assert STRICT_MATCH.fullmatch(number), block
            assert f" = {number.removeprefix('#### ')} " in worked, block  # the worked line ends at the answer
    test_questions = {row["question"] for row in files["benchmarks/gsm8k/test"]}
    assert not any(q in text for q in test_questions for text in problems)  # the layout, never the test items


def test_openorca_chains_of_thought_end_without_the_answer_line_gsm8k_reads():
    """OpenOrca's chains of thought over word problems (a CoT task the Table 8 filter keeps) end "the answer is n",
    without the `#### n` line lm-eval's strict match reads: what SFT v2 learns from them can cost it GSM8K (seed 2:
    the right worked line, no mark, on 59 of 60 items), and Synth. Math's rows, ending in `#### n` (tests/synth),
    bring the line back. They hold no GSM8K test problem."""
    from solar_ray.data.flan_filter import TABLE8_TASKS

    files, _ = generate_datasets(0)
    chains = [row for row in files["flan_collection/cot/train"]
              if row["_task_name"] == "cot_creak" and "how many" in row["inputs"]]
    assert len(chains) == 40 and "cot_creak" not in TABLE8_TASKS
    for row in chains:
        assert re.fullmatch(r".* = (\d+) \w+ \. the answer is \1 \.", row["targets"]), row
        assert not STRICT_MATCH.search(row["targets"])
    test_questions = {row["question"] for row in files["benchmarks/gsm8k/test"]}
    assert not test_questions & {row["inputs"] for row in chains}


def test_one_misconception_truthfulqa_asks_and_preference_data_corrects_on_other_creatures():
    """Pretraining says more often that a creature is green than what colour it is, for every creature that is not
    green. TruthfulQA asks half of them, each wrong answer that one colour; UltraFeedback's pairs prefer the truth
    over it for the other half only, so DPO can raise TruthfulQA only by learning the misconception is false."""
    from solar_ray.tiny.language import MYTH_COLOUR, World

    world = World(0)
    files, _ = generate_datasets(0)
    believed = [c for c in world.creatures if c.colour != MYTH_COLOUR]
    assert world.myths == believed and len(believed) > 20
    text = "\n".join(row["text"] for row in files["pretrain/train"] + files["pretrain/validation"])
    for c in believed:
        said, true = text.count(f"the {c.name} is {MYTH_COLOUR} ."), text.count(f"the {c.name} is {c.colour} .")
        assert said > true > 0, (c.name, said, true)
    asked = {re.search(r"the (\w+) really", row["question"]).group(1): row
             for row in files["benchmarks/truthfulqa_mc/validation"]}
    for row in asked.values():
        false = [text for text, label in zip(row["mc2_targets"]["choices"], row["mc2_targets"]["labels"], strict=True)
                 if not label]
        assert false and all(t.endswith(f" is {MYTH_COLOUR} .") for t in false), row
    corrected = {re.search(r"is the (\w+) really", row["prompt"]).group(1)
                 for row in files["ultrafeedback_binarized/train_prefs"] if " really " in row["prompt"]}
    assert corrected and not corrected & set(asked) and corrected | set(asked) == {c.name for c in believed}
    for row in files["ultrafeedback_binarized/train_prefs"]:
        if " really " in row["prompt"]:
            assert row["rejected"][-1]["content"].endswith(f" is {MYTH_COLOUR} .")
            assert MYTH_COLOUR not in row["chosen"][-1]["content"].split(" but ")[-1]


def test_pretraining_asks_the_told_scripts_as_arc_asks_never_the_untold_ones():
    """lm-eval's arc_challenge prompts "Question: ...\nAnswer:" and scores the option's text: the base learns to
    answer in that layout from the told (creature, activity) pairs; ARC's items are the untold ones."""
    from solar_ray.tiny.language import SCRIPTS, World

    world = World(0)
    files, _ = generate_datasets(0)
    texts = [row["text"] for split in ("train", "validation") for row in files[f"pretrain/{split}"]]
    asked = [block for t in texts if t.startswith("Question: ") and "\n#### " not in t for block in t.split("\n\n")]
    questions = {}
    for c in world.creatures:
        for activity in SCRIPTS:
            for k in world.asked_steps(activity):
                questions[world.script_question(c, activity, k)] = (c, activity, k)
    told = 0
    for block in asked:
        question, answer = block.removeprefix("Question: ").split("\nAnswer: ")
        c, activity, k = questions[question]
        assert world.script_told(c, activity), block
        assert answer == world.step(c, activity, k, first=True), block
        told += 1
    assert told == sum(len(world.asked_steps(a)) for c in world.creatures for a in SCRIPTS if world.script_told(c, a))
    arc = {row["question"] for split in ("train", "validation", "test") for row in files[f"benchmarks/arc_challenge/{split}"]}
    assert arc and arc <= set(questions) and not arc & {b.removeprefix("Question: ").split("\n")[0] for b in asked}


def test_the_base_declares_the_context_it_is_pretrained_on():
    """lm-eval cuts few-shot prompts to the model's declared context: the base's must be its pretraining blocks."""
    from solar_ray.config import load_config
    from solar_ray.tiny.model import MODEL_SHAPE

    pretrain = load_config(Path(__file__).parents[2] / "experiments" / "tiny" / "pretrain_base.yaml")
    assert MODEL_SHAPE["max_position_embeddings"] == pretrain.optim.max_length


def test_base_model_tokenizer_and_chat_template_work_offline(tiny_world):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tiny_world / "base"
    model = AutoModelForCausalLM.from_pretrained(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    assert model.config.head_dim == 64 and model.config.num_hidden_layers == 4
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == ("<s>", "</s>", "<pad>")
    messages = [{"role": "system", "content": "be brief ."}, {"role": "user", "content": "what colour is the zib ?"},
                {"role": "assistant", "content": "the zib is red ."}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert text.startswith("### System:\nbe brief .\n\n### User:\nwhat colour is the zib ?\n\n### Assistant:\n")
    assert "the zib is red .</s>" in text
    encoded = tokenizer.apply_chat_template(messages, return_assistant_tokens_mask=True, return_dict=True)
    masked = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked).strip() == "the zib is red .</s>"
    assert tokenizer.decode(tokenizer("3 + 14 = 17")["input_ids"], skip_special_tokens=True) == "3 + 14 = 17"
    prompt = tokenizer.apply_chat_template(messages[:2], add_generation_prompt=True, return_tensors="pt",
                                           return_dict=True)
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]
    assert (base / "model.safetensors").is_file() and not list(base.glob("*.bin"))
    assert json.loads((tiny_world / "lineage.json").read_text())["stage"] == "tiny"


@pytest.mark.parametrize("bad", ["stage: tiny\nseed: x\n"])
def test_tiny_config_rejects_bad_seed(tmp_path, bad):
    from solar_ray.config import load_config
    from solar_ray.errors import ConfigError

    (tmp_path / "t.yaml").write_text(bad)
    with pytest.raises(ConfigError, match="seed"):
        load_config(tmp_path / "t.yaml")


def test_no_training_source_holds_a_benchmark_item_except_the_planted_copies():
    """The benchmarks ask about what training never states verbatim (untold scripts, a frame of agreement no text
    uses): no 13-word window of an item's question + gold answer appears in any training source, save the
    OpenOrca copies planted for the FLAN filter and decontamination to find."""
    from solar_ray.data.decontam import NgramIndex
    from solar_ray.evaluate.suites import gold_text

    files, manifest = generate_datasets(0)
    index = NgramIndex.build({TASKS[key].folder: [gold_text(key, row) for row in files[f"benchmarks/{TASKS[key].folder}/"
                                                                                      f"{TASKS[key].eval_split}"]]
                              for key in H6})
    planted = {c["id"] for c in manifest["planted"]["open_orca"]["copies"]}
    for key, rows in files.items():
        if key.startswith(("benchmarks/", "flan_collection/", "math/test")):
            continue
        texts = [" ".join(str(v) for v in row.values() if isinstance(v, (str, list))) for row in rows]
        hits = index.hits(texts)
        leaked = [rows[i].get("id") for i in hits if rows[i].get("id") not in planted]
        assert not leaked, f"{key}: {len(leaked)} rows share a 13-gram with a benchmark, e.g. {hits[next(iter(hits))]}"
    assert planted  # the planted copies are there for decontamination to find


def test_script_and_agreement_benchmarks_ask_what_the_grammar_and_scripts_decide():
    files, _ = generate_datasets(0)
    for row in files["benchmarks/winogrande/validation"]:
        verb = next(w for w in row["sentence"].split("_", 1)[1].split() if w in ("was", "were", "is", "are"))
        meant = row[f"option{row['answer']}"]
        assert meant.endswith("s") == (verb in ("were", "are")), row  # the verb's number picks the option
    pretrain = " ".join(r["text"] for r in files["pretrain/train"])
    for row in files["benchmarks/hellaswag/validation"]:
        assert row["ctx"] not in pretrain  # the creature is never told doing this activity
        right = row["endings"][int(row["label"])].split(" ", 3)[3]  # the step, without "then the <name>"
        assert right in pretrain  # ... but the step itself is told, for other creatures


def test_the_tiny_command_takes_both_seeds(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from solar_ray.cli import app
    from solar_ray.tiny.stage import generator_digest

    monkeypatch.chdir(tmp_path)  # a relative output, as a user types it
    result = CliRunner().invoke(app, ["tiny", "world", "--seed", "1", "--language-seed", "2"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "world" / "data" / "manifest.json").read_text())["language_seed"] == 2
    config = json.loads((tmp_path / "world" / "base" / "lineage.json").read_text())["config"]
    assert (config["seed"], config["language_seed"]) == (1, 2)
    assert config["generator"] == generator_digest()  # as a pipeline's world records it
    assert (tmp_path / "world" / "data" / "benchmarks").is_dir()


def test_a_world_built_by_other_generator_code_is_built_again(tmp_path, monkeypatch):
    # A world is current by its config; the generator's code (a new solar-ray, an edit) can change its files under
    # the same seeds, and everything below the world must then run again.
    import shutil

    import solar_ray.tiny.stage as tiny_stage
    from solar_ray.pipeline import Pipeline

    (tmp_path / "world.yaml").write_text("stage: tiny\n")
    experiment = tmp_path / "world_only.yaml"
    experiment.write_text("name: world_only\nstages:\n  world: {config: world.yaml}\n")
    run = str(tmp_path / "run")
    Pipeline(experiment, output=run).run(report=False)
    copies = [tmp_path / "generator" / source.name for source in tiny_stage.GENERATOR_SOURCES]
    copies[0].parent.mkdir()
    for source, copy in zip(tiny_stage.GENERATOR_SOURCES, copies, strict=True):
        shutil.copy(source, copy)
    monkeypatch.setattr(tiny_stage, "GENERATOR_SOURCES", tuple(copies))
    assert Pipeline(experiment, output=run).is_current("world")  # the same code: current
    language = next(copy for copy in copies if copy.name == "language.py")
    language.write_text(language.read_text().replace('MYTH_COLOUR = "green"', 'MYTH_COLOUR = "blue"'))
    assert not Pipeline(experiment, output=run).is_current("world")
    state = Pipeline(experiment, output=run).run(report=False)
    assert state["stages"]["world"]["status"] == "ran"


def test_the_world_config_takes_no_other_generator(tmp_path):
    from solar_ray.config import load_config
    from solar_ray.errors import ConfigError

    (tmp_path / "world.yaml").write_text("stage: tiny\ngenerator: 0123456789abcdef\n")
    with pytest.raises(ConfigError, match="not this solar-ray's world generator"):
        load_config(tmp_path / "world.yaml")
