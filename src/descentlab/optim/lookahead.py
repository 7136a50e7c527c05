"""Lookahead (Zhang et al. 2019): k fast steps of any optimizer, then one step of the slow weights."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from descentlab.optim._validation import CLOSED_UNIT_INTERVAL, Choice, Integer, hyperparameter_checks
from descentlab.optim._wrapper import DEFAULT_BASE, OptimizerWrapper, real_view, swapped_in
from descentlab.optim.search_space import Float, Int

# When each form creates the slow weights: after this many fast steps (0: before the first one), as a
# function of k. Syncs then come every k fast steps after that.
ANCHORS: dict[str, Callable[[int], int]] = {
    "paper": lambda k: 0,
    "timm": lambda k: k,
    "torch-optimizer": lambda k: 1,
}


def _slow_copy(param: torch.Tensor, group: dict[str, Any]) -> torch.Tensor:
    """The slow weights' first value, a copy of ``param``; on the graph when the base is differentiable."""
    with torch.set_grad_enabled(bool(group.get("differentiable"))):
        return param.clone() if group.get("differentiable") else param.detach().clone()


class Lookahead(OptimizerWrapper):
    r"""Lookahead: the base optimizer takes k fast steps, then the slow weights move towards them.

    Zhang et al. 2019, Algorithm 1, with :math:`A` the base optimizer (its own state, such as momentum or
    Adam's moments and step count, carries on across synchronisations):

    .. math::

        &\textbf{input: } \phi_0 = \theta_0,\ k\ (\texttt{lookahead\_k}),
            \ \alpha\ (\texttt{lookahead\_alpha}),\ \text{base optimizer } A \\
        &\textbf{for } t = 1, 2, \dots: \\
        &\qquad \theta_{t,0} \leftarrow \phi_{t-1} \\
        &\qquad \theta_{t,i} \leftarrow \theta_{t,i-1} + A(L, \theta_{t,i-1}, d)
            \quad i = 1, \dots, k \quad \text{(one ``step()`` each)} \\
        &\qquad \phi_t \leftarrow \phi_{t-1} + \alpha\,(\theta_{t,k} - \phi_{t-1})
        \quad\textbf{return } \phi

    The parameters hold the fast weights :math:`\theta`; the slow weights :math:`\phi` are the state
    ``slow_param`` (with ``fast_steps``, the fast steps the parameter has taken), in ``state_dict()``
    under ``"lookahead_state"``, so a save/load resumes bit for bit. Algorithm 1 returns :math:`\phi`:
    :meth:`at_iterate` swaps it into the parameters (the lab evaluates there); right after a
    synchronisation the two coincide.

    Build it as ``Lookahead(params, base="adam", lr=1e-3, lookahead_k=5)`` (the base from its registry
    name, every other keyword passed to it) or around an existing optimizer,
    ``Lookahead(torch.optim.SGD(params, lr=0.1))``. The groups are the base's own list, so torch schedulers
    and ``add_param_group`` reach the base; ``lookahead_k``/``lookahead_alpha`` are per-group keys.

    Forms (``lookahead_variant``):
        - ``"paper"`` (default): Algorithm 1, :math:`\phi_0 = \theta_0`; synchronisation after fast steps
          k, 2k, ...
        - ``"timm"``: timm's ``Lookahead`` creates the slow weights at its first synchronisation from the
          fast weights there, so that synchronisation does nothing: the first 2k steps are plain base steps
          and :math:`\phi` starts from :math:`\theta_k` (synchronisations after 2k, 3k, ...).
        - ``"torch-optimizer"``: torch-optimizer's (and lonePatient's) ``Lookahead`` synchronises on the
          first step of each cycle, creating the slow weights after the first fast step: :math:`\phi`
          starts from :math:`\theta_1`, synchronisations after 1 + k, 1 + 2k, ...

    Differences: the paper counts one global step; here each parameter counts the fast steps it took
    (those with a gradient), so a parameter without a gradient is left alone, never synchronised early or
    late, and a group added later starts its own cycle. timm counts per group and skips parameters without
    gradient at its synchronisation; torch-optimizer counts per group and moves every parameter. torch.optim
    has no Lookahead. The slow-weight update is one ``lerp`` (:math:`\phi + \alpha(\theta - \phi)`).
    With a differentiable base (``differentiable=True``) the slow weights and the synchronisation are
    on the autograd graph too, so a loss after k steps differentiates through them (with respect to
    ``lr``, the start, ...).

    Search space: lr (log, the base's), lookahead_k (2-20, log), lookahead_alpha (0.1-1).

    References:
        Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step back", NeurIPS 2019,
        https://arxiv.org/abs/1907.08610 (Algorithm 1; the defaults k = 5, alpha = 0.5 are torch-optimizer's,
        timm uses k = 6).
    """

    reference = "Zhang et al. 2019 (Lookahead, Alg. 1)"
    state_key = "lookahead_state"
    form_key = "lookahead_variant"
    search_space = (
        Float("lr", 1e-5, 10.0, "log"),
        Int("lookahead_k", 2, 20, "log"),
        Float("lookahead_alpha", 0.1, 1.0),
    )
    hyperparameters = hyperparameter_checks(
        lookahead_k=Integer(1), lookahead_alpha=CLOSED_UNIT_INTERVAL, lookahead_variant=Choice(tuple(ANCHORS))
    )

    def __init__(
        self,
        params: Any,
        base: str | type[Optimizer] = DEFAULT_BASE,
        *,
        lookahead_k: int = 5,
        lookahead_alpha: float = 0.5,
        lookahead_variant: str = "paper",
        **base_hyperparameters: Any,
    ) -> None:
        own = dict(
            lookahead_k=lookahead_k, lookahead_alpha=lookahead_alpha, lookahead_variant=lookahead_variant
        )
        super().__init__(params, base, own, base_hyperparameters)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One fast step of the base; the parameters that complete a cycle then synchronise."""
        for group in self.param_groups:
            if ANCHORS[group["lookahead_variant"]](group["lookahead_k"]) == 0:
                for param in group["params"]:
                    if param.requires_grad and param not in self.state:  # phi_0 = theta_0
                        self.state[param] = {"fast_steps": 0, "slow_param": _slow_copy(param, group)}
        with torch.enable_grad():
            loss = self.base.step(closure)
        for group in self.param_groups:
            self._after_fast_step(group)
        return loss

    def _after_fast_step(self, group: dict[str, Any]) -> None:
        k, anchor = group["lookahead_k"], ANCHORS[group["lookahead_variant"]](group["lookahead_k"])
        slow, fast = [], []
        for param in group["params"]:
            if param.grad is None:
                continue
            state = self.state.setdefault(param, {"fast_steps": 0})
            state["fast_steps"] += 1
            steps = state["fast_steps"]
            if steps == anchor:
                state["slow_param"] = _slow_copy(param, group)
            elif steps > anchor and (steps - anchor) % k == 0:
                slow.append(state)
                fast.append(param)
        if not slow:
            return
        alpha = float(group["lookahead_alpha"])
        if group.get("differentiable"):
            # A differentiable base: the synchronisation goes on the graph too (new slow weights, and a
            # recorded copy into the fast ones), so the loss after it is a function of lr and the start.
            with torch.enable_grad():
                for state, param in zip(slow, fast):
                    state["slow_param"] = torch.lerp(state["slow_param"], param, alpha)
                    param.copy_(state["slow_param"])
            return
        slow = [real_view(state["slow_param"]) for state in slow]
        fast = [real_view(param.detach()) for param in fast]
        torch._foreach_lerp_(slow, fast, alpha)  # phi += alpha (theta - phi)
        torch._foreach_copy_(fast, slow)  # theta_{t+1,0} <- phi_t

    def at_iterate(self) -> contextlib.AbstractContextManager:
        """A block in which the parameters hold the slow weights phi (Algorithm 1's output)."""
        pairs = [
            (p, self.state[p]["slow_param"]) for p in self.params() if "slow_param" in self.state.get(p, {})
        ]
        return swapped_in(pairs)
