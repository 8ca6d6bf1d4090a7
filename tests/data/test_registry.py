"""Adapters: upstream schemas to contract rows; invalid rows raise InvalidRow with a reason."""

import pytest

from solar_ray.data.chat import render_solar, zephyr_preference
from solar_ray.data.quarantine import InvalidRow
from solar_ray.data.registry import REGISTRY


def test_alpaca_puts_input_after_instruction():
    row = REGISTRY["alpaca_gpt4"].adapter({"instruction": "Add.", "input": "2 and 3", "output": "5"})
    assert row["messages"] == [{"role": "user", "content": "Add.\n\n2 and 3"}, {"role": "assistant", "content": "5"}]


def test_open_orca_keeps_system_prompt_and_join_fields():
    row = REGISTRY["open_orca"].adapter({"id": "flan.1", "system_prompt": "Be brief.", "question": "Q?", "response": "A."})
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert (row["_id"], row["_question"]) == ("flan.1", "Q?")


def test_ultrafeedback_is_split_like_zephyr():
    chosen = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]
    rejected = [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Go away."}]
    row = REGISTRY["ultrafeedback_binarized"].adapter({"prompt": "Hi?", "chosen": chosen, "rejected": rejected})
    assert row["prompt"] == [{"role": "system", "content": ""}, {"role": "user", "content": "Hi?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "Hello."}]
    assert row["rejected"] == [{"role": "assistant", "content": "Go away."}]


def test_orca_dpo_pairs_become_conversational_preferences():
    row = REGISTRY["orca_dpo_pairs"].adapter({"system": "S", "question": "Q", "chosen": "good", "rejected": "bad"})
    assert row["prompt"] == [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    assert (row["chosen"][0]["content"], row["rejected"][0]["content"]) == ("good", "bad")


@pytest.mark.parametrize(
    ("dataset", "row", "reason", "detail"),
    [
        ("alpaca_gpt4", {"instruction": "x"}, "missing_field", "'output'"),
        ("alpaca_gpt4", {"instruction": "x", "output": 5}, "not_string", "'output' is int"),
        ("alpaca_gpt4", {"instruction": "  ", "output": "y"}, "empty_text", "'instruction'"),
        ("pretrain", {"text": ""}, "empty_text", "'text'"),
        ("sft_messages", {"messages": []}, "malformed_messages", "non-empty list"),
        ("sft_messages", {"messages": [{"role": "bot", "content": "x"}]}, "malformed_messages", "'bot'"),
        ("sft_messages", {"messages": [{"role": "user", "content": "x"}]}, "malformed_messages", "end with"),
        ("ultrafeedback_binarized", {"chosen": [{"role": "user"}], "rejected": []}, "malformed_messages", "content"),
    ],
)
def test_invalid_rows_raise_reason_and_field(dataset, row, reason, detail):
    with pytest.raises(InvalidRow) as err:
        REGISTRY[dataset].adapter(row)
    assert err.value.reason == reason and detail in err.value.detail


def test_render_solar_matches_the_template_shape():
    messages = zephyr_preference(
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "B"}],
    )
    text = render_solar(messages["prompt"] + messages["chosen"], eos_token="</s>")
    assert text == "### User:\nQ\n\n### Assistant:\nA</s>\n\n"
