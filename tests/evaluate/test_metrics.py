"""Each task's headline metric on hand-made cases with known answers: lm-eval's own tasks, offline, stub LMs."""

from __future__ import annotations

import json
import math

import pytest
from lm_eval.api.model import LM

from solar_ray.evaluate.runner import run_tasks, task_manager
from solar_ray.evaluate.scores import summarize
from solar_ray.evaluate.suites import H6
from solar_ray.evaluate.tasks import write_task_dir

LIMIT = 12


class PickChoice(LM):
    """Loglikelihood 0 for choice `k` of every item and -10 for the others; GSM8K: the gold number after
    '#### ' when it is even, else without the '#### ' marker (strict-match misses it, flexible-extract finds it)."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def loglikelihood(self, requests):
        return [(0.0 if r.idx == self.k else -10.0, r.idx == self.k) for r in requests]

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError

    def generate_until(self, requests):
        out = []
        for r in requests:
            gold = r.doc["answer"].split("#### ")[-1].strip()
            out.append(f" so #### {gold}" if int(gold) % 2 == 0 else f" so the answer is {gold}")
        return out


def rows(path, n=LIMIT):
    return [json.loads(line) for line in path.read_text().splitlines()][:n]


def share(flags):
    return sum(flags) / len(flags)


@pytest.fixture(scope="module")
def tasks(bench_dir, tmp_path_factory):
    task_dir = tmp_path_factory.mktemp("tasks")
    names = write_task_dir(bench_dir, list(H6), task_dir)
    return names, task_manager(task_dir)


@pytest.mark.parametrize("k", [0, 1])
def test_each_metric_matches_hand_computed_accuracy(k, tasks, bench_dir):
    names, manager = tasks
    out = run_tasks(PickChoice(k), names, manager, LIMIT)
    results = out["results"]
    summary = summarize(results, list(H6), out["items"])
    for name, entry in summary.items():  # per-item scores, kept for paired comparisons, give the headline value
        if name != "H6":
            strata = entry["items"].values()
            assert len(strata) == (len(entry.get("subjects", {})) or 1)
            assert all(len(s["ids"]) == len(s["values"]) == LIMIT for s in strata), name
            assert sum(sum(s["values"]) / LIMIT for s in strata) / len(strata) == pytest.approx(entry["value"]), name

    arc = rows(bench_dir / "arc_challenge/test.jsonl")
    assert summary["ARC"]["value"] == share(["ABCD".index(r["answerKey"]) == k for r in arc])
    assert summary["ARC"]["metric"] == "acc_norm,none"
    hella = rows(bench_dir / "hellaswag/validation.jsonl")
    assert summary["HellaSwag"]["value"] == share([int(r["label"]) == k for r in hella])
    wino = rows(bench_dir / "winogrande/validation.jsonl")
    assert summary["Winogrande"]["value"] == share([int(r["answer"]) - 1 == k for r in wino])

    # MMLU: plain mean over subjects of each subject's accuracy (LIMIT items per subject)
    mmlu = [json.loads(line) for line in (bench_dir / "mmlu/test.jsonl").read_text().splitlines()]
    per_subject = {}
    for subject in sorted({r["subject"] for r in mmlu}):
        items = [r for r in mmlu if r["subject"] == subject][:LIMIT]
        per_subject[subject] = share([r["answer"] == k for r in items])
    assert summary["MMLU"]["subjects"] == per_subject
    assert summary["MMLU"]["value"] == pytest.approx(sum(per_subject.values()) / len(per_subject))

    # TruthfulQA mc2: probability mass on the true answers; the true one is choice 0 of three
    mc2 = 1 / (1 + 2 * math.exp(-10)) if k == 0 else math.exp(-10) / (1 + 2 * math.exp(-10))
    assert summary["TruthfulQA"]["value"] == pytest.approx(mc2)

    gsm = rows(bench_dir / "gsm8k/test.jsonl")
    even = share([int(r["answer"].split("#### ")[-1]) % 2 == 0 for r in gsm])
    assert summary["GSM8K"]["value"] == pytest.approx(even)
    assert results["gsm8k"]["exact_match,flexible-extract"] == 1.0  # the strict filter is the one reported
    assert 0 < even < 1

    six = [summary[n]["value"] for n in ("ARC", "HellaSwag", "MMLU", "TruthfulQA", "Winogrande", "GSM8K")]
    assert summary["H6"]["value"] == pytest.approx(sum(six) / 6)
    assert summary["ARC"]["stderr"] is not None and summary["H6"]["stderr"] is not None


def test_few_shot_counts_follow_the_leaderboard(tasks):
    names, manager = tasks
    out = run_tasks(PickChoice(0), ["arc_challenge", "gsm8k", "truthfulqa_mc2"], manager, 2)
    assert out["n-shot"] == {"arc_challenge": 25, "gsm8k": 5, "truthfulqa_mc2": 0}


def test_lm_eval_environment_report_is_collected_once_per_process(monkeypatch):
    import lm_eval.evaluator
    import torch.utils.collect_env
    from lm_eval.loggers.utils import add_env_info

    from solar_ray.patches.lm_eval_evaluator import reuse_env_info

    calls = []

    def pretty_env_info():
        calls.append(1)
        return f"report {len(calls)}"

    monkeypatch.setattr(torch.utils.collect_env, "get_pretty_env_info", pretty_env_info)
    # lm-eval's own function, whether or not an earlier test installed the reuse (restored afterwards)
    monkeypatch.setattr(lm_eval.evaluator, "add_env_info", add_env_info)
    reuse_env_info()
    reuse_env_info()  # idempotent: still one cache
    first, second = {}, {}
    lm_eval.evaluator.add_env_info(first)
    lm_eval.evaluator.add_env_info(second)
    assert calls == [1]
    assert first == second and first["pretty_env_info"] == "report 1"


def test_prompt_templates_are_compiled_once_and_render_as_lm_eval_renders_them(monkeypatch):
    import lm_eval.utils

    from solar_ray.patches.lm_eval_evaluator import compile_templates_once

    def lm_eval_apply_template(template: str, doc: dict) -> str:  # lm-eval 0.4.13's own, whether or not an
        return lm_eval.utils.env.from_string(template).render(**doc)  # earlier test installed the patch

    compiles = []
    from_string = lm_eval.utils.env.from_string
    monkeypatch.setattr(lm_eval.utils, "apply_template", lm_eval_apply_template)
    monkeypatch.setattr(lm_eval.utils.env, "from_string", lambda source: compiles.append(source) or from_string(source))
    template = "Question: {{question}}\nAnswer:{{ ' ' + answer if answer else '' }}"
    docs = [{"question": "What colour is the owl?", "answer": "red"}, {"question": "Which fox?", "answer": ""}]
    expected = [lm_eval_apply_template(template, doc) for doc in docs]
    compiles.clear()
    compile_templates_once()
    compile_templates_once()  # idempotent
    rendered = [lm_eval.utils.apply_template(template, doc) for doc in docs + docs]
    assert rendered == expected + expected
    assert compiles == [template]  # four renders, one compile
