"""Merge speed and peak memory on synthetic fp16 checkpoints of 0.82 GiB each, against mergekit 0.1.5.

    .venv/bin/python bench/bench_merge.py                 # every method, 1 run each
    .venv/bin/python bench/bench_merge.py --repeat 3 --threads 2 --dir /tmp --methods linear slerp
    .venv/bin/python bench/bench_merge.py --repeat 3 --mergekit /tmp/mkvenv/bin/mergekit-yaml   # side by side
    .venv/bin/python bench/bench_merge.py --size small --mergekit /tmp/mkvenv/bin/mergekit-yaml  # busy machine

Methods: linear (0.5, 0.5) and SLERP (t=0.5) of models a and b; task arithmetic (weights 0.7, 0.4, lambda 0.8),
TIES (density 0.5, weights 1, 0.5), DARE linear and DARE TIES (density 0.5, seed 0) and model stock, each on
base a and fine-tunes b, c. With --mergekit, a `max |ours - mergekit|` column compares the two outputs over every
tensor (in a child process, so the comparison's memory is not counted against later runs): a few float16 units
in the last place is the two tools' different rounding; DARE's drop is random in both tools, so its masks (and
that column) differ by design. TIES differs by more than rounding at a few entries (measured on the tests' tiny
fp16 models: 34 of 100,800 entries by more than 1e-3): mergekit forms the deltas in float16, where an entry just
above the k-th largest magnitude can round onto it, and its sort then breaks that tie the other way; the other
small differences are mergekit's float16 sums. `--size small` (67M parameters, 0.13 GiB) keeps a run short on a busy machine.

With --mergekit (the `mergekit-yaml` of a separate venv: python -m venv /tmp/mkvenv; /tmp/mkvenv/bin/pip install
torch==2.13.0 mergekit==0.1.5), mergekit runs on the same inputs in the same run, interleaved with ours, and
the speed-up is against that measurement (--no-copy-tokenizer: the synthetic inputs have none).

Each merge runs as its own `solar-ray merge` process; its peak RSS is that child's ru_maxrss (os.wait4, the
per-child RUSAGE_CHILDREN figure) and its time is the process's wall clock, start-up and imports included, as
for the mergekit reference (issue 4, measured on the same inputs: 11.2 s linear, 16.7 s SLERP, 1.6 GB peak RSS).
"merge s" is the merge alone, from the artifact's lineage; "CPU s" the child's user + system time, which a busy
machine inflates less than wall time. The inputs are Llama-shaped (vocab 32000, hidden 2048,
intermediate 5632, 6 layers: 439.5M parameters = 0.82 GiB in fp16), two shards each, random and independent (so
SLERP takes its full spherical path, never the colinear fallback), with a lineage.json like any solar-ray
artifact. Every run starts after `sync`; a last row times `cp -r` of one input, the least any tool spends
writing a 0.82 GiB output on this disk at that moment. Everything generated is deleted at the end.
The load average is printed: on a shared machine other jobs take CPU from every row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MERGEKIT = {"linear": (11.2, 1600.0), "slerp": (16.7, 1600.0)}  # seconds, peak RSS MB (issue 4)
SIZES = {"full": (32000, 2048, 5632, 6), "small": (8000, 1024, 2816, 4)}  # vocab, hidden, intermediate, layers
VOCAB, HIDDEN, INTERMEDIATE, LAYERS = SIZES["full"]
# per method: (our CLI arguments, the models it reads, mergekit's YAML); {a} {b} {c} are the model dirs
CASES = {
    "linear": (["--method", "linear", "--model", "{a}:0.5", "--model", "{b}:0.5"], "ab",
               "merge_method: linear\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5}}\n"
               "  - model: {b}\n    parameters: {{weight: 0.5}}\ndtype: float16\n"),
    "slerp": (["--method", "slerp", "--model", "{a}", "--model", "{b}", "--t", "0.5"], "ab",
              "merge_method: slerp\nbase_model: {a}\nmodels:\n  - model: {a}\n  - model: {b}\n"
              "parameters: {{t: 0.5}}\ndtype: float16\n"),
    "task_arithmetic": (["--method", "task_arithmetic", "--model", "{a}", "--model", "{b}:0.7", "--model", "{c}:0.4",
                         "--lambda", "0.8"], "abc",
                        "merge_method: task_arithmetic\nbase_model: {a}\nmodels:\n  - model: {b}\n"
                        "    parameters: {{weight: 0.7}}\n  - model: {c}\n    parameters: {{weight: 0.4}}\n"
                        "parameters: {{lambda: 0.8}}\ndtype: float16\n"),
    "ties": (["--method", "ties", "--model", "{a}", "--model", "{b}:1.0", "--model", "{c}:0.5", "--density", "0.5"],
             "abc", "merge_method: ties\nbase_model: {a}\nmodels:\n  - model: {b}\n"
             "    parameters: {{weight: 1.0, density: 0.5}}\n  - model: {c}\n    parameters: {{weight: 0.5, density: 0.5}}\n"
             "dtype: float16\n"),
    "dare_linear": (["--method", "dare_linear", "--model", "{a}", "--model", "{b}", "--model", "{c}", "--density",
                     "0.5"], "abc", "merge_method: dare_linear\nbase_model: {a}\nmodels:\n  - model: {b}\n"
                    "    parameters: {{weight: 1.0, density: 0.5}}\n  - model: {c}\n"
                    "    parameters: {{weight: 1.0, density: 0.5}}\ndtype: float16\n"),
    "dare_ties": (["--method", "dare_ties", "--model", "{a}", "--model", "{b}", "--model", "{c}", "--density", "0.5"],
                  "abc", "merge_method: dare_ties\nbase_model: {a}\nmodels:\n  - model: {b}\n"
                  "    parameters: {{weight: 1.0, density: 0.5}}\n  - model: {c}\n"
                  "    parameters: {{weight: 1.0, density: 0.5}}\ndtype: float16\n"),
    "model_stock": (["--method", "model_stock", "--model", "{a}", "--model", "{b}", "--model", "{c}"], "abc",
                    "merge_method: model_stock\nbase_model: {a}\nmodels:\n  - model: {b}\n  - model: {c}\n"
                    "dtype: float16\n"),
}


def max_abs_difference(ours: Path, theirs: Path) -> float:
    """max |ours - theirs| over every tensor the two outputs share (float64)."""
    import torch
    from safetensors import safe_open

    def tensors(model_dir: Path):
        for shard in sorted(model_dir.glob("*.safetensors")):
            with safe_open(shard, "pt") as fh:
                for name in fh.keys():
                    yield name, shard

    theirs_at = dict(tensors(theirs))
    worst = 0.0
    for name, shard in tensors(ours):
        if name in theirs_at:
            with safe_open(shard, "pt") as fa, safe_open(theirs_at[name], "pt") as fb:
                a, b = fa.get_tensor(name), fb.get_tensor(name)
            if a.dtype == b.dtype and a.view(-1).view(torch.uint8).equal(b.view(-1).view(torch.uint8)):
                continue  # the same bits (random-byte inputs hold NaNs, which never compare equal)
            worst = max(worst, (a.double() - b.double()).abs().max().item())
    return worst


def tensor_shapes() -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (VOCAB, HIDDEN)}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes[f"{p}self_attn.{proj}.weight"] = (HIDDEN, HIDDEN)
        shapes[f"{p}mlp.gate_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[f"{p}mlp.up_proj.weight"] = (INTERMEDIATE, HIDDEN)
        shapes[f"{p}mlp.down_proj.weight"] = (HIDDEN, INTERMEDIATE)
        shapes[f"{p}input_layernorm.weight"] = (HIDDEN,)
        shapes[f"{p}post_attention_layernorm.weight"] = (HIDDEN,)
    shapes["model.norm.weight"] = (HIDDEN,)
    shapes["lm_head.weight"] = (VOCAB, HIDDEN)
    return shapes


def write_checkpoint(out: Path, seed: int) -> int:
    """A random fp16 Llama-shaped checkpoint in two safetensors shards + index + config.json. Returns bytes."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True)
    generator = torch.Generator().manual_seed(seed)
    shapes = list(tensor_shapes().items())
    halves = [shapes[: len(shapes) // 2], shapes[len(shapes) // 2:]]
    weight_map, total = {}, 0
    for number, items in enumerate(halves, start=1):
        name = f"model-{number:05d}-of-00002.safetensors"
        tensors = {k: (torch.randn(shape, generator=generator) * 0.02).half() for k, shape in items}
        save_file(tensors, out / name, metadata={"format": "pt"})
        total += sum(t.numel() * 2 for t in tensors.values())
        weight_map.update({k: name for k in tensors})
        del tensors
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
              "hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE, "num_hidden_layers": LAYERS,
              "num_attention_heads": 16, "num_key_value_heads": 16, "torch_dtype": "float16"}
    (out / "config.json").write_text(json.dumps(config))
    # Like every solar-ray artifact, the inputs carry a lineage.json with their content hash, so the merge's
    # lineage reads their hashes instead of re-hashing 1.6 GB of inputs.
    from solar_ray.artifacts import write_lineage

    write_lineage(out, "synthetic", {"seed": seed, "shapes": "llama vocab 32000 hidden 2048 6 layers"})
    return total


def run_merge(args: list[str]) -> tuple[float, float, float]:
    """Run `solar-ray merge ...` as a child; (wall seconds, CPU seconds, peak RSS MB) of that child."""
    return run_child([str(Path(sys.executable).with_name("solar-ray")), "merge", *args])


def run_child(command: list[str]) -> tuple[float, float, float]:
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a chatty child (progress bars) cannot block
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # ru_maxrss of this child alone, in KiB on Linux
        seconds = time.perf_counter() - started
        log.seek(0)
        output = log.read().decode(errors="replace")[-4000:]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"merge failed ({proc.returncode}): {' '.join(command)}\n{output}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def copy_floor(src: Path, dst: Path) -> float:
    """Seconds to copy one input checkpoint in a child: the least any merge tool spends writing its output."""
    os.sync()
    started = time.perf_counter()
    subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(dst)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="runs per method; the table shows the fastest")
    parser.add_argument("--threads", type=int, default=None, help="merge threads (default: all usable cores)")
    parser.add_argument("--dir", default=None, help="where to write the synthetic checkpoints (default: $TMPDIR)")
    parser.add_argument("--mergekit", default=None, help="a mergekit-yaml executable to time side by side")
    parser.add_argument("--methods", nargs="+", default=list(CASES), choices=list(CASES), help="methods to run")
    parser.add_argument("--size", choices=list(SIZES), default="full", help="full: 0.82 GiB per model; small: 0.13")
    parser.add_argument("--generate", nargs=3, metavar=("DIR", "SEED", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--compare", nargs=2, metavar=("OURS", "THEIRS"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    global VOCAB, HIDDEN, INTERMEDIATE, LAYERS
    if opts.compare:
        print(max_abs_difference(Path(opts.compare[0]), Path(opts.compare[1])))
        return
    if opts.generate:
        VOCAB, HIDDEN, INTERMEDIATE, LAYERS = SIZES[opts.generate[2]]
        write_checkpoint(Path(opts.generate[0]), int(opts.generate[1]))
        return

    root = Path(tempfile.mkdtemp(prefix="bench_merge_", dir=opts.dir))
    try:
        started = time.perf_counter()
        # Generated in a child: on Linux a child's ru_maxrss starts at its parent's RSS at fork, so this process
        # must never hold the checkpoints' tensors itself or every merge would appear to use that much memory.
        needed = sorted({m for method in opts.methods for m in CASES[method][1]})
        for name in needed:
            subprocess.run([sys.executable, __file__, "--generate", str(root / name), str(ord(name) - 96), opts.size],
                           check=True)
        sizes = [json.loads((root / n / "model.safetensors.index.json").read_text())["metadata"]["total_size"]
                 for n in needed]
        print(f"inputs: {len(needed)} x {sizes[0] / 2**30:.3f} GiB fp16 ({sizes[0] // 2:,} parameters each), "
              f"generated in {time.perf_counter() - started:.1f} s; cores usable: {len(os.sched_getaffinity(0))}")
        extra = ["--threads", str(opts.threads)] if opts.threads else []
        dirs = {n: root / n for n in "abc"}
        rows = []
        for method in opts.methods:
            template, _, yaml = CASES[method]
            args = [arg.format(**dirs) for arg in template]
            best, reference, difference = None, None, None
            config = root / f"mergekit_{method}.yml"
            config.write_text(yaml.format(**dirs))
            for _ in range(opts.repeat):
                out = root / f"out_{method}"
                os.sync()  # start every run with no dirty pages of ours waiting for the disk
                load = os.getloadavg()[0]
                seconds, cpu, rss = run_merge([str(out), *args, *extra, "--force"])
                merge_seconds = json.loads((out / "lineage.json").read_text())["metrics"]["seconds"]
                if best is None or seconds < best[0]:
                    best = (seconds, merge_seconds, cpu, rss, load)
                if opts.mergekit:
                    threads = ["-j", str(opts.threads)] if opts.threads else []
                    theirs = root / f"mergekit_{method}"
                    os.sync()
                    ref_s, _, ref_mb = run_child([opts.mergekit, str(config), str(theirs), "--no-copy-tokenizer",
                                                  *threads])
                    if reference is None or ref_s < reference[0]:
                        reference = (ref_s, ref_mb)
                    compared = subprocess.run([sys.executable, __file__, "--compare", str(out), str(theirs)],
                                              check=True, capture_output=True, text=True)
                    difference = float(compared.stdout.strip())
                    shutil.rmtree(theirs)
                shutil.rmtree(out)
            rows.append((method, *best, reference or MERGEKIT.get(method, (float("nan"), float("nan"))), difference))
        floor = copy_floor(root / "a", root / "copy")
        ref_note = ("mergekit 0.1.5, measured in this run on the same inputs (fastest of the repeats)" if opts.mergekit
                    else "mergekit 0.1.5 (issue 4)")
        print(f"\n{'method':<15} {'mergekit s':>10} {'ours s':>8} {'merge s':>8} {'CPU s':>6} {'speed-up':>9} "
              f"{'peak RSS MB':>12} {'mergekit MB':>12} {'max |diff|':>11} {'load avg':>9}  targets (>= 3x, < 600 MB)")
        for method, seconds, merge_seconds, cpu, rss, load, (ref_s, ref_mb), difference in rows:
            speedup = ref_s / seconds
            verdict = "met" if speedup >= 3 and rss < 600 else "NOT met"
            shown = "-" if difference is None else f"{difference:.3g}"
            print(f"{method:<15} {ref_s:>10.1f} {seconds:>8.2f} {merge_seconds:>8.2f} {cpu:>6.2f} {speedup:>8.1f}x "
                  f"{rss:>12.0f} {ref_mb:>12.0f} {shown:>11} {load:>9.1f}  {verdict}")
        print(f"{'cp -r':<15} {'':>10} {floor:>8.2f} {'':>8} {'':>6} {'':>9} {'':>12} {'':>12} {'':>11} "
              f"{os.getloadavg()[0]:>9.1f}  copying one input: this machine's floor for writing the output now")
        print(f"\nreference: {ref_note}; ours = whole `solar-ray merge` process (start-up and lineage hashing "
              "included), merge s = the merge alone, CPU s = the process's user + system time")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
