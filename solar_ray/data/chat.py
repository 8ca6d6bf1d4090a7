"""Turning upstream rows into the SOLAR chat shape, and Zephyr-style preference preprocessing.

The template itself (`solar_ray.chat.SOLAR_CHAT_TEMPLATE`) lives with the tokenizer; training renders it through
`tokenizer.apply_chat_template`, which appends EOS after every assistant turn and marks assistant tokens for
TRL's assistant-only loss. Here are the row-level helpers the adapters share, and `render_solar` for previews
and reports (the same text as the template, without a tokenizer).
"""

from __future__ import annotations

Message = dict[str, str]


def alpaca_prompt(instruction: str, input_text: str | None) -> str:
    """Alpaca's user turn: the instruction, then its input (when there is one) after a blank line."""
    return f"{instruction}\n\n{input_text}" if input_text else instruction


def conversation(user: str, assistant: str, system: str | None = None) -> list[Message]:
    """A single-turn conversation; an empty system prompt is left out (the template would skip it anyway)."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def zephyr_preference(chosen: list[Message], rejected: list[Message]) -> dict[str, list[Message]]:
    """Split two full conversations into TRL's conversational preference form, as Zephyr's recipe does.

    prompt = every turn before the final assistant turn of `chosen` (a system turn is put first, empty when the
    data has none, so every prompt renders the same way); chosen / rejected = the final assistant turn of each.
    Raises ValueError when either conversation does not end with an assistant turn.
    """
    for name, messages in (("chosen", chosen), ("rejected", rejected)):
        if not messages or messages[-1].get("role") != "assistant":
            raise ValueError(f"'{name}' must end with an assistant turn")
    prompt = list(chosen[:-1])
    if not prompt or prompt[0].get("role") != "system":
        prompt.insert(0, {"role": "system", "content": ""})
    return {"prompt": prompt, "chosen": [chosen[-1]], "rejected": [rejected[-1]]}


def render_solar(messages: list[Message], eos_token: str = "</s>", add_generation_prompt: bool = False) -> str:
    """Text of `messages` under the SOLAR-Instruct template (docs/reference.md), EOS after each assistant turn."""
    parts = []
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "system" and content:
            parts.append(f"### System:\n{content}\n\n")
        elif role == "user":
            parts.append(f"### User:\n{content}\n\n")
        elif role == "assistant":
            parts.append(f"### Assistant:\n{content}{eos_token}\n\n")
    if add_generation_prompt:
        parts.append("### Assistant:\n")
    return "".join(parts)
