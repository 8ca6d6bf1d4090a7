"""`stage: contamination` - the reference-model neighbour test of SOLAR Table 9.

Method, per benchmark (ARC, MMLU, TruthfulQA, GSM8K):
  1. Draw `examples` test items (default 100) by a shuffle seeded with `seed` (not the first rows: MMLU's test
     file is sorted by subject), each as text: question + gold answer.
  2. Keep the first `prefix_ratio` (default 0.4) of the words; the reference model samples `neighbours`
     (default 100) continuations of that prefix, each as long (in tokens) as the example's own remainder.
  3. Under the tested model, compute the mean token loss of the example and of each neighbour.
  4. score = fraction of neighbours whose loss is below the example's. A memorised example is more likely than
     its neighbours, so its score is near 0.
  5. Report "result < 0.1": the fraction of examples with score < 0.1, printed as Table 9 prints it (0.06 ...
     0.70). Near 1 means likely contaminated; the paper reads > 0.9 as contaminated.
Work is split by examples over Ray actors; each holds both models, samples neighbours and scores them.
On GPU (device auto on a cluster with GPUs or an autoscaler that adds them) each actor takes `gpus_per_worker`
GPUs and loads both models in bfloat16 (10.7B: 2 x 21 GB, on two GPUs when it has two), one actor per GPU
share; on CPU, float32, one actor per `cpus_per_worker` CPUs (the evaluation's dtype rule,
`evaluate.runner.weights_dtype`). The paper's defaults (100 x 100) are hours on CPU: the tiny configs use a
handful of each. The planner sizes an actor the same way (`workload`).

Writes OUTPUT/results.json (per benchmark: figure, per-example scores and losses), table.md, table.csv,
lineage.json. Raises ArtifactError for a model dir that does not load, DataError for missing benchmark files or
fields, before any sampling.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from solar_ray.config import LocalPath, StageConfig
from solar_ray.evaluate.runner import weights_dtype
from solar_ray.evaluate.suites import TASKS, gold_text

TESTED = ("arc_challenge", "mmlu", "truthfulqa_mc2", "gsm8k")  # Table 9's benchmarks; files and gold answers:
# the benchmark registry (evaluate/suites.py)
THRESHOLD = 0.1
SCORE_BATCH = 32  # texts the tested model scores at once (an example and its neighbours)


class Config(StageConfig):
    stage: Literal["contamination"] = "contamination"
    model: LocalPath = Field(description="Model directory under test.")
    reference: LocalPath = Field(description="Reference model directory that samples the neighbours (Table 9: the "
                           "continued-pretrained SOLAR 10.7B, 'We set SOLAR 10.7B as our reference model').")
    data_dir: LocalPath = Field(description="Benchmark files: <data_dir>/<benchmark>/<split>.jsonl (WORLD/data/benchmarks).")
    benchmarks: list[Literal["arc_challenge", "mmlu", "truthfulqa_mc2", "gsm8k"]] = Field(
        default=list(TESTED), description="Benchmarks to test (Table 9: ARC, MMLU, TruthfulQA, GSM8K).")
    examples: int = Field(default=100, ge=1, description="Benchmark examples tested per benchmark (paper: 100).")
    neighbours: int = Field(default=100, ge=1, description="Neighbours sampled per example (paper: 100).")
    prefix_ratio: float = Field(default=0.4, gt=0, lt=1, description="Share of an example's words kept as prefix.")
    temperature: float = Field(default=1.0, gt=0, description="Sampling temperature of the reference model.")
    workers: int | None = Field(default=None, description="Ray actors; default: as many as the cluster's GPUs "
                                "(or CPUs, on CPU) allow.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: GPU when the cluster has GPUs or an autoscaler that adds them, else CPU.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Weights dtype of both models; auto: bfloat16 on GPU, float32 on CPU.")
    gpus_per_worker: int = Field(default=1, ge=1, le=2, description="GPUs per actor on GPU; with 2 the reference "
                                 "and the tested model sit on one GPU each.")
    cpus_per_worker: float = Field(default=1, gt=0, description="CPUs per actor (torch threads on CPU).")
    seed: int = Field(default=0, description="Seed of the example draw (a shuffle of each benchmark's test rows) "
                      "and of the neighbour sampling (per example: seed + example index).")


def load_examples(data_dir: str | Path, key: str, count: int, seed: int = 0) -> list[str]:
    """`count` examples of a benchmark drawn by a shuffle seeded with `seed`: the test the paper follows samples
    at random, and benchmark files are often sorted (MMLU's test rows by subject), so the first rows are not a
    sample."""
    from solar_ray.errors import DataError
    from solar_ray.evaluate.tasks import read_rows

    spec = TASKS[key]
    path = Path(data_dir) / spec.folder / f"{spec.eval_split}.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: file not found; the contamination test of {key} reads "
                        f"{spec.folder}/{spec.eval_split}.jsonl")
    import random

    rows = list(enumerate(read_rows(path), 1))
    random.Random(seed).shuffle(rows)
    texts = []
    for number, row in rows[:count]:
        try:
            texts.append(gold_text(key, row))
        except (KeyError, ValueError, IndexError, TypeError) as exc:
            raise DataError(f"{path}: row {number}: no question + gold answer for {key} ({exc!r})") from None
    return texts


def split_prefix(text: str, ratio: float) -> str:
    words = text.split()
    return " ".join(words[: max(1, math.ceil(ratio * len(words)))])


def score_examples(example_losses: list[float], neighbour_losses: list[list[float]]) -> list[float]:
    """Per example: the fraction of its neighbours with lower loss than itself."""
    return [sum(n < own for n in ns) / len(ns) for own, ns in zip(example_losses, neighbour_losses, strict=True)]


def contamination_figure(scores: list[float]) -> float:
    """'result < 0.1': the fraction of examples whose score is below 0.1 (Table 9 prints 0.06 ... 0.70)."""
    return sum(s < THRESHOLD for s in scores) / len(scores)


def _worker_cls():
    import ray

    @ray.remote
    class NeighbourWorker:
        """Holds the reference model (samples neighbours) and the tested model (scores losses)."""

        def __init__(self, reference: str, model: str, threads: int, device: str = "cpu", dtype: str = "float32"):
            import torch

            from solar_ray.artifacts import load_model

            torch.set_num_threads(threads)
            self.ref_device, self.model_device = model_devices(device)
            self.ref, self.ref_tok = load_model(reference, dtype=getattr(torch, dtype))
            self.ref.to(self.ref_device).eval()
            self.model, self.tok = load_model(model, dtype=getattr(torch, dtype))
            self.model.to(self.model_device).eval()

        def run(self, texts: list[str], neighbours: int, ratio: float, temperature: float, seed: int):
            """-> [(example loss, [neighbour losses])] for `texts`."""
            return [self._one(text, neighbours, ratio, temperature, seed + i) for i, text in enumerate(texts)]

        def _one(self, text, neighbours, ratio, temperature, seed):
            import torch

            prefix = split_prefix(text, ratio)
            prefix_ids = self.ref_tok(prefix, return_tensors="pt").input_ids.to(self.ref_device)
            total = len(self.ref_tok(text).input_ids)
            new_tokens = max(1, total - prefix_ids.shape[1])
            torch.manual_seed(seed)
            with torch.no_grad():
                out = self.ref.generate(
                    prefix_ids, attention_mask=torch.ones_like(prefix_ids), do_sample=True, temperature=temperature,
                    top_k=0, top_p=1.0, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                    num_return_sequences=neighbours, pad_token_id=self.ref_tok.pad_token_id or self.ref_tok.eos_token_id)
            texts = self.ref_tok.batch_decode(out, skip_special_tokens=True)
            losses = self.losses([text, *texts])
            return losses[0], losses[1:]

        def losses(self, texts: list[str], batch: int = SCORE_BATCH) -> list[float]:
            """Mean token loss of each text under the tested model (padding masked out)."""
            import torch

            tok = self.tok
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            out: list[float] = []
            for start in range(0, len(texts), batch):
                enc = tok(texts[start:start + batch], return_tensors="pt", padding=True).to(self.model_device)
                with torch.no_grad():
                    logits = self.model(**enc).logits[:, :-1].float()  # [B, T-1, V]
                targets = enc.input_ids[:, 1:]
                mask = enc.attention_mask[:, 1:].float()
                nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # [B, T-1]
                out.extend(((nll * mask).sum(1) / mask.sum(1).clamp(min=1)).tolist())
            return out

    return NeighbourWorker


def model_devices(device: str) -> tuple[str, str]:
    """(reference's device, tested model's device) inside an actor: with two visible GPUs, one model on each."""
    if device != "cuda":
        return "cpu", "cpu"
    import torch

    if not torch.cuda.is_available():
        from solar_ray.errors import SolarRayError

        raise SolarRayError("contamination: this Ray actor was given a GPU by Ray but torch sees no CUDA device "
                            f"(torch {torch.__version__}, CUDA {torch.version.cuda}); install a CUDA build of torch "
                            "on the GPU nodes, or set device: cpu")
    return "cuda:0", f"cuda:{min(1, torch.cuda.device_count() - 1)}"


def plan_workers(config: Config, gpu: bool, cluster_cpus: float, gpus: float, examples: int) -> dict[str, Any]:
    """How many actors, with which Ray resources, device and dtype. On GPU one actor per `gpus_per_worker`
    GPUs; on CPU one per `cpus_per_worker` CPUs; never more actors than examples of the largest benchmark."""
    if gpu:
        share = gpus // config.gpus_per_worker
        options = {"num_cpus": config.cpus_per_worker, "num_gpus": config.gpus_per_worker}
    else:
        share = cluster_cpus // config.cpus_per_worker
        options = {"num_cpus": config.cpus_per_worker, "num_gpus": 0}
    workers = config.workers or max(1, min(int(share), examples))
    dtype = weights_dtype(config.dtype, gpu)
    return {"workers": workers, "options": options, "device": "cuda" if gpu else "cpu", "dtype": dtype,
            "threads": max(1, int(config.cpus_per_worker))}


def measure(config: Config) -> dict[str, Any]:
    """Run the test; returns {benchmark: {"name", "figure", "scores", "example_losses", "neighbour_losses"}}."""
    import ray

    from solar_ray.capacity import ensure_capacity, gpus_obtainable, gpus_reachable
    from solar_ray.evaluate.runner import check_models
    from solar_ray.ray_session import cluster_cpus, init_ray

    check_models({"model": config.model, "reference": config.reference})
    examples = {key: load_examples(config.data_dir, key, config.examples, config.seed) for key in config.benchmarks}
    init_ray()
    on_gpu = _on_gpu(config)
    gpu = on_gpu if on_gpu is not None else gpus_obtainable()
    plan = plan_workers(config, gpu, cluster_cpus(), gpus_reachable() if gpu else 0,
                        max(len(texts) for texts in examples.values()))
    workers = plan["workers"]
    ensure_capacity(f"stage 'contamination' ({Path(config.output or 'contamination').name})",
                    [{"CPU": plan["options"]["num_cpus"], "GPU": plan["options"]["num_gpus"]}] * workers)
    worker_cls = _worker_cls()
    pool = [worker_cls.options(**plan["options"]).remote(config.reference, config.model, plan["threads"],
                                                         plan["device"], plan["dtype"]) for _ in range(workers)]
    try:
        futures = {}
        for key, texts in examples.items():
            # Contiguous chunks per actor; seeds follow the example index so results do not depend on `workers`.
            size = math.ceil(len(texts) / workers)
            futures[key] = [pool[i].run.remote(texts[s:s + size], config.neighbours, config.prefix_ratio,
                                               config.temperature, config.seed + s)
                            for i, s in enumerate(range(0, len(texts), size))]
        results = {}
        for key, parts in futures.items():
            try:
                done = ray.get(parts)
            except ray.exceptions.RayError as exc:
                from solar_ray.errors import remote_cause

                raise remote_cause(exc) from None
            pairs = [pair for part in done for pair in part]
            own = [p[0] for p in pairs]
            neighbours = [p[1] for p in pairs]
            scores = score_examples(own, neighbours)
            results[key] = {"name": TASKS[key].name, "figure": contamination_figure(scores), "scores": scores,
                            "example_losses": own, "neighbour_losses": neighbours}
        return results
    finally:
        for worker in pool:
            ray.kill(worker)


def table(results: dict[str, Any], model: str) -> str:
    names = [r["name"] for r in results.values()]
    lines = ["| Model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names),
             f"| {model} (result < 0.1) | " + " | ".join(f"{r['figure']:.2f}" for r in results.values()) + " |"]
    return "\n".join(lines) + "\n"


def run(config: Config) -> Path:
    from solar_ray.artifacts import atomic_dir, refuse_existing_output, write_json, write_lineage

    out = Path(config.output or "runs/contamination")
    refuse_existing_output(out, config.force)
    results = measure(config)
    with atomic_dir(out, force=config.force) as tmp:
        write_json(tmp / "results.json", results)
        (tmp / "table.md").write_text(table(results, Path(config.model).name))
        (tmp / "table.csv").write_text("benchmark,result_below_0.1\n"
                                       + "".join(f"{r['name']},{r['figure']:.4f}\n" for r in results.values()))
        write_lineage(tmp, "contamination", config.model_dump(mode="json"),
                      parents={"model": config.model, "reference": config.reference},
                      metrics={f"{r['name']}/result_below_0.1": r["figure"] for r in results.values()})
    print(table(results, Path(config.model).name))
    return out


# ------------------------------------------------------------------ the stage contract (solar_ray/contract.py)


def _on_gpu(config: Config) -> bool | None:
    """True or False where the config says; None for auto: on GPUs where the cluster has or can get them."""
    return {"cuda": True, "cpu": False}.get(config.device)


def needs(config: Config):
    from solar_ray.contract import StageNeeds

    unit = {True: "GPU share", False: "CPU", None: "GPU share, or CPU without GPUs"}[_on_gpu(config)]
    if config.workers is None:
        return StageNeeds(whole_cluster=True, what=f"Ray actors, one per {unit}")
    return StageNeeds(workers=config.workers, cpus_per_worker=config.cpus_per_worker,
                      gpus_per_worker=config.gpus_per_worker, on_gpu=_on_gpu(config),
                      what=f"{config.workers} Ray actor{'s' if config.workers != 1 else ''} ({unit})")


def workload(config: Config, models):
    """Each actor holds both models in the dtype it loads them in (bfloat16 on GPU, float32 on CPU, unless the
    config says), the reference's KV cache while it samples one example's neighbours, and the tested model's
    logits while it scores a batch of them; with two GPUs per actor each model sits on its own GPU. FLOPs: 2 per
    parameter per sampled or scored token. With device auto the plan puts it on GPUs where the cluster has a GPU
    node type, else on CPU actors, as the stage itself does."""
    from solar_ray.contract import Workload
    from solar_ray.plan.estimate import dtype_bytes, unknown

    on_gpu = _on_gpu(config)
    model, reference = models.shape(config.model), models.shape(config.reference)
    if model is None or reference is None:
        return unknown("cpu" if on_gpu is False else "gpu", config.workers, "model or reference")
    text = models.note("contamination_tokens", "{value} tokens per benchmark example and per neighbour")
    examples = len(config.benchmarks) * config.examples
    tokens = examples * (config.neighbours + 1) * text
    flops = 2 * (model.params + reference.params) * tokens
    work = f"{examples} examples x {config.neighbours} neighbours"

    def actor(gpu: bool) -> Workload:
        dtype = weights_dtype(config.dtype, gpu)
        nbytes = dtype_bytes(dtype, 4)
        sampling = {f"reference ({dtype})": nbytes * reference.params,
                    "neighbour KV cache": config.neighbours * text * reference.kv_bytes_per_token(nbytes)}
        scoring = {f"model ({dtype})": nbytes * model.params,
                   "scoring logits": SCORE_BATCH * text * model.vocab * (nbytes + 4)}  # and their float32 copy
        if gpu and config.gpus_per_worker == 2:  # one model per GPU: the fuller GPU is the device to fit
            memory = max(sampling, scoring, key=lambda parts: sum(parts.values()))
        else:
            memory = {**sampling, **scoring}
        per_worker = config.gpus_per_worker if gpu else 1
        return Workload(device="gpu" if gpu else "cpu", devices=config.workers and config.workers * per_worker,
                        per_worker=per_worker, cpus_per_device=config.cpus_per_worker, memory=memory,
                        infer_flops=flops, work=work)

    if on_gpu is None:
        return dataclasses.replace(actor(True), gpu_optional=True, on_cpu=actor(False))
    return actor(on_gpu)
