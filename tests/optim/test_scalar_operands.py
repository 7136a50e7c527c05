"""The 0-d tensor operands of the eager multi-tensor kernels (``_rules.scalars.scalar_operand``).

They must compute bit for bit what the Python float computes (the engine's parity with torch.optim rests
on it), go through the kernels' tensor forms (which is what makes them fast), and stay floats wherever
the tensor form would not be exact or would not work.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from descentlab.optim._rules import add_scalar, add_scalar_, scalar_operand

SIZES = (7, 33, 1000)


def _values(seed: int) -> list[float]:
    generator = random.Random(seed)
    values = [0.9, 0.999, 1e-8, 1e-3, 1 - 0.999**7, 1 / 3, -2.5, 1e30, 5e-324]
    values += [generator.uniform(-10, 10) for _ in range(40)]
    return values + [generator.random() * 10.0 ** generator.randint(-30, 30) for _ in range(40)]


def _tensors(dtype: torch.dtype, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scales = (1.0, 1e-20, 1e20)  # subnormal and huge products too
    return [torch.randn(size, generator=generator, dtype=dtype) * scale for size, scale in zip(SIZES, scales)]


OPERATIONS = {
    "mul_": lambda tensors, value: torch._foreach_mul_(tensors, scalar_operand(value, tensors)),
    "div_": lambda tensors, value: torch._foreach_div_(tensors, scalar_operand(value, tensors)),
    "mul": lambda tensors, value: torch._foreach_mul(tensors, scalar_operand(value, tensors)),
    "div": lambda tensors, value: torch._foreach_div(tensors, scalar_operand(value, tensors)),
    "add_": add_scalar_,
    "add": add_scalar,
}
WITH_FLOATS = {
    "mul_": torch._foreach_mul_,
    "div_": torch._foreach_div_,
    "mul": torch._foreach_mul,
    "div": torch._foreach_div,
    "add_": torch._foreach_add_,
    "add": torch._foreach_add,
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("operation", OPERATIONS)
def test_the_tensor_operand_computes_bit_for_bit_what_the_float_computes(operation, dtype):
    for seed, value in enumerate(_values(0)):
        ours, floats = _tensors(dtype, seed), _tensors(dtype, seed)
        with torch.no_grad():
            assert isinstance(scalar_operand(value, ours), torch.Tensor)
            returned, expected = OPERATIONS[operation](ours, value), WITH_FLOATS[operation](floats, value)
        got, want = (ours, floats) if operation.endswith("_") else (returned, expected)
        for mine, theirs in zip(got, want, strict=True):
            assert mine.dtype == dtype
            assert torch.equal(mine, theirs) or (mine.isnan().any() and theirs.isnan().any()), value


class _Overloads(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "_foreach_" in str(func):  # not the operand's creation (lift_fresh) on a cache miss
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


def test_every_operation_runs_the_kernels_tensor_form_not_the_scalar_one():
    # The scalar forms wrap the float in a new tensor for each tensor of the list: the slow path.
    tensors = _tensors(torch.float32, 0)
    with torch.no_grad(), _Overloads() as overloads:
        for operation in OPERATIONS.values():
            operation(tensors, 0.5)
    assert overloads.seen == [
        "aten._foreach_mul_.Tensor",
        "aten._foreach_div_.Tensor",
        "aten._foreach_mul.Tensor",
        "aten._foreach_div.Tensor",
        "aten._foreach_add_.Tensor",
        "aten._foreach_add.Tensor",
    ]


CASES_KEPT_AS_FLOATS = {
    "bfloat16 (the operand's rounding differs)": lambda: [torch.ones(3, dtype=torch.bfloat16)] * 2,
    "float16": lambda: [torch.ones(3, dtype=torch.float16)] * 2,
    "mixed dtypes": lambda: [torch.ones(3), torch.ones(3, dtype=torch.float64)],
    "one tensor (the tensor costs more than it saves)": lambda: [torch.ones(3)],
    "integer tensors": lambda: [torch.ones(3, dtype=torch.int64)] * 2,
}


@pytest.mark.parametrize("case", CASES_KEPT_AS_FLOATS)
def test_a_float_is_kept_where_the_tensor_form_would_not_be_exact_or_pay(case):
    with torch.no_grad():
        assert scalar_operand(0.5, CASES_KEPT_AS_FLOATS[case]()) == 0.5
        assert type(scalar_operand(0.5, CASES_KEPT_AS_FLOATS[case]())) is float


def test_a_float_is_kept_with_autograd_on_and_for_zero_whose_sign_a_cache_key_loses():
    tensors = [torch.ones(3), torch.ones(2)]
    with torch.enable_grad():
        assert type(scalar_operand(0.5, tensors)) is float
    with torch.no_grad():
        for zero in (0.0, -0.0):
            assert scalar_operand(zero, tensors) is zero
        assert isinstance(scalar_operand(0.5, tensors), torch.Tensor)


def test_a_float_is_kept_for_a_dtensor_which_refuses_a_plain_tensor_argument():
    from torch.distributed.tensor import DTensor

    class NotPlain(torch.Tensor):  # any subclass (DTensor is one) takes the float
        pass

    assert issubclass(DTensor, torch.Tensor)
    tensors = [torch.ones(3), torch.ones(3).as_subclass(NotPlain)]
    with torch.no_grad():
        assert type(scalar_operand(0.5, tensors)) is float
