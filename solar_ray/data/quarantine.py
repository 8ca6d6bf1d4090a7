"""Row validation: an upstream row either becomes a contract row or is quarantined with a reason.

Reasons are short stable codes (counted in report.json, stored in rejected.parquet's `reason` column) plus a
detail naming the field:
    invalid_json        the line is not a JSON object
    missing_field       a required field is absent or null
    not_string          a text field holds a number, list, ...
    empty_text          a text field is empty or only whitespace
    malformed_messages  a message list is empty, has a bad role, or lacks role/content
Filters add their own: `flan_overlap` (a Table 8 task, see flan_filter.py) and `contaminated` (decontam.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ROLES = ("system", "user", "assistant")


class InvalidRow(ValueError):
    """Raised by adapters; carries the reason code and a one-line detail."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def text_field(row: dict[str, Any], field: str, allow_empty: bool = False) -> str:
    """The string at `row[field]`, or InvalidRow naming the field and what it held."""
    if field not in row or row[field] is None:
        raise InvalidRow("missing_field", f"field '{field}' is missing")
    value = row[field]
    if not isinstance(value, str):
        raise InvalidRow("not_string", f"field '{field}' is {type(value).__name__}, expected a string")
    if not allow_empty and not value.strip():
        raise InvalidRow("empty_text", f"field '{field}' is empty")
    return value


def optional_text(row: dict[str, Any], field: str) -> str:
    """A string field that may be missing or empty (e.g. Alpaca's `input`, OpenOrca's `system_prompt`)."""
    value = row.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRow("not_string", f"field '{field}' is {type(value).__name__}, expected a string")
    return value


def messages_field(row: dict[str, Any], field: str, last_role: str | None = None) -> list[dict[str, str]]:
    """A validated message list at `row[field]`: non-empty, known roles, string contents, non-empty turns."""
    if field not in row or row[field] is None:
        raise InvalidRow("missing_field", f"field '{field}' is missing")
    return check_messages(row[field], field, last_role)


def check_messages(messages: Any, field: str, last_role: str | None = None) -> list[dict[str, str]]:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InvalidRow("malformed_messages", f"'{field}' must be a non-empty list of messages")
    clean = []
    for turn, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise InvalidRow("malformed_messages", f"'{field}[{turn}]' needs 'role' and 'content'")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise InvalidRow("malformed_messages", f"'{field}[{turn}].role' is {role!r}, expected one of {ROLES}")
        if not isinstance(content, str):
            raise InvalidRow("not_string", f"'{field}[{turn}].content' is {type(content).__name__}")
        if role != "system" and not content.strip():
            raise InvalidRow("empty_text", f"'{field}[{turn}].content' is empty")
        clean.append({"role": role, "content": content})
    if last_role and clean[-1]["role"] != last_role:
        raise InvalidRow("malformed_messages", f"'{field}' must end with a {last_role} turn")
    return clean


def set_rows(batch, rows: Sequence[int], values: dict[str, list]):
    """`batch` with column name's entries at `rows` (ascending) replaced by values[name] (strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(rows):
        return batch
    mask = np.zeros(batch.num_rows, bool)
    mask[np.asarray(rows)] = True
    for name, new in values.items():
        column = pc.replace_with_mask(batch.column(name).combine_chunks(), pa.array(mask), pa.array(new, pa.string()))
        batch = batch.set_column(batch.schema.get_field_index(name), name, column)
    return batch
