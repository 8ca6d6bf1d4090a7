"""Benchmark `solar-ray upscale` against `cp` of its output, and its peak RSS, on synthetic fp16 Llama checkpoints.

    .venv/bin/python bench/bench_upscale.py                # DUS, 0.25 GiB and 0.9 GiB bases, 3 repeats, in $TMPDIR
    .venv/bin/python bench/bench_upscale.py --dir /data --repeats 5 --layers 16 32
    .venv/bin/python bench/bench_upscale.py --methods dus dus_average stack block_expansion --layers 8 \
        --mergekit /tmp/mkvenv/bin/mergekit-yaml          # every method, side by side with mergekit 0.1.5

Methods: dus (M = n/4), dus_average (M = n/4), stack (n -> 2n), block_expansion (P = n/4). With --mergekit, each
method mergekit can express runs on the same base through its passthrough merge (DUS and stacking as layer
slices, block expansion as slices with `scale: 0` on o_proj / down_proj, as LLaMA-Pro users write it; mergekit
has no averaged DUS), timed the same way, and `max |diff|` compares the two outputs tensor by tensor.

Targets (issue 3): upscale wall time <= 1.5x `cp -r` of the output directory on the same disk, and peak RSS
< 300 MB whatever the model size. Reference from the issue: mergekit 0.1.5's passthrough up-scale of such a
checkpoint took 11.7 s and 2.5 GB peak RSS, `cp` of the 1.2 GB output 2.0 s.

The base is written straight as safetensors bytes (random finite fp16 values; content is irrelevant to a byte copy),
2 shards, Llama geometry: hidden 2048, 32 heads (8 KV heads), intermediate 2048, vocab 32000, untied.
16 layers -> 0.9 GiB base, 1.3 GB output at M = n/4. Both timings run with the page cache warm (the base was just
written, the output was just written), which is how a follow-on stage reads them. Everything is deleted at the end.
The upscale wall time includes interpreter + CLI start and lineage.json's content hashes (artifacts.write_lineage
hashes the base, which has no lineage of its own, and the output); both are shown apart, measured the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from solar_ray.artifacts import content_hash

HIDDEN, KV, INTERMEDIATE, VOCAB = 2048, 512, 2048, 32000  # KV = 8 KV heads x head_dim 64


def llama_tensors(layers: int) -> list[tuple[str, list[int]]]:
    names = [("model.embed_tokens.weight", [VOCAB, HIDDEN])]
    for i in range(layers):
        p = f"model.layers.{i}."
        names += [
            (p + "input_layernorm.weight", [HIDDEN]), (p + "self_attn.q_proj.weight", [HIDDEN, HIDDEN]),
            (p + "self_attn.k_proj.weight", [KV, HIDDEN]), (p + "self_attn.v_proj.weight", [KV, HIDDEN]),
            (p + "self_attn.o_proj.weight", [HIDDEN, HIDDEN]), (p + "post_attention_layernorm.weight", [HIDDEN]),
            (p + "mlp.gate_proj.weight", [INTERMEDIATE, HIDDEN]), (p + "mlp.up_proj.weight", [INTERMEDIATE, HIDDEN]),
            (p + "mlp.down_proj.weight", [HIDDEN, INTERMEDIATE]),
        ]
    return names + [("model.norm.weight", [HIDDEN]), ("lm_head.weight", [VOCAB, HIDDEN])]


def write_base(path: Path, layers: int, shards: int = 2) -> int:
    """A Llama checkpoint of random fp16 bytes; returns its size in bytes."""
    path.mkdir(parents=True)
    tensors = llama_tensors(layers)
    per_shard = -(-len(tensors) // shards)
    weight_map, total = {}, 0
    # 16 MiB of finite fp16 noise (random bytes would hold NaNs and infinities, which averaging and mergekit's
    # `scale: 0` do not treat alike), reused: generation speed is not what we measure
    import numpy as np

    block = (np.random.default_rng(0).standard_normal(1 << 23) * 0.02).astype(np.float16).tobytes()
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        items, header, offset = tensors[s * per_shard:(s + 1) * per_shard], {}, 0
        for tensor, shape in items:
            nbytes = 2 * shape[0] * (shape[1] if len(shape) > 1 else 1)
            header[tensor] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
            weight_map[tensor] = name
            offset += nbytes
        raw = json.dumps(header).encode()
        raw += b" " * (-len(raw) % 8)
        with (path / name).open("wb") as fh:
            fh.write(struct.pack("<Q", len(raw)) + raw)
            left = offset
            while left:
                left -= fh.write(block[: min(len(block), left)])
        total += offset
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
              "intermediate_size": INTERMEDIATE, "num_attention_heads": 32, "num_key_value_heads": 8,
              "num_hidden_layers": layers, "vocab_size": VOCAB, "max_position_embeddings": 4096,
              "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "torch_dtype": "float16"}
    (path / "config.json").write_text(json.dumps(config))
    return sum(p.stat().st_size for p in path.iterdir())


def timed(cmd: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in bytes) of one child process, read from its own rusage via wait4."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()}")
    return wall, usage.ru_maxrss * 1024  # Linux reports KiB


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def mergekit_slices(method: str, base: Path, n: int) -> str | None:
    """mergekit 0.1.5 passthrough YAML doing what `method` does, or None where mergekit has no equivalent."""
    def piece(first: int, last: int, identity: bool = False) -> str:
        text = f"  - sources:\n      - model: {base}\n        layer_range: [{first}, {last}]\n"
        if identity:
            text += ("        parameters:\n          scale:\n            - {filter: o_proj, value: 0.0}\n"
                     "            - {filter: down_proj, value: 0.0}\n            - {value: 1.0}\n")
        return text

    m = p = n // 4
    if method == "dus":
        pieces = [piece(0, n - m), piece(m, n)]
    elif method == "stack":
        pieces = [piece(0, n), piece(0, n)]
    elif method == "block_expansion":
        group = n // p
        pieces = [text for g in range(p) for text in (piece(g * group, (g + 1) * group),
                                                      piece((g + 1) * group - 1, (g + 1) * group, identity=True))]
    else:
        return None
    return "slices:\n" + "".join(pieces) + "merge_method: passthrough\ndtype: float16\n"


def bench(root: Path, layers: int, repeats: int, method: str = "dus", mergekit: str | None = None) -> dict:
    base, out, copy = root / f"base{layers}", root / f"up{layers}", root / f"cp{layers}"
    base_bytes = write_base(base, layers) if not base.exists() else dir_bytes(base)
    upscale_runs, cp_runs, reference, difference = [], [], [], None
    startup = statistics.median(timed([sys.executable, "-m", "solar_ray.cli", "--help"])[0] for _ in range(3))
    slices = mergekit_slices(method, base, layers) if mergekit else None
    for _ in range(repeats):  # both write to a fresh directory, as a first run does
        shutil.rmtree(out, ignore_errors=True)
        upscale_runs.append(timed([sys.executable, "-m", "solar_ray.cli", "upscale", str(base), str(out),
                                   "--method", method]))
        shutil.rmtree(copy, ignore_errors=True)
        cp_runs.append(timed(["cp", "-r", str(out), str(copy)]))
        if slices:
            theirs = root / "mergekit_out"
            (root / "mergekit.yml").write_text(slices)
            shutil.rmtree(theirs, ignore_errors=True)
            reference.append(timed([mergekit, str(root / "mergekit.yml"), str(theirs), "--no-copy-tokenizer"]))
            compared = subprocess.run([sys.executable, str(Path(__file__).with_name("bench_merge.py")), "--compare",
                                       str(out), str(theirs)], check=True, capture_output=True, text=True)
            difference = float(compared.stdout.strip())
            shutil.rmtree(theirs)
    lineage = json.loads((out / "lineage.json").read_text())
    start = time.perf_counter()
    content_hash(base), content_hash(out)  # what write_lineage hashes: the raw base (no lineage.json) and OUT
    hashing = time.perf_counter() - start
    row = {
        "method": method,
        "layers": f"{layers} -> {lineage['metrics']['layers_after']}",
        "base GiB": base_bytes / 2**30,
        "output GB": dir_bytes(out) / 1e9,
        "upscale s": statistics.median(w for w, _ in upscale_runs),
        "cp s": statistics.median(w for w, _ in cp_runs),
        "peak RSS MB": max(r for _, r in upscale_runs) / 1e6,
        "copy phase s": lineage["metrics"]["seconds"],  # inside the stage, before hashing + lineage
        "lineage hash s": hashing,
        "CLI start s": startup,
    }
    row["ratio"] = row["upscale s"] / row["cp s"]
    if mergekit:
        row["mergekit s"] = statistics.median(w for w, _ in reference) if reference else "-"
        row["mergekit MB"] = max(r for _, r in reference) / 1e6 if reference else "-"
        row["max |diff|"] = "-" if difference is None else f"{difference:.3g}"
    for path in (out, copy):
        shutil.rmtree(path, ignore_errors=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=None, help="Where to write (default: a temp dir).")
    parser.add_argument("--layers", type=int, nargs="+", default=[4, 16], help="Base layer counts to try.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs per measurement (median time, max RSS).")
    parser.add_argument("--methods", nargs="+", default=["dus"],
                        choices=["dus", "dus_average", "stack", "block_expansion"], help="Up-scaling methods to time.")
    parser.add_argument("--mergekit", default=None, help="a mergekit-yaml executable to time side by side")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench_upscale_", dir=args.dir))
    try:
        rows = [bench(root, layers, args.repeats, method, args.mergekit)
                for layers in args.layers for method in args.methods]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="solar-ray upscale vs cp (median of runs; target ratio <= 1.5, RSS < 300 MB)")
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()))
    Console(width=200).print(table)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (timings are wall clock)")
    print("reference (issue 3): mergekit 0.1.5 passthrough 11.7 s, 2.5 GB peak RSS; cp of 1.2 GB output 2.0 s")


if __name__ == "__main__":
    main()
