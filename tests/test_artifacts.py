import json
from pathlib import Path

import pytest

from solar_ray.artifacts import (
    artifact_hash,
    atomic_dir,
    content_hash,
    read_lineage,
    redact,
    require_model_dir,
    write_lineage,
)
from solar_ray.errors import ArtifactError


def test_atomic_dir_renames_on_success_and_cleans_on_failure(tmp_path):
    out = tmp_path / "art"
    with atomic_dir(out) as tmp:
        (tmp / "x.txt").write_text("x")
        assert not out.exists()
    assert (out / "x.txt").read_text() == "x"

    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "broken") as tmp:
        (tmp / "half").write_text("partial")
        raise RuntimeError("killed")
    assert not (tmp_path / "broken").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["art"]


def test_atomic_dir_refuses_existing_unless_forced(tmp_path):
    out = tmp_path / "art"
    out.mkdir()
    (out / "old").write_text("old")
    with pytest.raises(ArtifactError, match="already exists"), atomic_dir(out):
        pass
    with atomic_dir(out, force=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new"]


def test_lineage_records_parents_hashes_and_redacts_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_supersecretvalue")
    parent = tmp_path / "parent"
    with atomic_dir(parent) as tmp:
        (tmp / "w").write_bytes(b"abc")
        write_lineage(tmp, "tiny", {"seed": 0})
    child = tmp_path / "child"
    with atomic_dir(child) as tmp:
        (tmp / "w").write_bytes(b"def")
        write_lineage(tmp, "upscale", {"note": "token hf_supersecretvalue"}, parents={"base": parent})
    record = read_lineage(child)
    assert record["parents"][0]["content_hash"] == read_lineage(parent)["content_hash"] == content_hash(parent)
    assert record["content_hash"] == artifact_hash(child)
    assert "hf_supersecretvalue" not in (child / "lineage.json").read_text()
    assert record["config"]["note"] == "token ***"
    assert json.loads((child / "lineage.json").read_text())["stage"] == "upscale"


def test_content_hash_changes_with_content(tmp_path):
    (tmp_path / "a").write_bytes(b"1")
    first = content_hash(tmp_path)
    (tmp_path / "a").write_bytes(b"2")
    assert content_hash(tmp_path) != first


def test_redact_walks_nested_objects():
    assert redact({"a": ["x secret123 y"]}, ["secret123"]) == {"a": ["x *** y"]}


def test_require_model_dir_refuses_pickle_unless_allowed(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80")
    with pytest.raises(ArtifactError, match="pickle"):
        require_model_dir(tmp_path)
    assert require_model_dir(tmp_path, allow_pickle=True) == tmp_path
    with pytest.raises(ArtifactError, match="not found"):
        require_model_dir(tmp_path / "missing")


def test_atomic_dir_removes_temp_dirs_left_by_killed_runs(tmp_path):
    stale = tmp_path / ".art.tmp-deadbeef"
    stale.mkdir()
    (stale / "partial").write_text("x")
    with atomic_dir(tmp_path / "art") as tmp:
        (tmp / "done").write_text("y")
    assert not stale.exists() and (tmp_path / "art" / "done").exists()


def test_external_inputs_are_fingerprinted_by_name_size_and_mtime(tmp_path):
    from solar_ray.artifacts import artifact_hash

    (tmp_path / "w.safetensors").write_bytes(b"1234")
    first = artifact_hash(tmp_path)
    assert first.startswith("files:") and artifact_hash(tmp_path) == first
    (tmp_path / "w.safetensors").write_bytes(b"12345")
    assert artifact_hash(tmp_path) != first
    assert artifact_hash(tmp_path / "missing") is None


def test_atomic_dir_removes_trash_left_between_replace_and_delete(tmp_path):
    trash = tmp_path / ".art.old-deadbeef"  # a run killed after renaming the old copy aside, before deleting it
    trash.mkdir()
    (trash / "weights").write_bytes(b"0" * 100)
    with atomic_dir(tmp_path / "art") as tmp:
        (tmp / "done").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_output_that_is_or_holds_an_input_is_refused(tmp_path):
    from solar_ray.artifacts import refuse_output_among_inputs

    model = tmp_path / "m"
    for output in (model, tmp_path / "." / "m", tmp_path):
        with pytest.raises(ArtifactError, match=r"would overwrite input base \("):
            refuse_output_among_inputs(output, {"base": model})
    with pytest.raises(ArtifactError, match="would overwrite input other"):
        refuse_output_among_inputs(tmp_path / "y", {"base": tmp_path / "x", "other": tmp_path / "y" / "z"})
    # Siblings, and an output inside an input's directory (nothing of the input is replaced), are fine.
    refuse_output_among_inputs(tmp_path / "merged", {"base": model, "other": tmp_path / "m2"})
    refuse_output_among_inputs(model / "merged", {"base": model})


def test_lineage_says_which_processor_and_torch_kernels_made_the_artifact(tmp_path):
    """One seed's models match to the bit only on the same kind of CPU: lineage names it, so two runs that differ
    can be told apart by where they ran."""
    import platform

    import torch

    with atomic_dir(tmp_path / "a") as tmp:
        write_lineage(tmp, "tiny", {})
    record = read_lineage(tmp_path / "a")["machine"]
    assert record["arch"] == platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        assert f"model name\t: {record['cpu']}\n" in cpuinfo.read_text()
    assert record["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["torch_cpu_capability"] in {"DEFAULT", "NO AVX", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256"}


def test_lineage_of_a_stage_without_torch_does_not_load_it(tmp_path):
    """The merge command stays numpy-only (seconds saved per merge): recording the machine must not import torch."""
    import subprocess
    import sys

    script = ("import sys; from solar_ray.artifacts import atomic_dir, write_lineage, read_lineage\n"
              "from pathlib import Path\nwith atomic_dir(Path(sys.argv[1])) as tmp:\n    write_lineage(tmp, 'tiny', {})\n"
              "print(sorted(read_lineage(Path(sys.argv[1]))['machine']), 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a")], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "['arch', 'cpu'] False", result.stdout + result.stderr
