"""N-gram index: exact n-gram hits, normalisation, near misses, benchmark schemas."""

import pytest

from solar_ray.data.decontam import NgramIndex, load_benchmark_texts
from solar_ray.errors import DataError
from tests.data.conftest import GSM8K_ANSWER, GSM8K_QUESTION, NEAR_MISS

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron".split()


def test_thirteen_word_copy_is_caught_with_benchmark_and_ngram():
    index = NgramIndex.build({"gsm8k": [" ".join(WORDS)]})
    hit = index.match("Prefix words. " + " ".join(WORDS[1:14]) + " suffix")
    assert hit == ("gsm8k", " ".join(WORDS[1:14]))


def test_twelve_word_copy_is_not_caught():
    index = NgramIndex.build({"gsm8k": [" ".join(WORDS)]})
    assert index.match("x " + " ".join(WORDS[:12]) + " y") is None
    assert index.match(" ".join(WORDS[:6]) + " BREAK " + " ".join(WORDS[6:13])) is None


def test_case_and_punctuation_do_not_hide_a_copy():
    index = NgramIndex.build({"arc": [" ".join(WORDS)]}, n=5)
    assert index.match("ALPHA, beta; Gamma!!  delta\n(epsilon)") == ("arc", "alpha beta gamma delta epsilon")


def test_match_batch_reports_each_row_and_the_first_hit():
    index = NgramIndex.build({"a": ["one two three four"], "b": ["five six seven eight"]}, n=4)
    texts = ["nothing here", "five six seven eight then one two three four", None, "one two three four"]
    assert index.match_batch(texts) == [None, ("b", "five six seven eight"), None, ("a", "one two three four")]


def test_ngrams_do_not_span_rows():
    index = NgramIndex.build({"a": ["one two three four"]}, n=4)
    assert index.match_batch(["one two", "three four"]) == [None, None]


def test_n_is_configurable_and_validated():
    assert NgramIndex.build({"a": ["one two three"]}, n=3).match("one two three") == ("a", "one two three")
    with pytest.raises(DataError, match="positive"):
        NgramIndex.build({"a": ["x"]}, n=0)


def test_load_benchmark_texts_reads_question_and_gold_answer(world):
    texts = load_benchmark_texts(world / "data" / "benchmarks")
    assert texts["gsm8k"] == [f"{GSM8K_QUESTION} {GSM8K_ANSWER}"]
    assert texts["arc_challenge"][0].endswith("red planet by most people? Mars")
    assert texts["winogrande"][0].startswith("The trophy did not fit into the suitcase because the trophy")
    index = NgramIndex.build(texts)
    assert index.match(f"Solve: {GSM8K_QUESTION}")[0] == "gsm8k"
    assert index.match(NEAR_MISS) is None


def test_load_benchmark_texts_names_missing_split(tmp_path):
    (tmp_path / "mmlu").mkdir()
    with pytest.raises(DataError, match=r"mmlu: no evaluation split found \(expected one of test.jsonl\)"):
        load_benchmark_texts(tmp_path, ["mmlu"])
