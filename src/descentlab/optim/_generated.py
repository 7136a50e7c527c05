"""The generated one-pass path of an elementwise chain: one compiled kernel per flat chunk.

Opt in per param group with ``compiled=True`` (``Adam([{"params": ..., "compiled": True}])``, or set
``group["compiled"] = True`` later). The math is not written a second time: the engine's own update of a
bucket (:meth:`RuleOptimizer._apply`: coupled or decoupled weight decay, the evaluation point, the
declared chain, applying the directions) is traced by ``torch.compile`` over a bucket of one flat 1-D
chunk, with the step count and ``lr`` as float64 tensors (the engine's compiled-step contract, see
:mod:`descentlab.optim._engine`), so one trace serves every step and every scheduled ``lr``. Inductor
fuses the chain's multi-tensor kernels into one C++/OpenMP loop that reads the parameter, its gradient
and its state once and writes them once (one pass over memory, where the eager chain makes one pass per
kernel). Sizes are symbolic (``dynamic=True``), so chunks of ``block_numel`` elements and every
remainder share one kernel per (class, variant, dtype, flags); tensors under :data:`MIN_NUMEL` elements
take the eager multi-tensor path in one call, where a kernel call per tensor would cost more than it
saves.

Only chains that declare themselves elementwise, with every state entry shaped like its parameter
(:meth:`_Bucket.blockable`), run here; the rest (NAdam's scalar ``mu_product``, a state created on first
use such as SGD's first momentum buffer) take the eager path. Without a working compiler (inductor needs
a C++ compiler on the CPU) the eager path runs, after a one-time warning. The first step compiles: see
``benchmarks/step_speed.py`` for its cost, cold and with inductor's caches warm.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from descentlab.optim._engine import RuleOptimizer, _Bucket

# Tensors smaller than this go through the eager multi-tensor path together (one call for all of them).
MIN_NUMEL = 1 << 14
# Every (class, variant, dtype, flags) is one compiled entry of the one traced function below; torch's
# default limit of 8 entries per function would send the ninth configuration of a process to eager.
RECOMPILE_LIMIT = 256

_unavailable: set[str] = set()  # classes whose compilation failed: eager from then on (warned once)
kernel_calls = 0  # chunks updated by the compiled kernel in this process (read by the tests)


def _chunk_update(optimizer: RuleOptimizer, group: dict[str, Any], bucket: _Bucket, step: Tensor) -> None:
    """What is traced: the engine's update of one chunk (the single source of the algorithm's math)."""
    optimizer._apply(group, bucket, step)


_compiled_chunk_update = torch.compile(_chunk_update, dynamic=True, fullgraph=True)


def run_generated(optimizer: RuleOptimizer, group: dict[str, Any], bucket: _Bucket, step: int) -> bool:
    """Update ``bucket`` (from :meth:`_Bucket.blockable`) with the compiled kernel; ``False``: not run.

    ``False`` (nothing updated) where this class's compilation failed before; a failure now warns once
    and finishes the bucket eagerly (chunks already updated stay updated, the rest run eagerly).
    """
    name = type(optimizer).__name__
    if name in _unavailable:
        return False
    traced = _traced_group(group)
    steps = torch.tensor([float(step)], dtype=torch.float64)
    small = [index for index, param in enumerate(bucket.params) if param.numel() < MIN_NUMEL]
    large = [index for index, param in enumerate(bucket.params) if param.numel() >= MIN_NUMEL]
    chunks = [
        bucket._subset([index], slice(start, start + optimizer.block_numel))
        for index in large
        for start in range(0, bucket.params[index].numel(), optimizer.block_numel)
    ]
    with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
        for position, chunk in enumerate(chunks):
            try:
                _compiled_chunk_update(optimizer, traced, chunk, steps)
                global kernel_calls
                kernel_calls += 1
            except Exception as error:  # no compiler, or a chain the compiler cannot trace: eager
                _unavailable.add(name)
                warnings.warn(
                    f"{name}(compiled=True): the generated kernel could not be built "
                    f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                    "running the eager path instead",
                    RuntimeWarning,
                    stacklevel=4,
                )
                for rest in chunks[position:]:
                    optimizer._apply(group, rest, step)
                break
    if small:
        optimizer._apply(group, bucket._subset(small, slice(None)), step)
    return True


def _traced_group(group: dict[str, Any]) -> dict[str, Any]:
    """``group`` as the kernel sees it: no parameter list, ``lr`` as a float64 tensor (no recompile
    when a scheduler changes it; the other hyperparameters are constants of the kernel)."""
    traced = {key: value for key, value in group.items() if key != "params"}
    lr = group["lr"]
    traced["lr"] = (
        lr.detach().to(torch.float64) if isinstance(lr, Tensor) else torch.tensor(lr, dtype=torch.float64)
    )
    return traced
