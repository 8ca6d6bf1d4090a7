"""Artifact directories: atomic writes, `lineage.json`, content hashes, safetensors-only model I/O.

Every stage writes one directory. A model artifact is a Hugging Face model directory (config.json, sharded
safetensors + index, tokenizer files, generation config) plus `lineage.json`:

    {"stage", "config", "parents": [{"name", "path", "content_hash"}], "metrics", "content_hash",
     "packages", "git_revision", "created_at"}

Writes go to a temporary sibling that is renamed into place at the end, so a killed run leaves no output.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from solar_ray.errors import ArtifactError

LINEAGE = "lineage.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
TRACKED_PACKAGES = (
    "solar-ray", "torch", "ray", "transformers", "trl", "deepspeed", "datasets", "lm-eval", "safetensors", "vllm",
)
# Environment variables whose values must never be written into lineage, reports or logs: a name holding one of
# these anywhere (PGPASSWORD, AWS_SECRET_ACCESS_KEY, GH_TOKEN, DB_PASSWD) ...
SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "APIKEY", "API_KEY", "PRIVATE_KEY")
# ... or one of these short words as a whole `_`-separated word: WANDB_KEY but not KEYBOARD, SMTP_PASS but not
# PASSTHROUGH, MYSQL_PWD, GITHUB_AUTH.
SECRET_WORDS = ("KEY", "PASS", "PWD", "AUTH", "PAT", "CREDENTIALS")
# Names the rules above match that are not secrets: the working directory, and the tokenizers' thread switch.
NOT_SECRETS = ("PWD", "OLDPWD", "TOKENIZERS_PARALLELISM")


@contextlib.contextmanager
def atomic_dir(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `out`; on success rename it to `out`, on any error delete it.

    Raises ArtifactError if `out` exists and `force` is False.
    """
    out = Path(out)
    refuse_existing_output(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Left by a run killed mid-write (tmp) or between replacing and deleting the old copy (old). Another driver's
    # in-progress directory is safe only because drivers lock the output root first (solar_ray.output_root).
    for stale in [*out.parent.glob(f".{out.name}.tmp-*"), *out.parent.glob(f".{out.name}.old-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            trash = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(trash)
            tmp.rename(out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def refuse_existing_output(out: str | Path, force: bool) -> None:
    """ArtifactError when `out` exists and `force` is off. A stage calls it before its work starts (atomic_dir
    checks again when the work is done)."""
    if Path(out).exists() and not force:
        raise ArtifactError(f"{out}: output already exists (pass --force / force: true to replace it)")


def refuse_output_among_inputs(output: str | Path, inputs: Mapping[str, str | Path]) -> None:
    """ArtifactError when the output directory is an input or holds one: replacing it (with force) would delete
    the stage's own input while the stage reads it, and its lineage would name itself as its parent."""
    out = Path(output).resolve()
    for role, path in inputs.items():
        source = Path(path).resolve()
        if out == source or out in source.parents:
            raise ArtifactError(f"{output}: the output would overwrite input {role} ({path}); write to another directory")


def content_hash(directory: str | Path) -> str:
    """Hash of every file's relative path and bytes, lineage.json excluded.

    xxh3-128 rather than sha256: it runs at memory speed, so hashing a freshly written 20 GB model costs seconds.
    It identifies content for caching; it is not a security signature.
    """
    import xxhash

    directory = Path(directory)
    digest = xxhash.xxh3_128()
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != LINEAGE):
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def machine() -> dict[str, str]:
    """The processor that computed an artifact. Float kernels differ between instruction sets (AVX2, AVX-512), so
    one seed's models are the same to the bit only on the same kind of CPU with the same packages: a run compared
    with another says where each was made."""
    import platform

    record = {"arch": platform.machine(), "cpu": platform.processor() or "unknown"}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                record["cpu"] = line.split(":", 1)[1].strip()
                break
    # The kernel level is torch's to tell, and only where the stage loaded torch: importing it costs seconds, which
    # the numpy-only merge command exists to avoid. The report joins a machine's artifacts by processor, so an
    # artifact without the field still shares its machine's row.
    torch = sys.modules.get("torch")
    if torch is not None:
        record["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return record


def git_revision() -> str | None:
    """The solar-ray checkout's commit, when running from one."""
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def is_secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (hub token, cloud key, password)."""
    upper = name.upper()
    if upper in NOT_SECRETS:
        return False
    return any(marker in upper for marker in SECRET_MARKERS) or bool(set(upper.split("_")) & set(SECRET_WORDS))


def secret_values() -> list[str]:
    """Values of secret-looking environment variables (hub tokens, cloud keys), longest first."""
    values = {value for key, value in os.environ.items() if len(value) >= 6 and is_secret_name(key)}
    return sorted(values, key=len, reverse=True)


def redact(obj: Any, secrets: list[str] | None = None) -> Any:
    """A copy of a JSON-like object with every secret value replaced by '***'."""
    secrets = secret_values() if secrets is None else secrets
    if not secrets:
        return obj
    if isinstance(obj, str):
        for secret in secrets:
            obj = obj.replace(secret, "***")
        return obj
    if isinstance(obj, Mapping):
        return {key: redact(value, secrets) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(value, secrets) for value in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON through a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def write_lineage(
    directory: str | Path,
    stage: str,
    config: Mapping[str, Any],
    parents: Mapping[str, str | Path] | None = None,
    metrics: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write `lineage.json` into an artifact directory (call it last, inside `atomic_dir`). Returns the record.

    `parents` maps a role (e.g. "model", "reference") to an artifact path; each parent's content hash is read from
    its own lineage.json when it has one, else computed.
    """
    directory = Path(directory)
    parent_records = []
    for name, path in (parents or {}).items():
        parent_records.append({"name": name, "path": str(path), "content_hash": artifact_hash(path)})
    record = {
        "stage": stage,
        "config": dict(config),
        "parents": parent_records,
        "metrics": dict(metrics or {}),
        **extra,
        "content_hash": content_hash(directory),
        "packages": package_versions(),
        "machine": machine(),
        "git_revision": git_revision(),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    record = redact(record)
    write_json(directory / LINEAGE, record)
    return record


def read_lineage(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / LINEAGE
    if not path.is_file():
        raise ArtifactError(f"{directory}: not a solar-ray artifact (no {LINEAGE})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None


def file_fingerprint(directory: str | Path) -> str:
    """Identity of a directory that is not a solar-ray artifact: file names, sizes and modification times.

    Used for external inputs (a downloaded base checkpoint): re-reading 20 GB of someone else's weights on every
    run would cost more than the stage; a changed file still changes its size or mtime.
    """
    import xxhash

    directory = Path(directory)
    digest = xxhash.xxh3_128()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(directory)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return "files:" + digest.hexdigest()


def artifact_hash(directory: str | Path) -> str | None:
    """The content hash recorded in an artifact's lineage; for a directory without lineage (an external input)
    its file fingerprint; for a single file its content hash; None if it is missing."""
    directory = Path(directory)
    if (directory / LINEAGE).is_file():
        recorded = read_lineage(directory).get("content_hash")
        if recorded:
            return recorded
    if directory.is_dir():
        return file_fingerprint(directory)
    if directory.is_file():
        import xxhash

        return xxhash.xxh3_128(directory.read_bytes()).hexdigest()
    return None


# ------------------------------------------------------------------------------------------ model I/O


def require_model_dir(path: str | Path, allow_pickle: bool = False) -> Path:
    """Check that `path` is a local HF model directory with safetensors weights (pickle only if allowed)."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path}: model directory not found")
    if not (path / "config.json").is_file():
        raise ArtifactError(f"{path}: not a Hugging Face model directory (no config.json)")
    has_safetensors = any(path.glob("*.safetensors"))
    pickles = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if not has_safetensors:
        if pickles and not allow_pickle:
            raise ArtifactError(
                f"{path}: only pickle weights ({pickles[0]}); loading pickle can run arbitrary code - convert to "
                "safetensors or pass --allow-pickle if you trust this file"
            )
        if not pickles:
            raise ArtifactError(f"{path}: no weights found (expected *.safetensors)")
    return path


def save_model(model: Any, tokenizer: Any, out: str | Path, max_shard_size: str = "2GB") -> None:
    """Save a transformers model (+ tokenizer) as a HF directory with sharded safetensors only."""
    model.save_pretrained(out, safe_serialization=True, max_shard_size=max_shard_size)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)


def load_model(path: str | Path, dtype: Any = None, allow_pickle: bool = False, trust_remote_code: bool = False):
    """Load (model, tokenizer) from a local model artifact: safetensors unless allowed, no remote code unless asked."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = require_model_dir(path, allow_pickle=allow_pickle)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype or "auto", use_safetensors=not allow_pickle, trust_remote_code=trust_remote_code
    )
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    return model, tokenizer
