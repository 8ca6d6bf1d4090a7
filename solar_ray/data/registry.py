"""Datasets by name: where each lives on the hub, its upstream schema, and its adapter to a contract row kind.

Row kinds (the dataset artifact contract): `pretrain` {text}, `sft` {messages}, `preference` {prompt, chosen,
rejected}; every row also gets `source`. An adapter takes one upstream row (a dict) and returns the contract
fields, or raises `InvalidRow` (quarantine.py). OpenOrca's adapter also returns `_id` and `_question`, which the
FLAN-overlap filter joins on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from solar_ray.data.chat import alpaca_prompt, conversation, zephyr_preference
from solar_ray.data.quarantine import InvalidRow, check_messages, messages_field, optional_text, text_field
from solar_ray.errors import ConfigError

Kind = Literal["pretrain", "sft", "preference"]
Adapter = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class DatasetSpec:
    """One upstream dataset. `hub_id` None means it exists only as a local file or artifact (`path` required)."""

    name: str
    kind: Kind
    adapter: Adapter
    hub_id: str | None = None
    subset: str | None = None
    split: str = "train"
    fields: tuple[str, ...] = ()  # the upstream schema, for docs and error messages
    flan_submix: dict[str, str] | None = None  # id prefix -> FLAN sub-mixture, for the FLAN-overlap filter


# ------------------------------------------------------------------------------------------- adapters


def pretrain_text(row):
    return {"text": text_field(row, "text")}


def alpaca(row):
    user = alpaca_prompt(text_field(row, "instruction"), optional_text(row, "input"))
    return {"messages": conversation(user, text_field(row, "output"))}


def open_orca(row):
    question = text_field(row, "question")
    messages = conversation(question, text_field(row, "response"), optional_text(row, "system_prompt"))
    return {"messages": messages, "_id": optional_text(row, "id"), "_question": question}


def flan(row):
    return {"messages": conversation(text_field(row, "inputs"), text_field(row, "targets"))}


def math(row):
    return {"messages": conversation(text_field(row, "problem"), text_field(row, "solution"))}


def metamathqa(row):
    return {"messages": conversation(text_field(row, "query"), text_field(row, "response"))}


def orca_dpo(row):
    prompt = conversation(text_field(row, "question"), "", optional_text(row, "system"))[:-1]
    chosen = [*prompt, {"role": "assistant", "content": text_field(row, "chosen")}]
    rejected = [*prompt, {"role": "assistant", "content": text_field(row, "rejected")}]
    return zephyr_preference(chosen, rejected)


def ultrafeedback(row):
    chosen = messages_field(row, "chosen", last_role="assistant")
    rejected = messages_field(row, "rejected", last_role="assistant")
    return zephyr_preference(chosen, rejected)


def sft_messages(row):
    """Rows already in the contract's SFT form (the synth stage's artifacts)."""
    return {"messages": messages_field(row, "messages", last_role="assistant")}


def preference_rows(row):
    """Rows already in the contract's preference form (the synth stage's artifacts)."""
    prompt = messages_field(row, "prompt", last_role="user")
    chosen = messages_field(row, "chosen", last_role="assistant")
    rejected = messages_field(row, "rejected", last_role="assistant")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


# ------------------------------------------------------------------------------------------- registry

_FLAN_FIELDS = ("inputs", "targets", "_template_idx", "_task_source", "_task_name", "_template_type")
# FLAN collection sub-mixtures (Longpre et al. 2023) as published by the Data Provenance Initiative.
FLAN_SUBMIXES = {
    "flan2021": "DataProvenanceInitiative/flan2021_submix_original",
    "t0": "DataProvenanceInitiative/t0_submix_original",
    "niv2": "DataProvenanceInitiative/niv2_submix_original",
    "cot": "DataProvenanceInitiative/cot_submix_original",
}
# OpenOrca ids start with the sub-mixture they were sampled from: "flan.123", "niv.45", "cot.6", "t0.78".
OPEN_ORCA_ID_PREFIXES = {"flan": "flan2021", "niv": "niv2", "cot": "cot", "t0": "t0"}

REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("pretrain", "pretrain", pretrain_text, fields=("text",)),
        DatasetSpec("alpaca_gpt4", "sft", alpaca, "vicgalle/alpaca-gpt4", fields=("instruction", "input", "output")),
        DatasetSpec(
            "open_orca", "sft", open_orca, "Open-Orca/OpenOrca",
            fields=("id", "system_prompt", "question", "response"), flan_submix=OPEN_ORCA_ID_PREFIXES,
        ),
        *(
            DatasetSpec(f"flan_{sub}", "sft", flan, hub_id, fields=_FLAN_FIELDS)
            for sub, hub_id in FLAN_SUBMIXES.items()
        ),
        DatasetSpec("math", "sft", math, "hendrycks/competition_math", fields=("problem", "level", "type", "solution")),
        DatasetSpec(
            "metamathqa", "sft", metamathqa, "meta-math/MetaMathQA",
            fields=("query", "response", "type", "original_question"),
        ),
        DatasetSpec(
            "orca_dpo_pairs", "preference", orca_dpo, "Intel/orca_dpo_pairs",
            fields=("system", "question", "chosen", "rejected"),
        ),
        DatasetSpec(
            "ultrafeedback_binarized", "preference", ultrafeedback, "allenai/ultrafeedback_binarized_cleaned",
            split="train_prefs", fields=("prompt", "prompt_id", "chosen", "rejected", "score_chosen", "score_rejected"),
        ),
        DatasetSpec("synth_math_instruct", "sft", sft_messages, fields=("messages",)),
        DatasetSpec("synth_math_alignment", "preference", preference_rows, fields=("prompt", "chosen", "rejected")),
        DatasetSpec("sft_messages", "sft", sft_messages, fields=("messages",)),
        DatasetSpec("preferences", "preference", preference_rows, fields=("prompt", "chosen", "rejected")),
    ]
}


def get_spec(name: str, where: str = "dataset") -> DatasetSpec:
    if name not in REGISTRY:
        raise ConfigError(f"{where}: unknown dataset '{name}'; known datasets: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


__all__ = ["REGISTRY", "DatasetSpec", "InvalidRow", "Kind", "check_messages", "get_spec"]
