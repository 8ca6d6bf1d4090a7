"""`stage: data` end to end on hand-made rows: FLAN filter, decontamination, caps, seeds, quarantine, errors."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from solar_ray.artifacts import read_lineage
from solar_ray.config import build_config
from solar_ray.data.flan_filter import TABLE8_TASKS, normalise_task
from solar_ray.errors import ConfigError, DataError
from solar_ray.stages import run_stage
from tests.data.conftest import FLAN_TASKS, GSM8K_QUESTION, ROWS_PER_TASK, write_jsonl


def sft_config(world, out, seed=1, alpaca_cap=30, **extra):
    data = world / "data"
    tree = {
        "stage": "data", "kind": "sft", "output": str(out), "seed": seed,
        "sources": {"alpaca_gpt4": {"path": str(data / "alpaca_gpt4"), "cap": alpaca_cap},
                    "open_orca": {"path": str(data / "open_orca" / "train.jsonl")}},
        "flan_filter": {"collection": str(data / "flan_collection")},
        "decontaminate": {"benchmarks_dir": str(data / "benchmarks")},
        **extra,
    }
    return build_config(tree, "test")


@pytest.fixture(scope="module")
def sft_artifact(world, ray_session, tmp_path_factory):
    return run_stage(sft_config(world, tmp_path_factory.mktemp("sft") / "out", test_size=5))


def user_texts(path):
    return [next(m["content"] for m in row if m["role"] == "user") for row in pq.read_table(path)["messages"].to_pylist()]


def test_exactly_table8_tasks_are_dropped(sft_artifact):
    report = json.loads((sft_artifact / "report.json").read_text())["sources"]["open_orca"]
    table8 = {normalise_task(t) for t in TABLE8_TASKS}
    tasks = report["flan"]["tasks"]
    assert sorted(tasks) == sorted(t for ts in FLAN_TASKS.values() for t in ts)
    for task, counts in tasks.items():
        expected = (0, ROWS_PER_TASK) if normalise_task(task) in table8 else (ROWS_PER_TASK, 0)
        assert (counts["kept"], counts["dropped"]) == expected, task
    assert report["flan"]["unrecovered"] == 2
    rejected = pq.read_table(sft_artifact / "rejected.parquet").to_pylist()
    dropped_tasks = {r["flan_task"] for r in rejected if r["reason"] == "flan_overlap"}
    assert {normalise_task(t) for t in dropped_tasks} == table8
    kept_questions = " ".join(user_texts(sft_artifact / "train.parquet") + user_texts(sft_artifact / "test.parquet"))
    assert "HELLASWAG" not in kept_questions and "GLUE SST2" in kept_questions


def test_planted_benchmark_row_is_set_aside_and_near_miss_kept(sft_artifact):
    rejected = pq.read_table(sft_artifact / "rejected.parquet").to_pylist()
    contaminated = [r for r in rejected if r["reason"] == "contaminated"]
    assert len(contaminated) == 1
    assert contaminated[0]["benchmark"] == "gsm8k" and len(contaminated[0]["ngram"].split()) == 13
    assert contaminated[0]["ngram"] in GSM8K_QUESTION.lower()
    report = json.loads((sft_artifact / "report.json").read_text())
    assert report["sources"]["alpaca_gpt4"]["contaminated"] == {"gsm8k": 1}
    assert report["sources"]["alpaca_gpt4"]["available"] == 41  # 42 rows - 1 contaminated; the near miss stays


def test_counts_equal_caps_and_are_in_lineage(sft_artifact):
    train = pq.read_table(sft_artifact / "train.parquet")
    test = pq.read_table(sft_artifact / "test.parquet")
    sources = train["source"].to_pylist() + test["source"].to_pylist()
    assert sources.count("alpaca_gpt4") == 30
    assert sources.count("open_orca") == 17  # 47 - 30 Table 8 rows, no cap
    assert test.num_rows == 5 and train.schema.names == ["messages", "source"]
    lineage = read_lineage(sft_artifact)
    assert lineage["metrics"]["mixture"]["alpaca_gpt4"] == {"cap": 30, "available": 41, "used": 30}
    assert lineage["metrics"]["rows"] == {"train": 42, "test": 5, "rejected": 31}
    assert {p["name"] for p in lineage["parents"]} >= {"source:alpaca_gpt4", "benchmarks", "flan_collection"}


def test_same_seed_same_rows_and_order_other_seed_differs(world, ray_session, tmp_path):
    def rows(name, seed):
        config = sft_config(world, tmp_path / name, seed=seed, flan_filter=None, decontaminate=None)
        return pq.read_table(run_stage(config) / "train.parquet").to_pylist()

    first, again, other = rows("first", 1), rows("again", 1), rows("other", 2)
    assert again == first
    assert [r["source"] for r in first].count("alpaca_gpt4") == 30
    assert other != first
    alpaca = [r for r in first if r["source"] == "alpaca_gpt4"]
    assert alpaca != sorted(alpaca, key=lambda r: r["messages"][0]["content"])  # shuffled, not file order
    assert {r["source"] for r in first[:20]} == {"alpaca_gpt4", "open_orca"}  # sources interleaved


def test_quarantine_reasons_and_preference_rows(world, ray_session, tmp_path):
    path = write_jsonl(tmp_path / "dpo.jsonl", [
        {"system": "", "question": "Q1", "chosen": "good", "rejected": "bad"},
        {"system": "", "question": "Q2", "chosen": 3, "rejected": "bad"},
        {"system": "", "question": "   ", "chosen": "good", "rejected": "bad"},
        {"system": "", "chosen": "good", "rejected": "bad"},
        "{not json",
    ])
    out = run_stage(build_config({"stage": "data", "kind": "preference", "output": str(tmp_path / "out"),
                                  "sources": {"orca_dpo_pairs": {"path": str(path)}}}, "test"))
    rows = pq.read_table(out / "train.parquet").to_pylist()
    assert rows == [{"prompt": [{"role": "system", "content": ""}, {"role": "user", "content": "Q1"}],
                     "chosen": [{"role": "assistant", "content": "good"}],
                     "rejected": [{"role": "assistant", "content": "bad"}], "source": "orca_dpo_pairs"}]
    rejected = pq.read_table(out / "rejected.parquet").to_pylist()
    assert sorted(r["reason"] for r in rejected) == ["empty_text", "invalid_json", "missing_field", "not_string"]
    assert all(r["row"] for r in rejected)
    report = json.loads((out / "report.json").read_text())
    assert report["sources"]["orca_dpo_pairs"]["rejected"] == {
        "empty_text": 1, "invalid_json": 1, "missing_field": 1, "not_string": 1}


def test_all_invalid_source_fails_clearly_and_leaves_nothing(ray_session, tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"text": ""}, {"text": 5}, {"body": "x"}])
    config = build_config({"stage": "data", "kind": "pretrain", "output": str(tmp_path / "out"),
                           "sources": {"pretrain": {"path": str(path)}}}, "test")
    with pytest.raises(DataError, match=r"sources.pretrain \(.*bad.jsonl\): every row is invalid \(empty_text: 1, missing_field: 1, not_string: 1\)"):
        run_stage(config)
    assert not (tmp_path / "out").exists()


def test_config_errors_name_the_key(tmp_path):
    base = {"stage": "data", "kind": "sft", "output": str(tmp_path / "o")}
    with pytest.raises(ConfigError, match="sources.orca_dpo_pairs: dataset 'orca_dpo_pairs' gives preference rows"):
        build_config({**base, "sources": {"orca_dpo_pairs": {"path": "x"}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="unknown dataset 'alpaca'"):
        build_config({**base, "sources": {"alpaca": {"path": "x"}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="unknown key 'sources.alpaca_gpt4.cpa'"):
        build_config({**base, "sources": {"alpaca_gpt4": {"cpa": 3}}}, "cfg.yaml")
    with pytest.raises(ConfigError, match="at least one source"):
        build_config({**base, "sources": {"alpaca_gpt4": None}}, "cfg.yaml")


def test_rays_sort_path_writes_the_same_rows_in_the_same_order(world, ray_session, tmp_path, monkeypatch):
    from solar_ray.data import mixture

    def train_rows(name):
        config = sft_config(world, tmp_path / name, flan_filter=None, test_size=3)
        out = run_stage(config)
        return pq.read_table(out / "test.parquet").to_pylist() + pq.read_table(out / "train.parquet").to_pylist()

    in_driver = train_rows("driver")
    monkeypatch.setattr(mixture, "IN_DRIVER_SORT_BYTES", 0)  # every mixture now takes Ray Data's sort
    monkeypatch.setattr(mixture, "SORT_PARTITION_BYTES", 1)  # ... with several partitions
    assert train_rows("ray_sort") == in_driver
    assert len(in_driver) == 30 + 47  # alpaca capped at 30 (41 clean), every OpenOrca row (no FLAN filter)
