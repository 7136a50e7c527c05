"""PyTorch's own optimizer test-suite (``TestOptimRenewed`` of ``test/test_optim.py``), run on our classes.

torch's ``torch.testing._internal.common_optimizers.optim_db`` (shipped in the wheel) describes every
torch optimizer: the configurations to try, the errors to expect, which of ``foreach`` / ``fused`` /
``differentiable`` it supports. ``TestOptimRenewed`` turns that table into tests. Here the table keeps
only the nine optimizers descentlab re-implements, each entry's ``optim_cls`` re-pointed at our class,
so torch's tests check our drop-in claim; ``DESCENTLAB_TORCH_SUITE_CLASSES=torch`` keeps torch's own
classes instead (the reference run: ours should fail no test that torch's pass).

``test/test_optim.py`` is not in the wheel and is not committed here (public code fetched for this
work stays out of the repository): put a copy of it, from the torch release that is installed, at
``tests/optim/torch_suite/upstream/torch_test_optim.py`` (git-ignored; drop its imports of the sibling
suites ``optim.test_lrscheduler``, ``optim.test_optim`` and ``optim.test_swa_utils``) or point
``DESCENTLAB_TORCH_TEST_OPTIM`` at it. Without it this module is skipped.

``test_errors`` compares error text: :func:`_our_error_inputs` rewrites torch's two wordings of a
bad value into ours (still checking the name and the value), and drops the four inputs torch refuses
but our engine supports (tensor ``lr``/``betas`` with ``foreach=True``, mixed float/tensor ``betas``;
``tests/optim/test_torch_flags.py`` checks those against torch instead).

All of ``TestOptimRenewed`` runs (517 tests on the CPU, about 30 s on two cores). Devices: the CPU, or
those named in torch's own switch ``PYTORCH_TESTING_DEVICE_ONLY_FOR`` (e.g. ``cuda``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import types
import unittest
from pathlib import Path

import pytest

import descentlab.optim

OUR_CLASSES = ("SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "RAdam")

UPSTREAM = Path(
    os.environ.get("DESCENTLAB_TORCH_TEST_OPTIM", Path(__file__).parent / "upstream" / "torch_test_optim.py")
)


def _install_expecttest_stand_in() -> None:
    """torch's test ``TestCase`` subclasses ``expecttest.TestCase``; the suite never uses its one feature
    (``assertExpectedInline``), so where expecttest is not installed a plain ``unittest.TestCase`` does."""
    try:
        import expecttest  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("expecttest")
        stand_in.TestCase = unittest.TestCase
        stand_in.ACCEPT = False
        sys.modules["expecttest"] = stand_in


# torch's wording of a bad value -> ours, e.g. "Invalid beta parameter at index 0: 1.0" ->
# "betas[0] must be in [0, 1), got 1.0" and "Invalid rho value: 1.1" -> "rho must be in [0, 1], got 1.1".
OUR_WORDING = (
    (re.compile(r"Invalid beta parameter at index (\d): (.+)"), r"betas\[\1\] must be .+, got \2"),
    (re.compile(r"Invalid (\w+) value: (.+)"), r"\1 must be .+, got \2"),
)
# Error inputs for configurations torch refuses and descentlab supports (see the module docstring).
SUPPORTED_HERE = (
    "lr as Tensor doesn't work with foreach & not capturable",
    "betas must be either both floats or both Tensors",
    r"betas\[0\] as a Tensor is not supported for capturable=False and foreach=True",
)


def _our_error_inputs(error_inputs_func):
    """``error_inputs_func`` with torch's wording mapped to ours and :data:`SUPPORTED_HERE` dropped."""

    def error_inputs(device, dtype):
        kept = []
        for error_input in error_inputs_func(device, dtype):
            if error_input.optimizer_error_input.desc in SUPPORTED_HERE:
                continue
            for pattern, ours in OUR_WORDING:
                if pattern.fullmatch(error_input.error_regex):
                    error_input.error_regex = pattern.sub(ours, error_input.error_regex)
                    break
            kept.append(error_input)
        return kept

    return error_inputs


def _point_optim_db_at(classes: str) -> None:
    """Keep only our nine optimizers in torch's ``optim_db`` (in place: the suite imports the list)."""
    from torch.testing._internal import common_optimizers

    kept = [info for info in common_optimizers.optim_db if info.optim_cls.__name__ in OUR_CLASSES]
    if classes != "torch":
        for info in kept:
            info.optim_cls = getattr(descentlab.optim, info.optim_cls.__name__)
            if info.optim_error_inputs_func is not None:
                info.optim_error_inputs_func = _our_error_inputs(info.optim_error_inputs_func)
    common_optimizers.optim_db[:] = kept


def _load_suite() -> type:
    """Import the upstream file and return its device-instantiated test class(es) for pytest."""
    os.environ.setdefault("PYTORCH_TESTING_DEVICE_ONLY_FOR", "cpu")
    _install_expecttest_stand_in()
    _point_optim_db_at(os.environ.get("DESCENTLAB_TORCH_SUITE_CLASSES", "descentlab"))
    spec = importlib.util.spec_from_file_location("torch_test_optim", UPSTREAM)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: value for name, value in vars(module).items() if name.startswith("TestOptimRenewed")}


if not UPSTREAM.is_file():
    pytest.skip(
        f"torch's test/test_optim.py not found at {UPSTREAM}; see this module's docstring",
        allow_module_level=True,
    )


def _export_instantiated_classes() -> None:
    """Put the per-device classes (``TestOptimRenewedCPU``, ...) where pytest collects them, once each."""
    for name, test_class in _load_suite().items():
        if name == "TestOptimRenewed":
            continue  # the device-generic template; only its instantiations run
        globals()[name] = test_class


_export_instantiated_classes()
