"""The lineage graph of a pipeline's artifacts: a PNG (matplotlib) and a mermaid block for the markdown."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def layers(parents: dict[str, set[str]]) -> dict[str, int]:
    """Depth of each node: 0 for roots, else 1 + the deepest parent."""
    depth: dict[str, int] = {}

    def visit(node: str) -> int:
        if node not in depth:
            depth[node] = 1 + max((visit(p) for p in parents.get(node, ())), default=-1)
        return depth[node]

    for node in parents:
        visit(node)
    return depth


def plot_lineage(parents: dict[str, set[str]], kinds: dict[str, str], out: Path) -> Path:
    """Draw stages left to right by depth, one column per depth, edges from parent to child."""
    depth = layers(parents)
    columns: dict[int, list[str]] = {}
    for node in sorted(depth, key=lambda n: (depth[n], n)):
        columns.setdefault(depth[node], []).append(node)
    height = max(len(nodes) for nodes in columns.values())
    position = {
        node: (d, (height - 1) / 2 - i) for d, nodes in columns.items() for i, node in enumerate(nodes)
    }
    fig, ax = plt.subplots(figsize=(2.2 * len(columns) + 1, 0.55 * height + 1.5))
    for child, ps in parents.items():
        for parent in ps:
            (x0, y0), (x1, y1) = position[parent], position[child]
            ax.annotate("", xy=(x1 - 0.32, y1), xytext=(x0 + 0.32, y0),
                        arrowprops={"arrowstyle": "->", "color": "#888", "lw": 0.8})
    palette = plt.get_cmap("tab10")
    kind_colour = {kind: palette(i % 10) for i, kind in enumerate(sorted(set(kinds.values())))}
    for node, (x, y) in position.items():
        ax.text(x, y, node, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.3", "fc": kind_colour[kinds.get(node, "")], "alpha": 0.35})
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylim(-height / 2 - 0.5, height / 2 + 0.5)
    ax.axis("off")
    ax.set_title("Artifact lineage (colour = stage kind)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def mermaid(parents: dict[str, set[str]]) -> str:
    lines = ["```mermaid", "graph LR"]
    for child in sorted(parents):
        for parent in sorted(parents[child]):
            lines.append(f"  {parent} --> {child}")
        if not parents[child]:
            lines.append(f"  {child}")
    lines.append("```")
    return "\n".join(lines)
