"""Seam diagnostics: which M joins the two copies most smoothly (the way Yi-9B chose its duplicated layers).

In the up-scaled model, output layer n-M (base layer M, first of the second copy) reads the hidden state that base
layer n-M-1 wrote, although in training it only ever read what base layer M-1 wrote. On calibration text we
measure, per candidate M, the cosine similarity between those two hidden states:

    seam(M) = mean over tokens of cos(h[n-M], h[M])    h[k] = hidden state entering base layer k (h[0] = embeddings)

1.0 means the second copy sees what it expects; lower means a rougher seam for continued pretraining to repair.
Parameter counts per M come from the shard headers (no weights needed).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from solar_ray.artifacts import atomic_dir
from solar_ray.errors import ArtifactError, DataError
from solar_ray.tensors import layout
from solar_ray.tensors.safetensors_io import read_checkpoint
from solar_ray.upscale import plans
from solar_ray.upscale.stage import inspect_base, map_tensors

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
BUILTIN_TEXTS = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Depth up-scaling copies a model, drops some layers from each copy and stacks the rest.",
    "In the morning the market opens early and the traders gather around the screens.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "She counted the apples: three red ones, four green ones and two yellow ones.",
    "The library closes at nine, so the students hurried to return their books.",
    "A triangle has three sides and its angles add up to one hundred and eighty degrees.",
    "Rain fell all night, and by dawn the streets were shining under the lamps.",
)


def calibration_texts(base: Path, text_file: Path | None, limit: int) -> tuple[list[str], str]:
    """Texts to measure on, and where they came from: --text file, else the tiny world's pretrain validation split
    next to the base, else a built-in list."""
    candidates = [text_file] if text_file else [base.parent / "data" / "pretrain" / "validation.jsonl"]
    for path in candidates:
        if path is None:
            continue
        if not path.is_file():
            if text_file:
                raise DataError(f"{path}: calibration text file not found")
            continue
        texts = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            if path.suffix == ".jsonl":
                try:
                    texts.append(json.loads(line)["text"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise DataError(f"{path}:{number}: expected a JSON object with a 'text' field") from None
            else:
                texts.append(line)
            if len(texts) >= limit:
                break
        if not texts:
            raise DataError(f"{path}: no calibration text (expected one text per line, or .jsonl rows with 'text')")
        return texts, str(path)
    return list(BUILTIN_TEXTS[:limit]), "built-in sentences"


def parameter_counts(base: Path, allow_pickle: bool = False) -> dict[int, int]:
    """Parameters of the up-scaled model for every valid M, from shard headers only."""
    config, arch, pickles = inspect_base(base, allow_pickle)
    if pickles:
        return {}
    n = layout.layer_count(config, arch, str(base / "config.json"))
    tensors = read_checkpoint(base)
    tied = layout.is_tied(config, arch)
    return {m: sum(ref.numel for _, ref in map_tensors(tensors, arch, plans.dus(n, m), tied, base))
            for m in range(1, (n - 1) // 2 + 1)}


def seam_similarity(base: Path, texts: list[str], max_tokens: int = 128, allow_pickle: bool = False) -> dict[int, float]:
    """seam(M) for every valid M (1 <= M, 2M < n): token-mean cosine of h[n-M] and h[M] (see module docstring)."""
    import torch

    from solar_ray.artifacts import load_model

    model, tokenizer = load_model(base, dtype=torch.float32, allow_pickle=allow_pickle)
    model.eval()
    n = model.config.num_hidden_layers
    sums = {m: 0.0 for m in range(1, (n - 1) // 2 + 1)}
    tokens = 0
    with torch.no_grad():
        for text in texts:  # one text at a time: no padding to mask, and memory stays at one sequence
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens)["input_ids"]
            if ids.shape[1] == 0:
                continue
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states  # n+1 x [1, T, hidden]
            for m in sums:
                sums[m] += torch.nn.functional.cosine_similarity(hidden[n - m][0], hidden[m][0], dim=-1).sum().item()
            tokens += ids.shape[1]
    if tokens == 0:
        raise DataError(f"{base}: the calibration texts tokenize to nothing; pass --text with real text")
    return {m: total / tokens for m, total in sums.items()}


def seam_report(base: Path, out: Path, text_file: Path | None = None, limit: int = 64, force: bool = False,
                allow_pickle: bool = False) -> tuple[Path, list[dict]]:
    """Write report.md, seam.csv and seam.png for every candidate M into `out`. Returns (out, rows)."""
    config, arch, _ = inspect_base(base, allow_pickle)
    n = layout.layer_count(config, arch, str(base / "config.json"))
    if not any((base / name).is_file() for name in TOKENIZER_FILES):
        raise ArtifactError(f"{base}: no tokenizer ({' / '.join(TOKENIZER_FILES)}); seam diagnostics tokenize "
                            "calibration text - copy the base's tokenizer files into it")
    if n < 3:
        raise ArtifactError(f"{base}: {n} layers leave no valid M (need 1 <= M and 2M < n)")
    texts, source = calibration_texts(base, text_file, limit)
    similarity = seam_similarity(base, texts, allow_pickle=allow_pickle)
    params = parameter_counts(base, allow_pickle)
    rows = [
        {"drop": m, "layers": 2 * (n - m), "seam_layers": f"{n - m - 1} -> {m}", "cosine": round(cos, 4),
         "params": params.get(m)}
        for m, cos in similarity.items()
    ]
    with atomic_dir(out, force=force) as tmp:
        with (tmp / "seam.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        _plot(rows, n, tmp / "seam.png")
        best = max(rows, key=lambda r: r["cosine"])
        lines = [
            f"# Seam diagnostics for {base}", "",
            f"{n} layers; calibration: {len(texts)} texts from {source}. seam(M) = mean cosine similarity of the "
            "hidden state leaving base layer n-M-1 and the one entering base layer M (what the second copy's first "
            "layer expects).", "",
            "| M (drop) | layers 2(n-M) | seam (base layers) | cosine | parameters |", "|---|---|---|---|---|",
            *(f"| {r['drop']} | {r['layers']} | {r['seam_layers']} | {r['cosine']:.4f} | "
              f"{r['params'] if r['params'] is None else format(r['params'], ',')} |" for r in rows),
            "", f"Smoothest seam: M={best['drop']} ({best['layers']} layers). The paper used M = n/4 (8 of 32).",
            "", "![seam](seam.png)", "",
        ]
        (tmp / "report.md").write_text("\n".join(lines))
    return out, rows


def _plot(rows: list[dict], n: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["drop"] for r in rows], [r["cosine"] for r in rows], marker="o")
    ax.set_xlabel("M (layers dropped from each copy)")
    ax.set_ylabel("seam cosine similarity")
    ax.set_title(f"Depth up-scaling seam, {n}-layer base")
    ax.grid(alpha=0.3)
    top = ax.secondary_xaxis("top", functions=(lambda m: 2 * (n - m), lambda layers: n - layers / 2))
    top.set_xlabel("layers after up-scaling")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

