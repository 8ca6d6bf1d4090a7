"""The rehearsal's hub mirror: every repository the paper experiment fetches, under the same ids, scaled down.

Contents come from the tiny world's generators (solar_ray/tiny), laid out as the hub lays the real repositories
out (configs, split names, column names and types; see repos.py), so the fetch stages, the data stages' schema
adapters, the FLAN filter and the up-scaler's Mistral-as-Llama conversion run their real code on them:

    models/mistralai/Mistral-7B-v0.1      MistralForCausalLM: 32 layers, sliding window 4096, grouped-query heads 4:1
                                          as Mistral's 32:8, hidden 64 instead of 4096; a chat-free tokenizer with
                                          Mistral's special tokens (<unk> 0, <s> 1, </s> 2, BOS added, no pad token)
    models/Qwen/Qwen2.5-72B-Instruct      Qwen2ForCausalLM, 2 layers, heads 8:1 as Qwen2.5-72B's 64:8, ChatML template
    datasets/...                          the H6 benchmarks, MATH (seven subject configs), FineWeb-Edu, Alpaca-GPT4,
                                          OpenOrca, the FLAN sub-mixtures, Orca DPO pairs, UltraFeedback binarized

The models are random: the rehearsal tests the plumbing of every stage, not what a model learns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from solar_ray.hub import BENCHMARKS
from solar_ray.rehearsal.repos import write_dataset_repo
from solar_ray.tiny.model import build_tiny_model, metaspace_bpe

MATH_SUBJECTS = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra", "number_theory",
                 "prealgebra", "precalculus")
MISTRAL_SPECIALS = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2, as in Mistral's tokenizer
MISTRAL_SHAPE = {  # Mistral-7B v0.1's config.json with its widths scaled down 64x; depth and ratios kept
    "num_hidden_layers": 32, "hidden_size": 64, "intermediate_size": 224,  # 14336 / 4096 = 3.5
    "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16,    # 32:8 heads -> 4:1
    "sliding_window": 4096, "max_position_embeddings": 32768, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False, "hidden_act": "silu",
}
QWEN_SHAPE = {  # Qwen2.5-72B-Instruct scaled down: heads 64:8 -> 8:1
    "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 224, "num_attention_heads": 8,
    "num_key_value_heads": 1, "max_position_embeddings": 32768, "rope_theta": 1000000.0, "tie_word_embeddings": False,
}
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")



def build_mirror(out: Path, seed: int = 0) -> Path:
    """Write the mirror into `out` (atomically); returns `out`. Its ids are those the paper experiment reads."""
    from solar_ray.artifacts import atomic_dir
    from solar_ray.tiny.build import generate_datasets

    files, _ = generate_datasets(seed)
    with atomic_dir(out, force=True) as tmp:
        write_datasets(tmp, files)
        texts = [json.dumps(row) for rows in files.values() for row in rows]
        write_mistral(tmp / "models" / "mistralai" / "Mistral-7B-v0.1", texts, seed)
        write_qwen(tmp / "models" / "Qwen" / "Qwen2.5-72B-Instruct", texts, seed)
    return out


def write_datasets(root: Path, files: dict[str, list[dict[str, Any]]]) -> None:
    # The hub module's own table of the leaderboard's sources: ids, configs and splits as the fetch stage reads them.
    for folder, (repo_id, config, splits) in BENCHMARKS.items():
        write_dataset_repo(root, repo_id, {config: {split: files[f"benchmarks/{folder}/{split}"] for split in splits}})
    # MATH: the tiny world's problems dealt over the seven subject configs, train and test kept apart.
    subjects: dict[str, dict[str, list]] = {s: {"train": [], "test": []} for s in MATH_SUBJECTS}
    for split in ("train", "test"):
        for i, row in enumerate(files[f"math/{split}"]):
            subjects[MATH_SUBJECTS[i % len(MATH_SUBJECTS)]][split].append(row)
    write_dataset_repo(root, "EleutherAI/hendrycks_math", subjects)
    fineweb = [{"text": row["text"], "id": f"<urn:uuid:{i:08d}>", "dump": "CC-MAIN-2024-10",
                "url": f"https://tiny.world/{i}", "date": "2024-02-21T00:00:00Z", "file_path": "s3://tiny/0.warc.gz",
                "language": "en", "language_score": 0.95, "token_count": len(row["text"].split()),
                "score": 3.0, "int_score": 3} for i, row in enumerate(files["pretrain/train"])]
    write_dataset_repo(root, "HuggingFaceFW/fineweb-edu", {"sample-10BT": {"train": fineweb}})
    alpaca = [{**row, "text": f"{row['instruction']}\n{row['input']}\n{row['output']}"} for row in files["alpaca_gpt4/train"]]
    write_dataset_repo(root, "vicgalle/alpaca-gpt4", {None: {"train": alpaca}})
    write_dataset_repo(root, "Open-Orca/OpenOrca", {None: {"train": files["open_orca/train"]}})
    from solar_ray.data.registry import FLAN_SUBMIXES

    for submix, repo_id in FLAN_SUBMIXES.items():
        write_dataset_repo(root, repo_id, {None: {"train": files[f"flan_collection/{submix}/train"]}})
    write_dataset_repo(root, "Intel/orca_dpo_pairs", {None: {"train": files["orca_dpo_pairs/train"]}})
    write_dataset_repo(root, "allenai/ultrafeedback_binarized_cleaned", {None: {
        split: files[f"ultrafeedback_binarized/{split}"] for split in ("train_prefs", "test_prefs", "train_sft", "test_sft")}})


def write_mistral(out: Path, texts: list[str], seed: int) -> None:
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    shape = dict(MISTRAL_SHAPE)
    raw = metaspace_bpe(texts, list(MISTRAL_SPECIALS), 1024)
    raw.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                        model_max_length=1000000000000000019884624838656)  # as Mistral's config
    build_tiny_model(
        out, tokenizer, architecture="mistral", seed=seed, layers=shape.pop("num_hidden_layers"),
        hidden=shape.pop("hidden_size"), intermediate=shape.pop("intermediate_size"),
        heads=shape.pop("num_attention_heads"), kv_heads=shape.pop("num_key_value_heads"),
        head_dim=shape.pop("head_dim"), max_positions=shape.pop("max_position_embeddings"),
        tie=shape.pop("tie_word_embeddings"), generation={"bos_token_id": 1, "eos_token_id": 2}, **shape,
    )


def write_qwen(out: Path, texts: list[str], seed: int) -> None:
    import torch
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=metaspace_bpe(texts, specials, 1024), eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", model_max_length=131072)
    tokenizer.chat_template = CHATML
    torch.manual_seed(seed + 1)
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in specials}
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), bos_token_id=ids["<|endoftext|>"],
                                         eos_token_id=ids["<|im_end|>"], **QWEN_SHAPE))
    model.generation_config = GenerationConfig(eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
                                               pad_token_id=ids["<|endoftext|>"], do_sample=True, temperature=0.7, top_p=0.8)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
