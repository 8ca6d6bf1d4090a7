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


def test_ascii_fast_path_splits_words_like_the_unicode_regex():
    import pyarrow as pa
    import pyarrow.compute as pc

    from solar_ray.data.decontam import WORD_SPLIT, normalised_words

    texts = ["  Hello, WORLD!! 42x\tnew\nline ", "", None, "--", "a_b-c.d", "MiXeD123case end."]
    words, rows = normalised_words(pa.array(texts, pa.string()).slice(0))
    split = pc.split_pattern_regex(pc.utf8_lower(pa.array([t or "" for t in texts])), WORD_SPLIT)
    expected = [(row, word) for row, ws in enumerate(split.to_pylist()) for word in ws if word]
    assert list(zip(rows.tolist(), words.to_pylist(), strict=True)) == expected
    # A batch with one non-ASCII text takes the regex path and keeps letters beyond ASCII.
    words, _ = normalised_words(["Ünïcode, wörds"] + texts[:1])
    assert words.to_pylist() == ["ünïcode", "wörds", "hello", "world", "42x", "new", "line"]


def test_bit_table_prefilter_keeps_every_benchmark_ngram():
    import numpy as np

    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(500)]
    items = [" ".join(rng.choice(vocab, 20)) for _ in range(300)]
    index = NgramIndex.build({"bench": items}, n=13)
    assert len(index) > 2000 and index.table.nbytes * 8 >= 64 * len(index)
    assert all(hit is not None for hit in index.match_batch(items))  # every item holds its own n-grams
    misses = [" ".join(rng.choice(vocab, 20)) for _ in range(300)]
    assert index.match_batch(misses) == [None] * 300
