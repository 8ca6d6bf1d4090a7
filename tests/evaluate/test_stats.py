"""Paired statistics: a difference's standard error from per-item differences over the same items."""

from __future__ import annotations

import math
import statistics

import pytest

from solar_ray.errors import DataError
from solar_ray.evaluate.scores import item_scores, summarize
from solar_ray.evaluate.stats import noise_shares, paired_difference, pooled_difference, pooled_score
from solar_ray.report.findings import Finding, PairedScores, judge

TASK_NAMES = {"ARC": "arc_challenge", "HellaSwag": "hellaswag", "TruthfulQA": "truthfulqa_mc2",
              "Winogrande": "winogrande", "GSM8K": "gsm8k"}


def summary(values: dict[str, list[float] | dict[str, list[float]]]) -> dict:
    """A model's summary from per-item scores: task name -> values (MMLU: subject -> values)."""
    out = {}
    for name, items in values.items():
        strata = items if isinstance(items, dict) else {TASK_NAMES.get(name, name): items}
        stratum_items = {k: {"ids": [f"{k}-{i}" for i in range(len(v))], "values": v} for k, v in strata.items()}
        means = [statistics.fmean(v) for v in strata.values()]
        out[name] = {"value": statistics.fmean(means), "stderr": 0.1, "items": stratum_items}
    return out


def test_paired_stderr_is_the_stderr_of_the_item_differences():
    a = summary({"ARC": [1, 1, 0, 1, 0, 1, 1, 0]})
    b = summary({"ARC": [1, 0, 0, 1, 0, 1, 0, 0]})
    diff, se = paired_difference(a, b, "arc")
    d = [1 - 1, 1 - 0, 0, 0, 0, 0, 1, 0]
    assert diff == pytest.approx(0.25)
    assert se == pytest.approx(statistics.stdev(d) / math.sqrt(8))
    # far smaller than two independent standard errors would give on these correlated items
    independent = math.hypot(statistics.stdev(a["ARC"]["items"]["arc_challenge"]["values"]) / math.sqrt(8),
                             statistics.stdev(b["ARC"]["items"]["arc_challenge"]["values"]) / math.sqrt(8))
    assert se < 0.7 * independent


def test_mmlu_and_h6_combine_strata_with_their_weights():
    tasks = {name: [1, 0, 1, 0] for name in TASK_NAMES}
    a = summary({**tasks, "MMLU": {"mmlu_x": [1, 1, 1, 1], "mmlu_y": [1, 0, 1, 0, 1, 0]}})
    b = summary({**tasks, "MMLU": {"mmlu_x": [1, 1, 0, 0], "mmlu_y": [1, 0, 1, 0, 0, 0]}})
    diff, se = paired_difference(a, b, "mmlu")
    dx, dy = [0, 0, 1, 1], [0, 0, 0, 0, 1, 0]
    assert diff == pytest.approx((0.5 + 1 / 6) / 2)
    assert se == pytest.approx(math.sqrt(statistics.variance(dx) / 4 + statistics.variance(dy) / 6) / 2)
    h6_diff, h6_se = paired_difference(a, b, "h6")
    assert h6_diff == pytest.approx(diff / 6) and h6_se == pytest.approx(se / 6)  # the other five do not differ


def test_items_that_do_not_pair_are_an_error():
    a = summary({"ARC": [1, 0, 1]})
    b = summary({"ARC": [1, 0, 1, 1]})
    with pytest.raises(DataError, match="different arc_challenge items"):
        paired_difference(a, b, "arc", ("m1", "m2"))
    with pytest.raises(DataError, match="no per-item results"):
        paired_difference({"ARC": {"value": 0.5, "stderr": 0.1}}, a, "arc")


def test_runs_pool_each_items_difference_before_its_variance():
    # two seeds of one experiment on the same 4 items: each item's difference is averaged over the seeds first
    seed0 = (summary({"ARC": [1, 1, 1, 0]}), summary({"ARC": [0, 1, 0, 0]}))  # d = 1, 0, 1, 0
    seed1 = (summary({"ARC": [1, 1, 0, 1]}), summary({"ARC": [0, 0, 0, 1]}))  # d = 1, 1, 0, 0
    diff, se = pooled_difference([seed0, seed1], "arc", [("a0", "b0"), ("a1", "b1")])
    per_item = [1, 0.5, 0.5, 0]
    assert diff == pytest.approx(0.5)
    assert se == pytest.approx(statistics.stdev(per_item) / 2)
    # each seed alone: the same mean, but items whose seeds disagree add to its error
    assert paired_difference(*seed0, "arc")[1] > se
    value, value_se = pooled_score([seed0[0], seed1[0]], "arc", ["a0", "a1"])
    assert (value, value_se) == pytest.approx((0.75, statistics.stdev([1, 1, 0.5, 0.5]) / 2))


def test_runs_that_scored_other_items_do_not_pool():
    seed0 = (summary({"ARC": [1, 0, 1]}), summary({"ARC": [0, 0, 1]}))
    other_world = (summary({"ARC": [1, 0, 1, 1]}), summary({"ARC": [1, 0, 0, 1]}))
    with pytest.raises(DataError, match="a0 and a1 answered different arc_challenge items"):
        pooled_difference([seed0, other_world], "arc", [("a0", "b0"), ("a1", "b1")])
    renamed = summary({"ARC": [1, 0, 1]})
    renamed["ARC"]["items"]["arc_challenge"]["ids"] = ["x", "y", "z"]  # as many items, other ones
    with pytest.raises(DataError, match=r"different arc_challenge items \(3 each, other ids\)"):
        pooled_difference([seed0, (renamed, renamed)], "arc", [("a0", "b0"), ("a1", "b1")])


def test_noise_shares_say_which_benchmark_makes_a_differences_error():
    # ARC flips on 4 of 8 items, MMLU's two subjects on 1 of 4 items each, the other four benchmarks never
    same = {name: [1, 0, 1, 0] for name in ("HellaSwag", "TruthfulQA", "Winogrande", "GSM8K")}
    a = summary({**same, "ARC": [1, 1, 1, 1, 0, 0, 0, 0], "MMLU": {"mmlu_x": [1, 0, 0, 0], "mmlu_y": [1, 1, 0, 0]}})
    b = summary({**same, "ARC": [0, 0, 1, 1, 1, 1, 0, 0], "MMLU": {"mmlu_x": [0, 0, 0, 0], "mmlu_y": [1, 1, 0, 1]}})
    arc = statistics.variance([1, 1, 0, 0, -1, -1, 0, 0]) / 8
    mmlu = 2 * statistics.variance([1, 0, 0, 0]) / 4 / 4  # each subject at half MMLU's weight
    shares = noise_shares([(a, b)], "h6", [("a", "b")])
    assert shares == pytest.approx({"ARC": arc / (arc + mmlu), "MMLU": mmlu / (arc + mmlu), "HellaSwag": 0,
                                    "TruthfulQA": 0, "Winogrande": 0, "GSM8K": 0})
    _, se = paired_difference(a, b, "h6")
    assert se ** 2 == pytest.approx((arc + mmlu) / 36)  # the shares split exactly the variance behind the error
    assert noise_shares([(a, a)], "h6", [("a", "a")]) == {}  # no variance, nothing to share


def test_an_undecided_h6_difference_names_the_benchmarks_behind_its_error():
    same = {name: [1, 0, 1, 0] for name in ("HellaSwag", "TruthfulQA", "Winogrande", "MMLU")}
    summaries = {"a": summary({**same, "ARC": [1, 1, 1, 1, 0, 0, 0, 0], "GSM8K": [1, 0, 0, 0, 0, 0, 0, 0]}),
                 "b": summary({**same, "ARC": [0, 0, 1, 1, 1, 1, 0, 0], "GSM8K": [1, 1, 0, 0, 0, 0, 0, 0]})}
    for model in summaries.values():
        model["H6"] = {"value": 0.5, "stderr": 0.1}
    finding = Finding(claim="b beats a", kind="improves", metric="h6", baseline=["a"], treatment="b")
    verdict = judge(finding, PairedScores(summaries))
    assert verdict["verdict"] == "cannot tell"
    # ARC: var(1, 1, 0, 0, -1, -1, 0, 0) / 8 = 0.0714; GSM8K, one flip in 8: 0.0156 (18%, under the fifth shown)
    assert verdict["evidence"].endswith("its variance from ARC 82%) [paired over the same items]")
    decided = Finding(claim="b beats a", kind="improves", metric="arc", baseline=["a"], treatment="b")
    assert "variance from" not in judge(decided, PairedScores(summaries))["evidence"]  # one benchmark: no split


def test_a_paired_verdict_sees_what_independent_errors_hide():
    # b gets right every item a gets right, plus 6 of 40 more: a small, consistent gain
    a_items = [1] * 16 + [0] * 24
    b_items = [1] * 22 + [0] * 18
    summaries = {"a": summary({"ARC": a_items}), "b": summary({"ARC": b_items})}
    for name, items in (("a", a_items), ("b", b_items)):
        summaries[name]["ARC"]["stderr"] = statistics.stdev(items) / math.sqrt(len(items))
    finding = Finding(claim="b beats a", kind="improves", metric="arc", baseline=["a"], treatment="b")
    paired = judge(finding, PairedScores(summaries))
    assert paired["verdict"] == "reproduced" and "[paired over the same items]" in paired["evidence"]
    unpaired = judge(finding, PairedScores(summaries).scores)
    assert unpaired["verdict"] == "cannot tell"


def test_item_scores_from_lm_eval_samples_follow_the_headline_metric():
    samples = {
        "gsm8k": [{"doc_id": 1, "filter": "strict-match", "exact_match": 1.0, "doc_hash": "h1"},
                  {"doc_id": 0, "filter": "strict-match", "exact_match": 0.0, "doc_hash": "h0"},
                  {"doc_id": 0, "filter": "flexible-extract", "exact_match": 1.0, "doc_hash": "h0"}],
        "arc_challenge": [{"doc_id": 0, "acc": 1.0, "acc_norm": 0.0, "doc_hash": "x"}],
    }
    items = item_scores(samples)
    assert items["gsm8k"] == {"ids": ["h0", "h1"], "values": [0.0, 1.0]}
    assert items["arc_challenge"] == {"ids": ["x"], "values": [0.0]}  # acc_norm, ARC's headline
    results = {"arc_challenge": {"acc_norm,none": 0.0, "acc_norm_stderr,none": "N/A"}}
    assert summarize(results, ["arc_challenge"], items)["ARC"]["items"] == {"arc_challenge": items["arc_challenge"]}
