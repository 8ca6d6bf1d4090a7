"""solar_ray.train.worker.quiet_known_warnings: the per-step torch deprecation DeepSpeed's all-gather triggers is
filtered, other FutureWarnings are not. Fails when torch stops warning (then the filter can go)."""

import warnings

import pytest
import torch
import torch.distributed as dist

from solar_ray.train.worker import quiet_known_warnings


@pytest.fixture()
def process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def gather_warnings(quiet: bool) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if quiet:
            quiet_known_warnings()
        out = torch.zeros(4)
        dist.all_gather_into_tensor(out, torch.ones(4))
        warnings.warn("another deprecation", FutureWarning, stacklevel=1)
    return [w for w in caught if issubclass(w.category, FutureWarning)]


def test_only_the_all_gather_deprecation_is_filtered(process_group):
    loud = [str(w.message) for w in gather_warnings(quiet=False)]
    assert any("all_gather_into_tensor" in m for m in loud), loud  # torch still warns: the filter still matters
    quiet = [str(w.message) for w in gather_warnings(quiet=True)]
    assert quiet == ["another deprecation"]
