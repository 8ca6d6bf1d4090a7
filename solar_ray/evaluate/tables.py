"""Paper-style score tables (SOLAR Tables 2-7): models side by side, one column per task plus H6, best in bold.

Input: {model: summary} where a summary is `scores.summarize`'s output. Values print as percentages.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

COLUMNS = ("H6", "ARC", "HellaSwag", "MMLU", "TruthfulQA", "Winogrande", "GSM8K")


def columns_of(summaries: dict[str, dict[str, Any]]) -> list[str]:
    present = {name for summary in summaries.values() for name in summary}
    return [c for c in COLUMNS if c in present]


def best_per_column(summaries: dict[str, dict[str, Any]], columns: list[str]) -> dict[str, float]:
    return {c: max(s[c]["value"] for s in summaries.values() if c in s) for c in columns}


def markdown_table(summaries: dict[str, dict[str, Any]]) -> str:
    columns = columns_of(summaries)
    best = best_per_column(summaries, columns)
    lines = ["| Model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for model, summary in summaries.items():
        cells = []
        for c in columns:
            if c not in summary:
                cells.append("-")
                continue
            text = f"{100 * summary[c]['value']:.2f}"
            cells.append(f"**{text}**" if summary[c]["value"] == best[c] else text)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(summaries: dict[str, dict[str, Any]], path: Path) -> None:
    columns = columns_of(summaries)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["model", *columns, *(f"{c}_stderr" for c in columns)])
        for model, s in summaries.items():
            values = [f"{100 * s[c]['value']:.4f}" if c in s else "" for c in columns]
            errors = [f"{100 * s[c]['stderr']:.4f}" if c in s and s[c]["stderr"] is not None else "" for c in columns]
            writer.writerow([model, *values, *errors])


def bar_chart(summaries: dict[str, dict[str, Any]], path: Path, title: str = "Open LLM Leaderboard v1 (H6)") -> None:
    """Grouped bars: one group per column, one bar per model, stderr as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = columns_of(summaries)
    width = 0.8 / max(1, len(summaries))
    fig, ax = plt.subplots(figsize=(1.2 * len(columns) + 2 + 0.3 * len(summaries), 4))
    for i, (model, s) in enumerate(summaries.items()):
        xs = [j + i * width for j in range(len(columns))]
        values = [100 * s[c]["value"] if c in s else 0 for c in columns]
        errors = [100 * (s[c]["stderr"] or 0) if c in s else 0 for c in columns]
        ax.bar(xs, values, width, yerr=errors, capsize=2, label=model)
    ax.set_xticks([j + width * (len(summaries) - 1) / 2 for j in range(len(columns))], columns)
    ax.set_ylabel("score (%)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_tables(summaries: dict[str, dict[str, Any]], out: Path) -> None:
    (out / "table.md").write_text(markdown_table(summaries))
    write_csv(summaries, out / "table.csv")
    bar_chart(summaries, out / "h6.png")
