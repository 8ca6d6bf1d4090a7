"""solar_ray.patches.deepspeed_comm: a CPU training worker starts DeepSpeed's comm without its shared-memory op."""

import importlib
import inspect
import subprocess
import sys
import textwrap

from solar_ray.local_head import free_port

PROBE = textwrap.dedent("""
    import os, sys
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1], RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
    from solar_ray.patches.deepspeed_comm import skip_cpu_shm_op
    skip_cpu_shm_op()
    skip_cpu_shm_op()  # twice: still one replacement
    import importlib
    import deepspeed.comm as dist, torch
    ds_torch = importlib.import_module("deepspeed.comm.torch")
    dist.init_distributed(dist_backend="gloo")
    tensor = torch.ones(3)
    dist.all_reduce(tensor)
    backend = importlib.import_module("deepspeed.comm.comm").cdb
    print("shm_op", backend.shm_comm_op is not None, "sum", tensor.sum().item(),
          "skipped", getattr(ds_torch.build_shm_op, "skipped", False))
""")


def test_a_cpu_process_group_starts_without_building_the_shared_memory_op(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), "DS_ACCELERATOR": "cpu",
           "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", PROBE, str(free_port())], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "shm_op False sum 3.0 skipped True" in out.stdout
    # Nothing was compiled: the extension dir DeepSpeed would build into stays empty.
    assert not (tmp_path / "ext").exists() or not any((tmp_path / "ext").rglob("*.so"))


def test_the_comm_backend_still_builds_the_op_through_the_replaced_function():
    # The patch replaces a module-level function that TorchBackend.__init__ looks up by name: if DeepSpeed moves
    # the build elsewhere, the replacement silently stops working (and the 30-45 s compile is back).
    ds_torch = importlib.import_module("deepspeed.comm.torch")
    source = inspect.getsource(ds_torch.TorchBackend.__init__)
    assert "self.shm_comm_op = build_shm_op()" in source
