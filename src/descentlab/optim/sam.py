"""Sharpness-Aware Minimization (Foret et al. 2021) and its adaptive form ASAM (Kwon et al. 2021)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from descentlab.optim._rules import norms
from descentlab.optim._validation import NON_NEGATIVE, Choice, hyperparameter_checks
from descentlab.optim._wrapper import DEFAULT_BASE, OptimizerWrapper, real_view
from descentlab.optim.search_space import Float

FORMS = ("sam", "asam")


class SAM(OptimizerWrapper):
    r"""Sharpness-Aware Minimization: the base optimizer steps with the gradient at the worst nearby point.

    Foret et al. 2021, Algorithm 1 with the :math:`p = 2` solution of eq. 2 and the approximation of
    eq. 3; ASAM (Kwon et al. 2021, Algorithm 1) rescales the neighbourhood by the weights:

    .. math::

        g &\leftarrow \nabla L_B(w) \\
        \hat\epsilon(w) &\leftarrow s\,\rho\, \frac{T_w^2\, g}{\lVert T_w\, g \rVert_2}
            \qquad T_w = I \text{ (SAM)}, \quad T_w = \operatorname{diag}(|w|) + \eta I \text{ (ASAM)} \\
        g_{\text{SAM}} &\leftarrow \nabla L_B(w)\big|_{w + \hat\epsilon(w)} \\
        w &\leftarrow A(w, g_{\text{SAM}}) \quad \text{(one step of the base optimizer, from } w\text{)}

    with :math:`\rho` (``sam_rho``), :math:`\eta` (``sam_eta``, ASAM only) and :math:`s = 1`
    (:math:`s = -1` in a group with ``maximize=True``: the worst point of a maximisation lies downhill).
    The norm runs over every parameter with a gradient, all groups together (one :math:`\epsilon` for the
    whole model, as in the paper); each group uses its own :math:`\rho`. Where :math:`g = 0` the
    perturbation is 0.

    Protocol (``step_protocol = "closure"``): ``step(closure)`` where ``closure()`` zeroes the gradients,
    computes the minibatch loss, calls ``backward()`` and returns the loss. It is called twice per step,
    at :math:`w` and at :math:`w + \hat\epsilon`, on the same minibatch; ``step`` returns the first loss
    (at :math:`w`). The parameters are restored to :math:`w` exactly (from a copy, not by subtracting
    :math:`\hat\epsilon`) before the base steps, so the base's weight decay and state see :math:`w`.

    Build it as ``SAM(params, base="sgd", lr=0.1, momentum=0.9, sam_rho=0.05)`` (every keyword but
    ``base`` and the ``sam_`` keys goes to the base) or around an optimizer: ``SAM(torch.optim.SGD(...))``.

    Differences from the paper: the paper's update is SGD; any gradient optimizer may be the base. It
    divides by :math:`\lVert g \rVert` without a guard; we take :math:`\hat\epsilon = 0` at :math:`g = 0`.
    Its m-sharpness (per-device perturbations in data parallel training) is not modelled: each process
    perturbs with its own minibatch gradient unless the gradients are all-reduced inside the closure.

    Differences from davda54/sam (the widely used PyTorch implementation): it divides by
    :math:`\lVert T_w g \rVert + 10^{-12}` (a relative change of :math:`10^{-12}/\lVert g\rVert`); its
    ``adaptive=True`` is ASAM with :math:`\eta = 0` (``sam_variant="asam", sam_eta=0`` here); it perturbs
    uphill even where the base maximises; it keeps the copy of :math:`w` in the optimizer state (so in
    every checkpoint), where we drop it after the step. The official ASAM code applies
    :math:`T_w` to weights only, leaving biases with :math:`T = 1` (it selects them by name, which an
    optimizer cannot see); here every parameter of the groups is scaled. torch.optim has no SAM.

    Under ``torch.compile`` the norm stays a tensor (the perturbation's factor is ``torch.where(norm > 0,
    rho / norm, 0)``), so the step has no graph break of its own; a base with ``differentiable=True`` is
    refused (the perturbation is applied outside autograd).

    Search space: lr (log, the base's), sam_rho (0.005-2, log; the papers searched 0.01-0.5 for SAM and
    0.5-2 for ASAM).

    References:
        Foret, Kleiner, Mobahi & Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
        Generalization", ICLR 2021, https://arxiv.org/abs/2010.01412 (Algorithm 1, eqs. 2-3).
        Kwon, Kim, Park & Choi, "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning
        of Deep Neural Networks", ICML 2021, https://arxiv.org/abs/2102.11600 (Algorithm 1).
    """

    reference = "Foret et al. 2021 (SAM, Alg. 1); Kwon et al. 2021 (ASAM)"
    step_protocol = "closure"  # see RuleOptimizer.step_protocol
    state_key = "sam_state"
    form_key = "sam_variant"
    search_space = (Float("lr", 1e-5, 10.0, "log"), Float("sam_rho", 0.005, 2.0, "log"))
    hyperparameters = hyperparameter_checks(
        sam_rho=NON_NEGATIVE, sam_eta=NON_NEGATIVE, sam_variant=Choice(FORMS)
    )

    def __init__(
        self,
        params: Any,
        base: str | type[Optimizer] = DEFAULT_BASE,
        *,
        sam_rho: float = 0.05,
        sam_variant: str = "sam",
        sam_eta: float = 0.01,
        **base_hyperparameters: Any,
    ) -> None:
        own = dict(sam_rho=sam_rho, sam_variant=sam_variant, sam_eta=sam_eta)
        super().__init__(params, base, own, base_hyperparameters)

    def check_group(self, group: dict[str, Any]) -> None:
        """Refuse a differentiable base: the perturbation is applied outside autograd."""
        super().check_group(group)
        if group.get("differentiable"):
            raise ValueError(
                "SAM cannot wrap a differentiable base (differentiable=True): it moves the parameters to "
                "w + epsilon and back outside autograd, with epsilon's scale rho / ||g|| read on the host, "
                "so derivatives through the step (with respect to lr or the start) would be wrong; pass "
                "differentiable=False"
            )

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Evaluate at w, perturb to w + epsilon, evaluate again, restore w and step the base."""
        if closure is None:
            raise RuntimeError(
                "SAM evaluates the gradient twice per step: call step(closure) with a closure that zeroes "
                "the gradients, computes the loss, calls backward() and returns the loss"
            )
        with torch.enable_grad():
            loss = closure()
        with torch.no_grad():
            originals = self._perturb()
        with torch.enable_grad():
            closure()
        if originals:
            with torch.no_grad():  # one multi-tensor copy (dynamo may drop per-tensor copies into params)
                torch._foreach_copy_([param for param, _ in originals], [value for _, value in originals])
        self.base.step()
        return loss

    def _perturb(self) -> list[tuple[Tensor, Tensor]]:
        """Move every parameter with a gradient to w + epsilon (eq. 2); return (param, copy of w) pairs."""
        groups = []  # (group, params, real views of params and of T_w^2 g)
        scaled_norms = []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if any(p.grad.is_sparse for p in params):
                raise RuntimeError(
                    "SAM does not support sparse gradients (its perturbation scales every gradient by their "
                    "joint norm); use dense gradients, e.g. nn.Embedding(sparse=False)"
                )
            weights, grads = [real_view(p.detach()) for p in params], [real_view(p.grad) for p in params]
            if group["sam_variant"] == "asam":
                scale = torch._foreach_add(torch._foreach_abs(weights), float(group["sam_eta"]))  # T_w
                scaled = torch._foreach_mul(grads, scale)  # T_w g
                scaled_norms.extend(norms(scaled))
                directions = torch._foreach_mul(scaled, scale)  # T_w^2 g
            else:
                scaled_norms.extend(norms(grads))
                directions = grads
            groups.append((group, params, weights, directions))
        if not groups:
            return []
        norm = torch.linalg.vector_norm(
            torch.stack([n.to(device="cpu", dtype=torch.float64) for n in scaled_norms])
        )
        compiled = torch.compiler.is_compiling()
        if not compiled:
            norm = float(norm)
        originals = []
        for group, params, weights, directions in groups:
            originals.extend((p, p.detach().clone()) for p in params)
            rho = (-1.0 if group.get("maximize", False) else 1.0) * float(group["sam_rho"])
            if compiled:  # no host read of the norm: the factor is a tensor, 0 where g = 0
                factor = torch.where(norm > 0, rho / norm, 0.0)
                torch._foreach_add_(weights, torch._foreach_mul(directions, factor.to(weights[0].device)))
            elif norm > 0:
                torch._foreach_add_(weights, directions, alpha=rho / norm)
        return originals
