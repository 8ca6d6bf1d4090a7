"""Task arithmetic, TIES, DARE and model stock against float64 references written from their definitions.

mergekit 0.1.5 cannot be installed next to the project (other torch pins), so each reference below restates the
method in float64 numpy, as mergekit's generalized task arithmetic and model stock define it; our merge (float32
arithmetic, one rounding to float16) must land within one float16 unit in the last place of it. DARE is compared
with its drop mask fixed (the reference asks our seeded generator for the mask), and its rescale is checked
statistically.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from solar_ray.errors import ConfigError
from solar_ray.merge import merge_into_model, merge_state_dicts
from solar_ray.merge.methods.task_vectors import dare_keep
from solar_ray.merge.stage import Config, run
from tests.merge.conftest import load_state

HALF_ULP = 2**-10  # float16: 10 mantissa bits -> one unit in the last place is 2^-10 relative


def merge_on_disk(tmp_path, method, paths, weights=None, densities=None, name="out", **parameters):
    models = {}
    for i, path in enumerate(paths):
        models[f"m{i}"] = {"path": str(path), "weight": (weights or {}).get(i), "density": (densities or {}).get(i)}
    return load_state(run(Config(output=str(tmp_path / name), method=method, models=models, parameters=parameters)))


def assert_within_half_rounding(merged: torch.Tensor, reference: np.ndarray, name: str) -> None:
    got = merged.double().numpy()
    err = np.abs(got - reference)
    bound = HALF_ULP * np.abs(reference) + 2**-24
    assert (err <= bound).all(), f"{name}: max err {err.max():.3g} (worst at {np.argmax(err - bound)})"


# ------------------------------------------------------------------------------- references (float64 numpy)


def deltas_of(states, name):
    base = states[0][name].double().numpy().ravel()
    return base, [s[name].double().numpy().ravel() - base for s in states[1:]]


def ref_task_vectors(base, deltas, weights, lam=1.0, normalize=False, consensus=False, keeps=None, rescale=None):
    """x_0 + lambda * mix(w_i * sparsified d_i): mergekit's generalized task arithmetic, in float64."""
    deltas = [d.copy() for d in deltas]
    for i, d in enumerate(deltas):
        if keeps is not None:
            d[~keeps[i]] = 0.0
        if rescale is not None:
            d /= rescale[i]
    weighted = np.stack([w * d for w, d in zip(weights, deltas, strict=True)])
    w = np.asarray(weights, dtype=np.float64)[:, None]
    if consensus:
        elected = np.where(weighted.sum(0) >= 0, 1.0, -1.0)
        agree = np.sign(weighted) == elected
        mixed = (weighted * agree).sum(0)
        divisor = (w * agree).sum(0)
        divisor[divisor == 0] = 1.0
    else:
        mixed = weighted.sum(0)
        divisor = w.sum() if abs(w.sum()) >= 1e-8 else 1.0
    if normalize:
        mixed = mixed / divisor
    return base + lam * mixed


def top_k_keep(delta, density):
    """The int(density * n) largest |d| (a stable sort: among equal magnitudes the earlier entries)."""
    k = int(density * delta.size)
    keep = np.zeros(delta.size, dtype=bool)
    keep[np.argsort(-np.abs(delta), kind="stable")[:k]] = True
    return keep


def ref_model_stock(base, others):
    deltas = [o - base for o in others]
    n = len(others)
    cosines = [np.clip(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-6), -1, 1)
               for a, b in itertools.combinations(deltas, 2)]
    cos = float(np.mean(cosines))
    t = n * cos / (1 + (n - 1) * cos)
    return t * np.mean(others, axis=0) + (1 - t) * base


# ------------------------------------------------------------------------------------------------ methods


def test_task_arithmetic_matches_reference(tmp_path, models):
    paths = [models["a16"], models["b16"], models["c16"]]
    merged = merge_on_disk(tmp_path, "task_arithmetic", paths, weights={1: 0.7, 2: 0.4}, **{"lambda": 0.8})
    states = [load_state(p) for p in paths]
    for name in merged:
        base, deltas = deltas_of(states, name)
        reference = ref_task_vectors(base, deltas, [0.7, 0.4], lam=0.8).reshape(merged[name].shape)
        assert merged[name].dtype == torch.float16
        assert_within_half_rounding(merged[name], reference, name)


def test_ties_matches_reference(tmp_path, models):
    """Trim (global density 0.4, model 2's own 0.6), elect the sign, disjoint mean, lambda 1.2."""
    paths = [models["a16"], models["b16"], models["c16"]]
    merged = merge_on_disk(tmp_path, "ties", paths, weights={1: 1.0, 2: 0.5}, densities={2: 0.6},
                           density=0.4, **{"lambda": 1.2})
    states = [load_state(p) for p in paths]
    trimmed_somewhere = False
    for name in merged:
        base, deltas = deltas_of(states, name)
        keeps = [top_k_keep(deltas[0], 0.4), top_k_keep(deltas[1], 0.6)]
        trimmed_somewhere |= not keeps[0].all()
        reference = ref_task_vectors(base, deltas, [1.0, 0.5], lam=1.2, normalize=True, consensus=True,
                                     keeps=keeps).reshape(merged[name].shape)
        assert_within_half_rounding(merged[name], reference, name)
    assert trimmed_somewhere


def test_ties_breaks_magnitude_ties_by_position_across_chunks():
    """3000 entries of 4 magnitudes, density 0.3 (900 kept) read in 1024-entry chunks: the kth magnitude has
    more copies than fit, and the earlier ones are kept."""
    rng = np.random.default_rng(0)
    delta = rng.choice([-2.0, -1.0, 1.0, 0.5, 2.0], size=3000).astype(np.float32)
    base = torch.zeros(3000)
    merged = merge_state_dicts("ties", [{"w": base}, {"w": base + torch.from_numpy(delta)}], density=0.3,
                               chunk_elements=1024)["w"].numpy()
    keep = top_k_keep(delta.astype(np.float64), 0.3)
    assert int((merged != 0).sum()) == 900
    np.testing.assert_array_equal(merged, np.where(keep, delta, 0.0))


@pytest.mark.parametrize("method, consensus", [("dare_linear", False), ("dare_ties", True)])
def test_dare_with_its_drop_mask_fixed_matches_reference(tmp_path, models, method, consensus):
    paths = [models["a16"], models["b16"], models["c16"]]
    merged = merge_on_disk(tmp_path, method, paths, weights={1: 0.6, 2: 0.8}, densities={1: 0.5}, density=0.7,
                           seed=3)
    states = [load_state(p) for p in paths]
    for name in merged:
        base, deltas = deltas_of(states, name)
        keeps = [dare_keep(3, name, 1, 0, base.size, 0.5), dare_keep(3, name, 2, 0, base.size, 0.7)]
        reference = ref_task_vectors(base, deltas, [0.6, 0.8], consensus=consensus, keeps=keeps,
                                     rescale=[0.5, 0.7]).reshape(merged[name].shape)
        assert_within_half_rounding(merged[name], reference, f"{method} {name}")


def test_dare_rescale_keeps_the_expected_delta():
    """n = 2^20 entries of d ~ N(1, 1), drop rate p = 0.7 (density 0.3), rescale by 1/0.3. The kept and rescaled
    entries m d / 0.3 have variance E[d^2]/0.3 - E[d]^2 = 2/0.3 - 1 = 5.67, so their mean has a standard error
    of sqrt(5.67 / 2^20) = 0.0023; it must lie within 5 standard errors (0.012) of the delta's own mean, and the
    kept fraction within 5 standard errors (5 sqrt(0.3 * 0.7 / 2^20) = 0.0022) of 0.3."""
    n = 1 << 20
    delta = torch.from_numpy(np.random.default_rng(1).normal(1.0, 1.0, n).astype(np.float32))
    base = torch.zeros(n)
    merged = merge_state_dicts("dare_linear", [{"w": base}, {"w": base + delta}], density=0.3, seed=11)["w"]
    kept = merged != 0
    assert abs(kept.double().mean().item() - 0.3) < 0.0022
    assert abs(merged.double().mean().item() - delta.double().mean().item()) < 0.012
    torch.testing.assert_close(merged[kept], delta[kept] / 0.3)  # each kept entry is the delta / (1 - p)
    other_seed = merge_state_dicts("dare_linear", [{"w": base}, {"w": base + delta}], density=0.3, seed=12)["w"]
    assert not torch.equal(kept, other_seed != 0)  # the seed picks the mask
    assert torch.equal(kept, torch.from_numpy(dare_keep(11, "w", 1, 0, n, 0.3)))  # the mask is the generator's


@pytest.mark.parametrize("names", [("a16", "b16", "c16"), ("a32", "b32", "c32", "a16")])
def test_model_stock_matches_reference(tmp_path, models, names):
    paths = [models[n] for n in names]
    merged = merge_on_disk(tmp_path, "model_stock", paths)
    states = [load_state(p) for p in paths]
    for name in merged:
        base = states[0][name].double().numpy().ravel()
        others = [s[name].double().numpy().ravel() for s in states[1:]]
        reference = ref_model_stock(base, others).reshape(merged[name].shape)
        if merged[name].dtype == torch.float16:
            assert_within_half_rounding(merged[name], reference, name)
        else:
            np.testing.assert_allclose(merged[name].double().numpy(), reference, rtol=1e-5, atol=1e-6, err_msg=name)


# ------------------------------------------------------------------------------------- in memory == on disk


@pytest.mark.parametrize("method, weights, densities, parameters", [
    ("task_arithmetic", {1: 0.7, 2: 0.4}, None, {"lambda": 0.8}),
    ("ties", {1: 1.0, 2: 0.5}, {2: 0.6}, {"density": 0.4}),
    ("dare_linear", None, None, {"density": 0.5, "seed": 5}),
    ("dare_ties", None, {1: 0.3}, {"density": 0.6, "seed": 5}),
    ("model_stock", None, None, {}),
])
def test_in_memory_and_on_disk_agree_bit_for_bit(tmp_path, models, method, weights, densities, parameters):
    from transformers import AutoModelForCausalLM

    paths = [models["a16"], models["b16"], models["c16"]]
    on_disk = merge_on_disk(tmp_path, method, paths, weights, densities, **parameters)
    states = [load_state(p) for p in paths]
    per_model = {"weights": [(weights or {}).get(i) for i in range(3)] if weights else None,
                 "densities": [(densities or {}).get(i) for i in range(3)] if densities else None}
    memory_parameters = {("lambda_" if k == "lambda" else k): v for k, v in parameters.items()}
    in_memory = merge_state_dicts(method, states, **per_model, **memory_parameters)
    assert all(torch.equal(in_memory[k].view(torch.int16), on_disk[k].view(torch.int16)) for k in on_disk)
    model = AutoModelForCausalLM.from_pretrained(paths[0], dtype=torch.float16)
    merge_into_model(model, [model.state_dict(), *states[1:]], method, **per_model, **memory_parameters)
    live = model.state_dict()
    assert all(torch.equal(live[k].view(torch.int16), on_disk[k].view(torch.int16)) for k in on_disk)


# ------------------------------------------------------------------------------------------ bad parameters


@pytest.mark.parametrize("method, kw, message", [
    ("ties", {"density": 1.5}, "parameters.density: Input should be less than or equal to 1"),
    ("ties", {"lamda": 1.0}, "parameters.lamda: not a parameter of ties; its parameters: lambda, normalize, density"),
    ("dare_linear", {"seed": -1}, "parameters.seed: Input should be greater than or equal to 0"),
    ("model_stock", {"density": 0.5}, "parameters.density: not a parameter of model_stock"),
    ("ties", {"densities": [0.5, 0.5, None]}, r"models\[0\].density: the base model of ties has no task vector"),
    ("ties", {"densities": [None, 0.0, None]}, r"models\[1\].density: 0.0 is outside \(0, 1\]"),
    ("linear", {"densities": [None, 0.5, None]}, r"models\[1\].density: linear takes no per-model density"),
])
def test_bad_parameters_are_one_line_errors_naming_the_key(method, kw, message):
    state = {"w": torch.zeros(4)}
    with pytest.raises(ConfigError, match=message) as caught:
        merge_state_dicts(method, [state, state, state], **kw)
    assert "\n" not in str(caught.value)


def test_model_stock_needs_two_fine_tuned_models():
    state = {"w": torch.zeros(4)}
    with pytest.raises(ConfigError, match="models: model_stock merges at least 3 models, got 2"):
        merge_state_dicts("model_stock", [state, state])
