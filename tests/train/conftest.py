from __future__ import annotations

import pytest

from tests.train import fixtures


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return fixtures.build_tiny_model(tmp_path_factory.mktemp("train") / "base")


@pytest.fixture(scope="session")
def text_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    return fixtures.write_dataset(root / "text", fixtures.text_rows(400), fixtures.text_rows(40, seed=1))


@pytest.fixture(scope="session")
def chat_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    return fixtures.write_dataset(root / "chat", fixtures.chat_rows(64))


@pytest.fixture(scope="session")
def preference_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    return fixtures.write_dataset(root / "prefs", fixtures.preference_rows(64))
