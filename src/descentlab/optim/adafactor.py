"""Adafactor (Shazeer & Stern 2018): factored second moments, update clipping, relative step sizes."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from descentlab.optim._engine import RuleOptimizer, as_float
from descentlab.optim._rules import ema_, nonvanishing_eps, norms, per_tensor
from descentlab.optim._transform import (
    STEP,
    Direction,
    Hyperparameter,
    State,
    Update,
    arguments,
    transform,
)
from descentlab.optim._validation import POSITIVE, UNIT_INTERVAL, Real
from descentlab.optim.search_space import Float

PAPER_EPS1 = 1e-30  # the hyperparameters proposed with Algorithms 4 and 5: epsilon_1 = 1e-30


class ComplexParameterError(RuntimeError, ValueError):
    """Adafactor refuses complex parameters (a ``RuntimeError`` as torch's; a ``ValueError``: bad input)."""


def _check_eps(name: str, value: Any) -> None:
    """``eps = (eps1, eps2)``: ``eps1`` None (the variant's default) or > 0, ``eps2`` >= 0.

    torch also accepts ``eps1 = 0``, where a coordinate whose gradients were all 0 steps by 0 / 0 = NaN.
    """
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair (eps1, eps2) such as (None, 1e-3), got {value!r}")
    if value[0] is not None:
        POSITIVE(f"{name}[0]", value[0])
    Real(0.0)(f"{name}[1]", value[1])


def _factored(group: dict[str, Any], param: Tensor) -> bool:
    return param.dim() > 1  # torch's rule: the last two dimensions of any tensor with two or more


def _row_var(group: dict[str, Any], param: Tensor) -> Tensor:
    return param.new_zeros((*param.shape[:-1], 1))


def _col_var(group: dict[str, Any], param: Tensor) -> Tensor:
    return param.new_zeros((*param.shape[:-2], 1, param.shape[-1]))


def _eps1(update: Update) -> float:
    """The group's eps1, or the variant's default for ``None`` (torch: the dtype's machine epsilon)."""
    eps1 = update.group["eps"][0]
    if update.group["variant"] == "paper":
        # The paper's 1e-30 is below float16's range: raise it to the dtype's smallest normal number.
        return nonvanishing_eps(PAPER_EPS1 if eps1 is None else float(eps1), update.params)
    return torch.finfo(update.params[0].dtype).eps if eps1 is None else float(eps1)


def _mean_of_squares(grad: Tensor, dim: int, eps1: float, paper: bool) -> Tensor:
    """The mean of ``g^2`` (+ eps1 in the paper's form) over ``dim``; 0 where that dimension is empty."""
    size = max(grad.size(dim), 1)
    if paper:
        return (grad * grad + eps1).sum(dim=dim, keepdim=True).div_(size)
    # torch's own sequence of kernels (bitwise parity): ||g||^2 / size without materialising g^2 (its
    # torch.norm calls this vector_norm, after a few µs of Python). The square is a new (row- or
    # column-sized) tensor: a differentiable step's norm backward reads the norm.
    return torch.linalg.vector_norm(grad, 2, dim=dim, keepdim=True).square().div_(size)


def _scaled_gradient(update: Update, index: int, weight: float | Tensor, eps1: float, paper: bool) -> Tensor:
    """``U = G / sqrt(V_hat)`` for parameter ``index``, updating its second-moment state in place.

    The estimate is updated in place, except in a differentiable step (autograd on), whose backward
    reads each intermediate (same kernels, same values).
    """
    grad, state, in_place = update.grads[index], update.state, not torch.is_grad_enabled()
    if "row_var" in state:  # a bucket holds one state layout: all factored or none
        row, col = state["row_var"][index], state["col_var"][index]
        row.lerp_(_mean_of_squares(grad, -1, eps1, paper), weight)  # Alg. 4: R_t (a mean, not a sum)
        col.lerp_(_mean_of_squares(grad, -2, eps1, paper), weight)  # Alg. 4: C_t
        estimate = row @ col  # the rank-1 outer product R_t C_t, batched over leading dimensions
        row_mean = row.mean(dim=-2, keepdim=True)
        divisor = row_mean if paper else row_mean.clamp(min=eps1)
        estimate = estimate.div_(divisor) if in_place else estimate / divisor  # Alg. 4: V_hat_t
    else:
        variance = state["variance"][index]
        variance.lerp_(grad * grad + eps1 if paper else grad * grad, weight)  # Alg. 5: V_hat_t
        estimate = variance.clone()
    if not paper:  # torch's eps1: a floor under V_hat, not a term in g^2
        estimate = estimate.clamp_(min=eps1 * eps1) if in_place else estimate.clamp(min=eps1 * eps1)
    # Alg. 4 / 5: U_t = G_t / sqrt(V_hat_t)
    return estimate.rsqrt_().mul_(grad) if in_place else estimate.rsqrt() * grad


@transform(
    hyperparameters=(
        Hyperparameter("beta2_decay", -0.8, Real(None, 0.0)),
        Hyperparameter("eps", (None, 1e-3), _check_eps, annotation="tuple[float | None, float]"),
    ),
    state=(
        STEP,
        State("row_var", _row_var, when=_factored),
        State("col_var", _col_var, when=_factored),
        State("variance", when=lambda group, param: not _factored(group, param)),
    ),
    elementwise=False,
)
def scale_by_factored_rms(update: Update, direction: Direction) -> Direction:
    """Adafactor's second moments (factored for matrices, full for vectors): ``G / sqrt(V_hat)``."""
    weight = update.step ** update.number("beta2_decay")  # 1 - beta2_t = t^(-0.8) (sec. 6)
    # A compiled step's counts are a tensor, one per parameter: lerp takes its weight in the state's dtype.
    weights = per_tensor(weight) if isinstance(weight, Tensor) else [weight] * len(update.params)
    eps1, paper = _eps1(update), update.group["variant"] == "paper"
    return Direction(
        [
            _scaled_gradient(update, i, _in_dtype(weights[i], update.grads[i]), eps1, paper)
            for i in range(len(update.params))
        ]
    )


def _in_dtype(factor: float | Tensor, like: Tensor) -> float | Tensor:
    """A float as it is; a tensor factor (a compiled step) in ``like``'s dtype, as lerp's weight must be."""
    return factor.to(like.dtype) if isinstance(factor, Tensor) else factor


def _root_mean_squares(tensors: list[Tensor], as_tensor: bool) -> list[float] | Tensor:
    """RMS of each tensor, ``||x||_2 / sqrt(n)`` as torch.optim.Adafactor computes it; 0 for an empty one.

    Floats read on the host, or (``as_tensor``: a compiled or differentiable step) one float64 tensor
    with the same float64 arithmetic on the same norms: reading them would break the graph.
    """
    if as_tensor:
        sizes = torch.tensor([max(tensor.numel(), 1) ** 0.5 for tensor in tensors], dtype=torch.float64)
        return torch.stack(norms(tensors)).to(torch.float64) / sizes  # empty: 0 / 1
    values = torch.stack(norms(tensors)).tolist() if tensors else []
    return [norm / tensor.numel() ** 0.5 if tensor.numel() else 0.0 for norm, tensor in zip(values, tensors)]


@transform(hyperparameters=(Hyperparameter("d", 1.0, Real(1.0)),), elementwise=False)
def clip_and_scale_relative(update: Update, direction: Direction) -> Direction:
    """Update clipping (sec. 5) and the relative step size (sec. 7): ``alpha_t U / max(1, RMS(U) / d)``."""
    eps2, threshold = float(update.group["eps"][1]), update.number("d")
    if not (torch.compiler.is_compiling() or torch.is_grad_enabled()):
        rho = min(as_float(update.group["lr"]), 1 / (update.step**0.5))  # rho_t = min(lr, 1/sqrt(t))
        scales = [
            max(eps2, param_rms) * rho / max(1.0, update_rms / threshold)
            for param_rms, update_rms in zip(
                _root_mean_squares(update.params, False), _root_mean_squares(direction.numerator, False)
            )
        ]
        # Per-tensor products, then a plain subtraction: torch's foreach kernels, also with foreach=False.
        torch._foreach_mul_(direction.numerator, scales)
        return Direction(direction.numerator, lr_scaled=False)
    # The same formula on tensors: lr, the counts and the RMS stay on the graph (compiled: no host read;
    # differentiable: lr and the norms carry gradients). The parameters are copied, since the engine
    # updates them in place after the chain and the norm's backward reads them.
    lr = torch.as_tensor(update.hyper("lr"), dtype=torch.float64)
    step = torch.as_tensor(update.step, dtype=torch.float64)
    params = [param.clone() for param in update.params] if torch.is_grad_enabled() else update.params
    param_rms = _root_mean_squares(params, True)
    update_rms = _root_mean_squares(direction.numerator, True)
    rho = torch.minimum(lr, 1 / (step**0.5))
    scales = per_tensor(param_rms.clamp(min=eps2) * rho / (update_rms / threshold).clamp(min=1.0))
    return Direction(torch._foreach_mul(direction.numerator, scales), lr_scaled=False)


@transform(
    hyperparameters=(Hyperparameter("beta1", 0.0, UNIT_INTERVAL),),
    state=(State("exp_avg", when=lambda group, param: group["beta1"] > 0),),
)
def trace_scaled_update(update: Update, direction: Direction) -> Direction:
    """Optional momentum over the clipped, relatively scaled update (the authors' tensor2tensor code)."""
    beta1 = update.hyper("beta1")  # a tensor in a differentiable step (beta1 that requires grad)
    if not isinstance(beta1, Tensor) and beta1 == 0:
        return direction
    if "exp_avg" not in update.state:
        raise RuntimeError(
            f"Adafactor: beta1 is {beta1} but the state was created with beta1=0 (no exp_avg); construct "
            "the optimizer with beta1 > 0 to schedule it"
        )
    ema_(update.state["exp_avg"], direction.numerator, beta1)
    return Direction(update.state["exp_avg"], lr_scaled=False)


class Adafactor(RuleOptimizer):
    r"""Adafactor: Adam-like steps with factored second moments, update clipping and relative step sizes.

    For a parameter :math:`X` with two or more dimensions (factored over the last two, :math:`n \times m`,
    leading dimensions treated as a batch of matrices) Shazeer & Stern's Algorithm 4; for any other
    (vectors, scalars) the unfactored Algorithm 5 (:math:`\hat V_t` a full EMA of :math:`G_t^2`):

    .. math::

        \hat\beta_{2t} &= 1 - t^{\tau}, \qquad \rho_t = \min(\gamma, 1/\sqrt t), \qquad
            \alpha_t = \max(\epsilon_2, \mathrm{RMS}(X_{t-1}))\,\rho_t \\
        R_t &\leftarrow \hat\beta_{2t} R_{t-1} + (1 - \hat\beta_{2t})\,\mathrm{mean}_j(G_t^2 [+ \epsilon_1])
            \quad C_t \leftarrow \hat\beta_{2t} C_{t-1} + (1 - \hat\beta_{2t})\,\mathrm{mean}_i(G_t^2
            [+ \epsilon_1]) \\
        \hat V_t &= R_t C_t / \mathrm{mean}_i(R_t), \qquad U_t = G_t / \sqrt{\hat V_t}, \qquad
            \hat U_t = U_t / \max(1, \mathrm{RMS}(U_t)/d) \\
        m_t &\leftarrow \beta_1 m_{t-1} + (1 - \beta_1)\,\alpha_t \hat U_t \ (\beta_1 > 0), \qquad
            X_t \leftarrow (1 - \gamma\lambda) X_{t-1} - (\alpha_t \hat U_t \text{ or } m_t)

    with ``lr`` :math:`\gamma` (the cap of the relative step, 0.01 as in the paper), ``beta2_decay``
    :math:`\tau = -0.8`, ``eps`` :math:`(\epsilon_1, \epsilon_2)`, clipping threshold ``d``, decoupled
    ``weight_decay`` :math:`\lambda` and ``beta1`` (0: no momentum). Means instead of the paper's sums
    give the same :math:`\hat V_t`. :math:`\mathrm{RMS}(X) = \|X\|_2/\sqrt{\mathrm{numel}}` over the
    whole tensor. State (torch's keys): ``step``; ``row_var`` (shape ``(..., n, 1)``) and ``col_var``
    (``(..., 1, m)``) for a factored parameter, ``variance`` otherwise; ``exp_avg`` with ``beta1 > 0``.

    Variants (they differ only in :math:`\epsilon_1`):
        - ``"torch"`` (default): torch.optim.Adafactor. No :math:`\epsilon_1` in the squares; instead
          :math:`\mathrm{mean}_i(R_t)` is floored at :math:`\epsilon_1` and :math:`\hat V_t` at
          :math:`\epsilon_1^2`; ``eps[0]=None`` means the dtype's machine epsilon (1.2e-7 in float32).
        - ``"paper"``: Algorithms 4 and 5 as written, :math:`\epsilon_1` added to :math:`G_t^2`
          (``eps[0]=None`` means the paper's 1e-30, raised to float16's smallest normal number there).
          This is also transformers' (HF/fairseq) ``Adafactor`` with its defaults (relative step,
          parameter scaling, ``eps=(1e-30, 1e-3)``), and with its ``beta1`` (tests/optim/test_adafactor.py).

    The two depart where gradients are small against :math:`\epsilon_1`: a float32 vector whose
    gradient is always 1e-8 gets :math:`U = 1` from the paper but :math:`U = 10^{-8}/1.19\cdot10^{-7}
    = 0.084` from torch (a step 12x shorter before clipping); for gradients well above
    :math:`\epsilon_1` they agree to rounding.

    Differences from the paper (both variants): the paper fixes :math:`\rho_t`'s cap at 0.01, here it
    is ``lr`` (default 0.01, as torch); the paper has no weight decay (here torch's decoupled
    :math:`\gamma\lambda`; HF multiplies it by :math:`\alpha_t` instead) and no :math:`\beta_1` in
    Algorithms 4/5 (its experiments compare :math:`\beta_1 = 0.9` with 0: we follow the authors'
    tensor2tensor code and HF, momentum over :math:`\alpha_t\hat U_t`). The paper does not cover
    tensors of more than two dimensions; we factor the last two, as torch, tensor2tensor and HF do (optax
    picks the two largest, and factors only where both are at least 128 long). HF with an explicit
    ``lr`` (``relative_step=False``) steps by ``lr * max(eps2, RMS(X))`` with no :math:`1/\sqrt t`;
    here ``lr`` only caps :math:`\rho_t`.

    Differences from torch.optim.Adafactor: bitwise equal to its ``foreach=True`` path, except on float32
    CPU parameters of over 65536 elements, whose RMS we sum in pieces combined in float64 (within 3e-7;
    torch's CPU norm is off by up to 1.2e-3 at 25M elements, pytorch/pytorch#169237); its default
    for-loop applies the step with one fused multiply-add, ours (both paths) as a product then a
    subtraction, so they agree to float rounding (1.2e-7 relative after 100 float32 steps).
    ``foreach=None`` runs our multi-tensor path, as for every descentlab optimizer (torch's default is
    its for-loop, to save peak memory: pass ``foreach=False`` for that). ``eps[0]=None`` is resolved
    per parameter dtype (torch takes the first parameter's dtype for the whole group). Zero-size
    parameters are accepted (torch divides by zero). ``eps[0] = 0`` is refused (torch accepts it, and a
    coordinate whose gradients were all 0 then steps by 0/0 = NaN). ``beta1``, ``variant`` and
    ``differentiable`` (torch's Adafactor has no such flag; the RMS factors then stay on the autograd
    graph) are ours. Complex parameters are refused at construction (torch refuses them at the first step).

    Example:
        >>> opt = Adafactor(model.parameters())  # doctest: +SKIP

    Search space: lr (the relative-step cap) 1e-4..1, d 1..10, beta2_decay -1..-0.5.

    References:
        Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", ICML 2018,
        https://arxiv.org/abs/1804.04235, Algorithms 4 and 5; update clipping, increasing decay rate and
        relative step size: sec. 5-7.
    """

    reference = "Shazeer & Stern 2018 (arXiv:1804.04235), Algorithms 4-5"
    variants = ("torch", "paper")
    search_space = (
        Float("lr", 1e-4, 1.0, "log"),
        Float("d", 1.0, 10.0, "log"),
        Float("beta2_decay", -1.0, -0.5),
    )

    chain = (scale_by_factored_rms, clip_and_scale_relative, trace_scaled_update)
    weight_decay_placement = "decoupled"  # torch's (1 - lr * weight_decay); RMS(X) is read before it
    signature = arguments(
        "lr beta2_decay eps d weight_decay * foreach maximize differentiable beta1 variant",
        lr=1e-2,
        weight_decay=0.0,
    )

    def check_group(self, group: dict[str, Any]) -> None:
        """The engine's checks, then refuse complex parameters (as torch, but at construction)."""
        super().check_group(group)
        for param in group.get("params", []):
            if isinstance(param, Tensor) and torch.is_complex(param):
                raise ComplexParameterError(
                    "Adafactor does not support complex parameters (its factored moments are over real "
                    "rows and columns); pass torch.view_as_real(param) as the parameter instead"
                )
