"""FLAN task names and the (sub-mixture, question) lookup."""

import numpy as np

from solar_ray.data.flan_filter import TABLE8_TASKS, FlanLookup, normalise_task, question_keys


def test_task_names_compare_without_punctuation_or_version():
    assert normalise_task("ai2_arcARCChallenge") == normalise_task("ai2_arc/ARC-Challenge:1.0.0")
    assert normalise_task("hellaswag") == normalise_task("hellaswag:1.1.0")
    assert normalise_task("cot_gsm8k") != normalise_task("cot_gsm8k_ii")
    assert normalise_task("ai2_arc/ARC-Easy:1.0.0") != normalise_task("ai2_arc/ARC-Challenge:1.0.0")


def test_question_keys_normalise_case_and_spacing_and_depend_on_submix():
    a = question_keys(["flan2021", "flan2021", "niv2", None], ["What is  2+2?", " what is 2+2? ", "What is 2+2?", "x"])
    assert a[0] == a[1] != a[2]
    assert a[3] == 0


def test_lookup_finds_tasks_and_marks_table8_by_normalised_name():
    keys = question_keys(["flan2021"] * 3, ["q arc", "q sst", "q both"])
    dup = question_keys(["flan2021"], ["q both"])
    lookup = FlanLookup.from_pairs(
        np.concatenate([keys, dup]),
        ["ai2_arcARCChallenge", "glue/sst2:2.0.0", "glue/sst2:2.0.0", "hellaswag:1.1.0"],
        TABLE8_TASKS,
    )
    found = lookup.find(np.concatenate([keys, question_keys(["niv2"], ["q arc"])]))
    names = [lookup.tasks[i] if i >= 0 else None for i in found]
    # A question under two tasks resolves to the dropped one (conservative).
    assert names == ["ai2_arcARCChallenge", "glue/sst2:2.0.0", "hellaswag:1.1.0", None]
    assert [bool(lookup.drop[i]) for i in found[:3]] == [True, False, True]


def test_collapse_whitespace_matches_the_regex_on_any_utf8():
    import pyarrow as pa
    import pyarrow.compute as pc

    from solar_ray.data.flan_filter import collapse_whitespace

    rng = np.random.default_rng(0)
    texts = ["a  b", "  lead", "trail \t", "", "   ", None, "x\t\n y\r\fz", "ünï  cödé\u00a0 x", "\v keep vt"]
    texts += ["".join(rng.choice(list("ab \t\nü"), size=int(rng.integers(0, 12)))) for _ in range(200)]
    array = pa.array(texts, pa.string())
    for part in (array, array.slice(5, 100)):
        assert collapse_whitespace(part).to_pylist() == pc.replace_substring_regex(part, r"\s+", " ").to_pylist()


def test_lookup_reads_a_collection_of_mixed_formats_in_one_pass(ray_session, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from solar_ray.data.flan_filter import build_lookup
    from tests.data.conftest import write_jsonl

    write_jsonl(tmp_path / "niv2" / "train.jsonl", [
        {"inputs": "Same question?", "_task_name": "task1389_hellaswag_completion"}, "{broken"])
    (tmp_path / "cot").mkdir()
    pq.write_table(pa.table({"inputs": ["Same question?", "Cot only?", None], "_task_name": ["cot_esnli", "cot_gsm8k", "x"]}),
                   tmp_path / "cot" / "train.parquet")
    lookup = build_lookup(str(tmp_path))  # flan2021 and t0 are absent: skipped
    found = lookup.find(question_keys(["niv2", "cot", "cot", "flan2021"], ["same  QUESTION?", "Same question?", "cot only?", "Same question?"]))
    assert [lookup.tasks[i] if i >= 0 else None for i in found] == [
        "task1389_hellaswag_completion", "cot_esnli", "cot_gsm8k", None]
    assert [bool(lookup.drop[i]) for i in found[:3]] == [True, False, True]
