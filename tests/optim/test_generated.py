"""The generated one-pass kernel (``compiled=True``, optim/_generated.py) against the eager path.

The oracle is the eager multi-tensor path of the same class (itself checked against the float64
references and torch.optim in test_contract.py): in float64 the two must agree within rounding (1e-12)
for every elementwise row of the contract table, on tensors cut into chunks and remainders, with a small
tensor that takes the eager path and a complex one (updated as real pairs). Each row compiles with
inductor (seconds to a minute on a loaded 2-core machine), so those run with ``DESCENTLAB_SLOW_TESTS=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from optim_descriptions import CASES

import descentlab.optim as dl
from descentlab.optim import _generated

slow = pytest.mark.skipif(
    os.environ.get("DESCENTLAB_SLOW_TESTS") != "1",
    reason="compiles with inductor (seconds to a minute each); set DESCENTLAB_SLOW_TESTS=1 to run",
)
needs_compiler = pytest.mark.skipif(shutil.which("g++") is None, reason="inductor's CPU backend needs g++")

# 19500 and 17000 elements: each cut into chunks of BLOCK and a remainder; (6,) stays eager (small);
# the complex (10000,) is a real (10000, 2) view, 20000 elements.
SHAPES = [((150, 130), torch.float64), ((17000,), torch.float64), ((6,), torch.float64)]
COMPLEX_SHAPE = (10000,)
BLOCK = 8192
STEPS = 8
# Rows the generated kernel does not serve (they run eagerly with compiled=True): state that is not shaped
# like the parameter (NAdam's scalar mu_product) or no state at all (plain SGD is one kernel already).
EAGER_ONLY = {"sgd", "nadam", "nadam-decoupled", "nadam-wd-options", "nadam-paper"}


def _generated_cases():
    """Rows the generated path serves: gradient-driven, elementwise, cache-blocking applies."""
    for case in CASES:
        cls = case.cls
        elementwise = getattr(cls, "elementwise", False) and getattr(cls, "chain", ())
        if case.protocol == "gradient" and elementwise and case.applies("cache-blocking"):
            yield case


def _params(with_complex: bool) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    params = [torch.randn(shape, generator=generator, dtype=dtype) for shape, dtype in SHAPES]
    if with_complex:
        params.append(torch.randn(COMPLEX_SHAPE, generator=generator, dtype=torch.complex128))
    return [param.requires_grad_() for param in params]


def _run(cls, hyper: dict, compiled: bool, with_complex: bool = True) -> list[torch.Tensor]:
    params = _params(with_complex)
    optimizer = cls([{"params": params, "compiled": compiled}], **hyper)
    optimizer.block_numel = BLOCK
    generator = torch.Generator().manual_seed(5)
    for _ in range(STEPS):
        for param in params:
            param.grad = torch.randn(param.shape, generator=generator, dtype=param.dtype)
        optimizer.step()
    return [param.detach() for param in params]


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=[slow, needs_compiler]) for c in _generated_cases()], ids=lambda c: c.id
)
def test_generated_kernel_matches_the_eager_path_in_float64(case):
    eager = _run(case.cls, case.hyper, compiled=False)
    calls = _generated.kernel_calls
    generated = _run(case.cls, case.hyper, compiled=True)
    assert case.cls.__name__ not in _generated._unavailable
    if case.id in EAGER_ONLY:
        assert _generated.kernel_calls == calls, (
            "the generated kernel now serves this row: drop it from EAGER_ONLY"
        )
    else:
        # 2 float64 tensors of 3 chunks + the complex one of 3, from the second step on for a state created
        # on first use (SGD's momentum buffer), from the first otherwise.
        assert _generated.kernel_calls - calls >= 9 * (STEPS - 1)
    start = _params(True)
    assert any(not torch.equal(a, b) for a, b in zip(eager, start))  # they moved
    for a, b in zip(eager, generated):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def test_every_elementwise_row_is_covered():
    names = {case.cls.__name__ for case in _generated_cases()}
    assert {"Adam", "AdamW", "SGD", "Adagrad", "RMSprop", "Adamax", "Lion"} <= names


def test_small_tensors_take_the_eager_path_without_compiling():
    torch._dynamo.reset()
    before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    params = [torch.randn(40, 30, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    twins = [param.detach().clone().requires_grad_() for param in params]
    ours = dl.Adam([{"params": params, "compiled": True}], lr=0.1, weight_decay=0.1)
    eager = dl.Adam(twins, lr=0.1, weight_decay=0.1)
    for step in range(3):
        for a, b in zip(params, twins):
            a.grad = b.grad = torch.full_like(a, 0.5 + step)
        ours.step()
        eager.step()
    assert all(torch.equal(a, b) for a, b in zip(params, twins))
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == before


def test_compiled_flag_is_validated():
    param = torch.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match="compiled must be True or False"):
        dl.Adam([{"params": [param], "compiled": "yes"}])


FALLBACK = textwrap.dedent(
    """
    import warnings, torch
    import torch._inductor.config as config
    import descentlab.optim as dl
    config.cpp.cxx = ("/nonexistent/c++",)
    params = [torch.ones(20000, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    twins = [p.detach().clone().requires_grad_() for p in params]
    ours, eager = dl.Adam([{"params": params, "compiled": True}], lr=0.1), dl.Adam(twins, lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(2):
            for a, b in zip(params, twins):
                a.grad = b.grad = torch.full_like(a, 0.5 + step)
            ours.step(); eager.step()
    messages = [str(w.message) for w in caught if "compiled=True" in str(w.message)]
    assert len(messages) == 1, messages
    assert all(torch.equal(a, b) for a, b in zip(params, twins))
    print("fallback ok:", messages[0][:60])
    """
)


@slow
def test_without_a_compiler_the_eager_path_runs_after_one_warning(tmp_path):
    environment = {
        **os.environ,
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path),
        "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1",
    }
    completed = subprocess.run(
        [sys.executable, "-c", FALLBACK], env=environment, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "fallback ok" in completed.stdout
