"""The eager per-tensor norms (LAMB's and LARS's trust ratios, Prodigy's ``||s||_1``, Adafactor's RMS).

torch's CPU norm kernel sums a long float32 tensor in float32 accumulators: its 1-norm of 3M elements is
off by 1.4e-4 relative, its 2-norm by 5e-5 (at 25M by 8.6e-3 and 1.2e-3). These tests compare with the
float64 norm of the same values.
"""

from __future__ import annotations

import math

import pytest
import torch

from descentlab.optim import Prodigy
from descentlab.optim._rules import norms

LONG = 3_000_000


def _long_positive(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(LONG, generator=generator) * 1e-3 + 1e-3  # a sum that grows: the hard case


@pytest.mark.parametrize("ord", [1.0, 2.0, 3.0])
def test_long_float32_tensors_are_normed_to_float32_precision(ord):
    tensors = [_long_positive(0), _long_positive(1).reshape(1000, 3000).t(), torch.randn(7)]
    for tensor, norm in zip(tensors, norms(tensors, ord)):
        exact = float(torch.linalg.vector_norm(tensor.double(), ord))
        assert norm.dtype == torch.float32
        assert float(norm) == pytest.approx(exact, rel=3e-6), (tuple(tensor.shape), ord)


@pytest.mark.parametrize("ord", [1.0, 2.0, math.inf])
def test_short_float64_and_inf_norms_are_aten_kernels_bit_for_bit(ord):
    tensors = [torch.randn(1 << 16), torch.randn(LONG, dtype=torch.float64), torch.randn(3, 5)]
    if ord == math.inf:
        tensors.append(_long_positive(2))
    expected = torch._foreach_norm(tensors, ord)
    for norm, reference in zip(norms(tensors, ord), expected):
        assert norm.dtype == reference.dtype and torch.equal(norm, reference)


def test_prodigy_norm_of_s_over_a_long_parameter_is_the_float64_sum():
    param = torch.nn.Parameter(_long_positive(3))
    optimizer = Prodigy([param], d0=1e-3)
    for seed in range(2):
        param.grad = _long_positive(10 + seed)
        optimizer.step()
    exact = float(optimizer.state[param]["s"].double().abs().sum())
    assert optimizer.param_groups[0]["d_denom"] == pytest.approx(exact, rel=3e-6)
