"""The numpy float16 / bfloat16 conversions against numpy's and torch's own casts, on every half and edge case."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from solar_ray.tensors.kernels import narrow, widen


class Scratch:
    def __init__(self) -> None:
        self.arrays: dict = {}

    def get(self, kind, dtype, n):
        return self.arrays.setdefault((kind, dtype), np.empty(1 << 22, dtype))[:n]


EVERY_BIT_PATTERN = np.arange(1 << 16, dtype=np.uint16)


def same_floats(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bit-equal, or both NaN (NaN payloads differ between casts)."""
    return (x.view(np.uint32) == y.view(np.uint32)) | (np.isnan(x) & np.isnan(y))


def edge_floats() -> np.ndarray:
    """Normal draws at every scale a half or bfloat16 can meet, random bit patterns, and the boundary cases."""
    rng = np.random.default_rng(0)
    scales = (1e-9, 3e-8, 1e-6, 6e-5, 1e-3, 0.02, 1.0, 1e3, 6.5e4, 1e6, 1e38)
    draws = [rng.standard_normal(1 << 15).astype(np.float32) * np.float32(s) for s in scales]
    patterns = rng.integers(0, 1 << 32, 1 << 17, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504, 65519.996, 65520, -65520, 6.1035156e-05,
                      6.1035153e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 8.940697e-08, 1.0 + 2**-11,
                      1.0 + 3 * 2**-11, 3.389e38], dtype=np.float32)
    return np.concatenate([*draws, patterns, edges, -edges])


@pytest.mark.parametrize("coefficient", [1.0, 0.37, -2.5])
def test_widening_halves_is_exact(coefficient):
    out = widen(EVERY_BIT_PATTERN, "F16", coefficient, np.empty(1 << 16, np.float32))
    with np.errstate(invalid="ignore"):
        expected = EVERY_BIT_PATTERN.view(np.float16).astype(np.float32) * np.float32(coefficient)
    assert same_floats(out, expected).all()


@pytest.mark.parametrize("coefficient", [1.0, 0.37, -2.5])
def test_widening_bfloat16_is_exact(coefficient):
    out = widen(EVERY_BIT_PATTERN, "BF16", coefficient, np.empty(1 << 16, np.float32))
    expected = (torch.from_numpy(EVERY_BIT_PATTERN.view(np.int16)).view(torch.bfloat16).float() * coefficient).numpy()
    assert same_floats(out, expected).all()


def test_narrowing_to_half_rounds_like_numpy():
    values = edge_floats()
    out = narrow(values.copy(), "F16", np.empty(len(values), np.uint16), Scratch())
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16).view(np.uint16)
    nan = np.isnan(values)
    assert (out[~nan] == expected[~nan]).all()
    assert np.isnan(out[nan].view(np.float16)).all()


def test_narrowing_to_bfloat16_rounds_like_torch():
    values = edge_floats()
    out = narrow(values.copy(), "BF16", np.empty(len(values), np.uint16), Scratch())
    expected = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    nan = np.isnan(values)
    assert (out[~nan] == expected[~nan]).all()
    assert (out[nan] == 0x7FC0).all()


def test_float32_and_float64_pass_through_numpy():
    values = edge_floats()
    wide = widen(values.astype(np.float64), "F64", 0.5, np.empty(len(values), np.float32))
    with np.errstate(over="ignore", invalid="ignore"):
        assert same_floats(wide, values.astype(np.float64).astype(np.float32) * np.float32(0.5)).all()
    out = narrow(values, "F64", np.empty(len(values), np.float64), Scratch())
    assert same_floats(out.astype(np.float32), values).all()
