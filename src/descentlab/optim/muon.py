"""Muon: momentum, orthogonalised per matrix by a Newton–Schulz iteration, with an AdamW fallback."""

from __future__ import annotations

import functools
import math
import sys
import warnings
from collections import ChainMap
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._rules import ema_
from descentlab.optim._transform import (
    STEP,
    Direction,
    Directions,
    Hyperparameter,
    State,
    Transform,
    Update,
    arguments,
    transform,
)
from descentlab.optim._transforms import FIRST_MOMENT, SECOND_MOMENT, scale_by_adam
from descentlab.optim._validation import POSITIVE, UNIT_INTERVAL, Choice, Flag, Integer, Pair, Real
from descentlab.optim.search_space import Float

# Keller Jordan's quintic coefficients (chosen to maximise the slope at 0; torch.optim.Muon's too).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}  # or "param": the parameter's own


def _check_coefficients(name: str, value: Any) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise ValueError(f"{name} must be three numbers (a, b, c), got {value!r}")
    for index, entry in enumerate(value):
        Real(None)(f"{name}[{index}]", entry)


def _check_ns_steps(name: str, value: Any) -> None:
    Integer(0)(name, value)
    if value >= 100:
        raise ValueError(f"{name} must be an integer in [0, 100) (torch.optim.Muon's bound), got {value!r}")


def newton_schulz(
    update: Tensor,
    coefficients: tuple[float, float, float],
    steps: int,
    eps: float,
    dtype: torch.dtype,
    form: str,
) -> Tensor:
    """The quintic Newton–Schulz iteration :math:`X \\leftarrow aX + (bA + cA^2)X`, :math:`A = XX^\\top`.

    A matrix operation on the whole tensor (not elementwise): ``update`` (a tensor of >= 2 dimensions,
    viewed as ``shape[0]`` rows) is cast to ``dtype``, transposed to be wide, divided by its Frobenius
    norm and iterated ``steps`` times; the result is in ``dtype`` and ``update``'s shape. ``form``:
    ``"torch"`` as torch.optim.Muon (norm clamped below by ``eps``, two ``addmm``), ``"reference"`` as
    the KellerJordan/Muon code (``eps`` added to the norm, ``b * A + (c * A) @ A``, ``a * X + B @ X``).
    """
    a, b, c = coefficients
    x = update.reshape(update.shape[0], math.prod(update.shape[1:])).to(dtype)
    wide = x.size(0) <= x.size(1)
    x = x if wide else x.T
    norm = x.norm(dim=(-2, -1), keepdim=True) + eps if form == "reference" else x.norm().clamp(min=eps)
    x = x / norm
    for _ in range(steps):
        gram = x @ x.T
        if form == "reference":
            x = a * x + (b * gram + c * gram @ gram) @ x
        else:
            x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x if wide else x.T).reshape(update.shape)


def shape_factor(adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """The step's scale for a ``rows x cols`` matrix (``shape[0]`` x the rest): ``sqrt(max(1, rows/cols))``
    (``None``/``"original"``, Keller Jordan's) or ``0.2 sqrt(max(rows, cols))`` (``"match_rms_adamw"``)."""
    rows, cols = shape[0], math.prod(shape[1:])
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1, rows / cols)) if cols else 1.0


_told_bfloat16_is_slow = False  # the warning below is given once a process


@functools.cache
def _cpu_multiplies_bfloat16() -> bool:
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX), which oneDNN's bfloat16
    matmul needs to be fast: without them (an AVX2-only AMD EPYC) a 192 x 192 by 192 x 768 bfloat16 product
    took 44 ms, against 0.46 ms in float32."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def _warn_if_bfloat16_is_slow(group: dict[str, Any]) -> None:
    """Warn once where ``group``'s Newton–Schulz iteration will run in bfloat16 on a CPU without bfloat16
    matrix instructions (see :func:`_cpu_multiplies_bfloat16`), and say what to pass instead."""
    global _told_bfloat16_is_slow
    if _told_bfloat16_is_slow or group.get("ns_dtype") != "bfloat16":
        return
    on_cpu = any(
        isinstance(param, Tensor) and param.device.type == "cpu" and uses_muon(group, param)
        for param in group.get("params", [])
    )
    if on_cpu and not _cpu_multiplies_bfloat16():
        _told_bfloat16_is_slow = True
        warnings.warn(
            "Muon: the Newton–Schulz iteration runs in bfloat16 (ns_dtype='bfloat16', as in torch.optim.Muon "
            "and the reference code), and this CPU has no bfloat16 matrix instructions (AVX512-BF16 or AMX), "
            "so each step's matmuls are about 50-100x slower than in float32; pass ns_dtype='float32' for "
            "a fast step (the update then differs from torch.optim.Muon's by bfloat16's rounding)",
            RuntimeWarning,
            stacklevel=_caller_level(),
        )


def _caller_level() -> int:
    """The ``stacklevel`` of ``warnings.warn`` called in this module's caller that names the first frame
    outside descentlab's and torch's optimizer code (the user's constructor call, whatever the path)."""
    frame, level = sys._getframe(2), 2
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        ("descentlab.optim", "torch.optim")
    ):
        frame, level = frame.f_back, level + 1
    return level


def _ns_dtype(group: dict[str, Any], tensor: Tensor) -> torch.dtype:
    return NS_DTYPES.get(group["ns_dtype"], tensor.dtype)


@transform(
    hyperparameters=(
        Hyperparameter("momentum", 0.95, UNIT_INTERVAL),  # an EMA weight, as torch's lerp uses it
        Hyperparameter("nesterov", True),
        Hyperparameter("ns_coefficients", NS_COEFFICIENTS, _check_coefficients, "tuple[float, float, float]"),
        Hyperparameter("eps", 1e-7),
        Hyperparameter("ns_steps", 5, _check_ns_steps, "int"),
        Hyperparameter("adjust_lr_fn", None, Choice((None, "original", "match_rms_adamw")), "str | None"),
        Hyperparameter("ns_dtype", "bfloat16", Choice(("bfloat16", "float32", "param")), "str"),
        Hyperparameter("use_muon", None, Flag(optional=True)),  # read by uses_muon (the partition)
    ),
    state=(State("momentum_buffer"),),
    elementwise=False,  # the Newton–Schulz iteration is a matrix function of the whole tensor
)
def orthogonalize_momentum(update: Update, direction: Direction) -> Direction:
    """Muon: the EMA momentum (Nesterov's look-ahead with ``nesterov``), orthogonalised per matrix."""
    group, momentum, buffers = update.group, update.number("momentum"), update.state["momentum_buffer"]
    ema_(buffers, direction.numerator, momentum)
    matrices = torch._foreach_lerp(direction.numerator, buffers, momentum) if group["nesterov"] else buffers
    form = group.get("variant", "torch")
    numerators, scales = [], []
    for param, matrix in zip(update.params, matrices):
        orthogonal = newton_schulz(
            matrix, group["ns_coefficients"], group["ns_steps"], group["eps"], _ns_dtype(group, matrix), form
        )
        factor = shape_factor(group["adjust_lr_fn"], param.shape)
        if form == "reference":  # the reference code scales the update in its NS dtype, not the lr
            orthogonal, factor = orthogonal * factor, 1.0
        numerators.append(orthogonal.to(param.dtype))
        scales.append(factor)
    return Direction(numerators, scale=scales)


@transform(
    hyperparameters=(
        Hyperparameter("adam_betas", (0.9, 0.95), Pair(UNIT_INTERVAL)),
        Hyperparameter("adam_eps", 1e-10, POSITIVE),
    ),
    state=(STEP, FIRST_MOMENT, SECOND_MOMENT),
)
def scale_by_adam_fallback(update: Update, direction: Direction) -> Directions:
    """torch's Adam direction (:func:`scale_by_adam`) with ``adam_betas`` and ``adam_eps``, no AMSGrad."""
    renamed = {"betas": update.group["adam_betas"], "eps": update.group["adam_eps"], "amsgrad": False}
    group = ChainMap({**renamed, "variant": "torch"}, update.group)
    inner = Update(group, update.params, update.grads, update.state, update.step)  # type: ignore[arg-type]
    return scale_by_adam.update(inner, direction)


def partition(
    choose: Callable[[dict[str, Any], Tensor], bool], chosen: Transform, otherwise: Transform
) -> Transform:
    """One transform that runs ``chosen`` on the parameters ``choose(group, param)`` selects and
    ``otherwise`` on the others: two sub-algorithms in one optimizer.

    Each side's state exists only for its own parameters (its ``when`` is narrowed by ``choose``), so the
    engine never puts the two kinds in one bucket (buckets are keyed by state layout), and a bucket holding
    ``chosen``'s own state keys is ``chosen``'s.
    """
    own_keys = {state.name for state in chosen.state} - {"step"}
    if not own_keys or own_keys & {state.name for state in otherwise.state}:
        raise TypeError(
            f"partition: {chosen.name} needs state keys of its own, apart from {otherwise.name}'s"
        )

    def narrowed(states: tuple[State, ...], side: bool) -> tuple[State, ...]:
        def when(state: State) -> Callable[[dict[str, Any], Tensor], bool]:
            return lambda group, param: (
                choose(group, param) is side and (state.when is None or state.when(group, param))
            )

        return tuple(replace(state, when=when(state)) for state in states)

    def run(update: Update, direction: Direction) -> Directions:
        side = chosen if own_keys & update.state.keys() else otherwise
        return side.update(update, direction)

    return Transform(
        f"{chosen.name}_or_{otherwise.name}",
        run,
        chosen.hyperparameters + otherwise.hyperparameters,
        narrowed(chosen.state, True) + narrowed(otherwise.state, False),
        chosen.group_state + otherwise.group_state,
        chosen.elementwise and otherwise.elementwise,
    )


def uses_muon(group: dict[str, Any], param: Tensor) -> bool:
    """Whether ``param`` takes Muon's step: the group's ``use_muon``, or by default ``param.ndim >= 2``."""
    flag = group["use_muon"]
    return bool(param.ndim >= 2 if flag is None else flag)


muon_or_adamw = partition(uses_muon, orthogonalize_momentum, scale_by_adam_fallback)


class Muon(RuleOptimizer):
    r"""Muon: SGD momentum whose update of each matrix is orthogonalised; AdamW for the other parameters.

    For a matrix parameter :math:`\theta \in \mathbb{R}^{A \times B}` (``shape[0]`` rows; a tensor of
    more dimensions is viewed as ``shape[0] x prod(shape[1:])``, as the reference code views conv filters):

    .. math::

        g_t &\leftarrow \nabla_\theta L(\theta_{t-1}) \\
        B_t &\leftarrow \mu B_{t-1} + (1 - \mu) g_t \qquad (B_0 = 0) \\
        \tilde B_t &\leftarrow (1 - \mu) g_t + \mu B_t \ \text{ if nesterov, else } B_t \\
        X_0 &= \tilde B_t / \max(\|\tilde B_t\|_F, \epsilon) \quad \text{(transposed when } A > B) \\
        X_{k+1} &= a X_k + (b\, X_k X_k^\top + c\, (X_k X_k^\top)^2) X_k, \quad k < K \\
        \theta_t &\leftarrow (1 - \eta\lambda)\,\theta_{t-1} - \eta\, s(A, B)\, X_K

    with momentum :math:`\mu`, the quintic coefficients :math:`(a, b, c) = (3.4445, -4.7750, 2.0315)`
    (``ns_coefficients``), :math:`K` = ``ns_steps`` = 5 iterations computed in ``ns_dtype`` (bfloat16;
    on a CPU without AVX512-BF16 or AMX, where bfloat16 matmuls are 50-100x slower, Muon warns once to
    pass ``ns_dtype="float32"``),
    decoupled weight decay :math:`\lambda` and :math:`s(A, B) = \sqrt{\max(1, A/B)}` (``adjust_lr_fn`` =
    ``None``/``"original"``) or Moonshot's :math:`0.2\sqrt{\max(A, B)}` (``"match_rms_adamw"``, which
    gives the update AdamW's RMS so AdamW's lr and decay carry over). :math:`X_K \approx U S' V^\top` with
    :math:`S'_{ii} \in` about (0.7, 1.2) rather than :math:`UV^\top`: the coefficients trade convergence
    for slope at 0. State: ``momentum_buffer``, as torch.

    Every other parameter (``use_muon`` = ``None``: those with fewer than 2 dimensions; ``False``: the
    whole group) takes AdamW's step in the same ``step()``, with the group's ``lr`` and ``weight_decay``
    (decoupled), ``adam_betas`` = (0.9, 0.95) and ``adam_eps`` = 1e-10 (the reference code's defaults):
    :math:`\theta \leftarrow (1-\eta\lambda)\theta - \eta\,\hat m_t / (\sqrt{\hat v_t} + \epsilon)`,
    torch.optim.AdamW's arithmetic; state ``step``, ``exp_avg``, ``exp_avg_sq``. Embeddings and output
    heads are matrices that Muon's authors also give to AdamW: put them in a group with
    ``use_muon=False`` (and their own ``lr``), e.g.::

        Muon([{"params": hidden_matrices}, {"params": embeddings + vectors, "use_muon": False, "lr": 3e-4}],
             lr=0.02, weight_decay=0.0)

    Variants:
        - ``"torch"`` (default): torch.optim.Muon's arithmetic: the norm clamped below by ``eps``, each
          iteration two ``addmm``, the shape factor applied to the learning rate. Bit for bit torch's on
          the CPU (float32 and float64 parameters; tests/optim/test_muon.py).
        - ``"reference"``: the KellerJordan/Muon code (``muon.py``, ``zeropower_via_newtonschulz5`` and
          ``muon_update``): ``eps`` added to the norm, ``B = b A + (c A) A`` and ``X = a X + B X`` as
          separate bfloat16 operations, the shape factor multiplied into the bfloat16 update.

    Differences from torch.optim.Muon (``"torch"``): torch refuses any parameter that is not 2-D; here
    those take the AdamW fallback (or, with >= 3 dimensions, Muon's step on the ``shape[0] x rest``
    view), so ``Muon(model.parameters())`` works; the extra keyword-only arguments ``use_muon``,
    ``adam_betas``, ``adam_eps``, ``ns_dtype``, ``foreach``, ``maximize``, ``differentiable`` (the
    step as a function of ``lr``, the state and the gradients; with ``ns_dtype="param"`` for float64
    derivatives) and ``variant``; ``momentum``
    must be in [0, 1) (torch accepts any ``momentum >= 0``; its lerp diverges from 1 on), ``eps`` > 0;
    complex matrices are refused at construction (torch at the first step); torch's NS divides a bfloat16
    update in place, so with a bfloat16 parameter and ``nesterov=False`` it rescales the momentum buffer
    itself; here the iteration never writes its input.

    Differences from the blog post and the reference code: the post writes the heavy-ball sum
    :math:`B_t = \mu B_{t-1} + g_t` (and Nesterov :math:`g_t + \mu B_t`); torch and the reference code keep
    the EMA :math:`(1 - \mu)` times it. The normalisation :math:`X_0` removes that factor exactly, so
    the two agree up to rounding while :math:`\|\tilde B_t\|_F > \epsilon` (with ``"reference"``'s
    :math:`\|\cdot\| + \epsilon` the relative difference is :math:`\epsilon/\|\tilde B_t\|`, 1e-7 over
    the norm). The reference code's defaults are ``lr=0.02``, ``weight_decay=0``; its Nesterov step
    overwrites ``p.grad`` (here the gradient is left alone); for a 4-D filter it scales by the last two
    dimensions, :math:`\sqrt{\max(1, k_h/k_w)}`, here by the flattened matrix's. The float64 oracle
    (tests/reference/muon.py) is the post's sum form with the iteration in float64; bfloat16 moves the
    iteration's output by 1.2-1.5% of its norm (torch's ``addmm`` form) to 2.7-3.4% (the post's listing)
    on random 16 x 48 to 256 x 1024 matrices (tests/optim/test_muon.py).

    Search space: lr 1e-4..1 (log; the reference code's 0.02 in the middle), momentum 0.5..0.99 (log1m).

    References:
        Jordan, Jin, Boza, You, Cesista, Newhouse & Bernstein, "Muon: An optimizer for hidden layers in
        neural networks", 2024, https://kellerjordan.github.io/posts/muon/ ; code
        https://github.com/KellerJordan/Muon (``muon.py``).
        Liu et al. (Moonshot AI), "Muon is Scalable for LLM Training", 2025, arXiv:2502.16982, sec. 2.2
        (the ``0.2 sqrt(max(A, B))`` scale and decoupled weight decay).
    """

    reference = "Jordan et al. 2024 (kellerjordan.github.io/posts/muon); Liu et al. 2025 (arXiv:2502.16982)"
    variants = ("torch", "reference")
    search_space = (
        Float("lr", 1e-4, 1.0, "log"),
        Float("momentum", 0.5, 0.99, "log1m"),
    )
    chain = (muon_or_adamw,)  # decoupled decay by lr * weight_decay, then the orthogonal (or Adam) step
    weight_decay_placement = "decoupled"
    signature = arguments(
        "lr weight_decay momentum nesterov ns_coefficients eps ns_steps adjust_lr_fn",
        "* use_muon adam_betas adam_eps ns_dtype foreach maximize differentiable variant",
        lr=1e-3,
        weight_decay=0.1,
    )

    def check_group(self, group: dict[str, Any]) -> None:
        """Refuse parameters Muon's step cannot take: a vector flagged ``use_muon``, a complex matrix."""
        super().check_group(group)
        for index, param in enumerate(group.get("params", [])):
            if not isinstance(param, Tensor) or not uses_muon(group, param):  # a saved group holds ids
                continue
            if param.ndim < 2:
                raise ValueError(
                    f"Muon: use_muon=True but parameter {index} has shape {tuple(param.shape)}; the "
                    "Newton–Schulz step needs a matrix: give it use_muon=False or None (AdamW's step)"
                )
            if torch.is_complex(param):
                raise ValueError(
                    f"Muon: parameter {index} is a complex matrix, which the Newton–Schulz step does not "
                    "support; put it in a group with use_muon=False (AdamW's step on real pairs)"
                )
        _warn_if_bfloat16_is_slow(group)
