"""Fixtures: tiny benchmark files in the six schemas and a tiny random Llama with a BPE trained on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from solar_ray.tiny.benchmarks import benchmark_corpus, build_benchmarks, build_model


@pytest.fixture(scope="session")
def bench_dir(tmp_path_factory) -> Path:
    return build_benchmarks(tmp_path_factory.mktemp("eval") / "benchmarks")


@pytest.fixture(scope="session")
def eval_model(tmp_path_factory, bench_dir) -> Path:
    return build_model(tmp_path_factory.mktemp("eval-model") / "tiny", benchmark_corpus(bench_dir))
