"""SVRG: stochastic variance-reduced gradient with periodic full-gradient snapshots."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from descentlab.optim._engine import RuleOptimizer
from descentlab.optim._validation import Integer, hyperparameter_checks
from descentlab.optim.search_space import Float

Closure = Callable[[], Tensor]


class SVRG(RuleOptimizer):
    r"""SVRG (Johnson & Zhang 2013): SGD on a variance-reduced gradient estimate.

    Every ``snapshot_every`` (:math:`m`) steps a snapshot :math:`\tilde w` is taken with its full-data
    gradient :math:`\tilde\mu = \nabla F(\tilde w)`; each step then uses, for the same minibatch
    :math:`i_t`,

    .. math::

        w_t = w_{t-1} - \eta\,\bigl(\nabla\psi_{i_t}(w_{t-1}) - \nabla\psi_{i_t}(\tilde w) + \tilde\mu\bigr)

    which is unbiased (:math:`\mathbb E_i[\cdot] = \nabla F(w_{t-1})`) and whose variance vanishes as
    :math:`w` and :math:`\tilde w` approach the optimum (the paper's Figure 1 / Algorithm 1).

    Protocol:
        1. ``optimizer.take_snapshot(full_closure)`` at the start and whenever
           ``optimizer.needs_snapshot`` is true; ``full_closure()`` must zero the gradients, compute
           the loss on the *whole* training set at the current parameters, call ``backward()`` and
           return the loss.
        2. ``optimizer.step(closure)`` for each minibatch; ``closure()`` must zero the gradients,
           compute the minibatch loss, call ``backward()`` and return the loss. It is called twice, at
           the current parameters and at the snapshot, so it must be deterministic for the batch
           (no dropout, batch norm in eval mode, or a fixed RNG state).
        :func:`train_svrg` runs this loop over a DataLoader.

    Options (``option``): ``"I"`` (the paper's Option I, default) snapshots the last iterate;
    ``"II"`` snapshots an iterate drawn uniformly from the epoch's :math:`w_0 \dots w_{m-1}` and
    restarts from it (seeded by ``seed``).

    State per parameter: ``snapshot`` (:math:`\tilde w`), ``full_grad`` (:math:`\tilde\mu`), and with
    option II ``candidate``. Weight decay (coupled L2, default 0) is added to the corrected gradient.
    torch has no SVRG. ``torch.compile(optimizer.step)`` compiles without a break inside the step or a
    recompile (the closure's ``backward`` breaks the closure itself): the corrected gradient is written
    into the ``.grad`` tensors in place and the step counters are tensors.

    Search space: lr, SGD's range (SVRG is SGD with a variance-reduced gradient).

    References:
        Johnson & Zhang, "Accelerating Stochastic Gradient Descent using Predictive Variance
        Reduction", NeurIPS 2013.
    """

    reference = "Johnson & Zhang 2013 (NeurIPS)"
    step_protocol = "svrg"
    variants = ()
    search_space = (Float("lr", 1e-4, 10.0, "log"),)

    hyperparameters = hyperparameter_checks(snapshot_every=Integer(1))
    weight_decay_placement = "coupled"  # no chain: the corrected gradient is the direction

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-2,
        snapshot_every: int = 100,
        weight_decay: float = 0,
        *,
        option: str = "I",
        seed: int = 0,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
    ) -> None:
        if option not in ("I", "II"):
            raise ValueError(f"option must be 'I' or 'II' (Johnson & Zhang 2013), got {option!r}")
        Integer(0)("seed", seed)  # checked here: manual_seed's own error names no argument
        defaults = dict(
            lr=lr,
            snapshot_every=snapshot_every,
            weight_decay=weight_decay,
            maximize=maximize,
            foreach=foreach,
            differentiable=differentiable,
        )
        super().__init__(params, defaults)
        self.option = option
        # The counters are tensors that step() updates in place: a compiled step traces them as inputs,
        # whereas dynamo drops an increment of a Python int attribute in a resumed frame (measured: it
        # stayed 0, so no second snapshot was ever taken) and would recompile for each new value.
        self._inner = torch.zeros((), dtype=torch.int64)
        self._candidate = torch.zeros((), dtype=torch.int64)
        self._generator = torch.Generator().manual_seed(seed)

    @property
    def inner_steps(self) -> int:
        """Steps taken since the last snapshot (the paper's inner-loop counter)."""
        return int(self._inner)

    @inner_steps.setter
    def inner_steps(self, value: int) -> None:
        self._inner.fill_(value)

    @property
    def needs_snapshot(self) -> bool:
        """True before the first snapshot and after every ``snapshot_every`` steps since the last one."""
        every = self.param_groups[0]["snapshot_every"]
        return not self._has_snapshot() or self.inner_steps >= every

    def _has_snapshot(self) -> bool:
        # Every parameter: one added by add_param_group after the last snapshot has none yet.
        return all("snapshot" in self.state.get(p, {}) for g in self.param_groups for p in g["params"])

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def take_snapshot(self, full_closure: Closure) -> Tensor:
        """Take a snapshot and its full gradient (see the class protocol); returns the full loss."""
        if self.option == "II":
            # Option II: restart the epoch from the iterate drawn uniformly among w_0 ... w_{m-1}
            # (parameters that have been through an epoch: none before the first snapshot).
            for param in self._params():
                if "candidate" in self.state.get(param, {}):
                    param.copy_(self.state[param]["candidate"])
        with torch.enable_grad():
            loss = full_closure()
        for param in self._params():
            if param.grad is None:
                raise ValueError(
                    "take_snapshot: full_closure left a parameter without .grad; call backward()"
                )
            param_state = self.state[param]
            param_state["snapshot"] = param.detach().clone()
            param_state["full_grad"] = param.grad.detach().clone()
            if self.option == "II":
                param_state["candidate"] = param.detach().clone()
        self.inner_steps = 0
        every = self.param_groups[0]["snapshot_every"]
        self._candidate.fill_(int(torch.randint(every, (1,), generator=self._generator)))
        return loss

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor:  # type: ignore[override]
        """One variance-reduced step; ``closure`` is required (see the class protocol)."""
        if closure is None:
            raise ValueError(
                "SVRG.step needs a closure that computes the minibatch loss and calls backward()"
            )
        if not self._has_snapshot():
            raise ValueError("SVRG has no snapshot yet: call optimizer.take_snapshot(full_closure) first")
        params = self._params()
        if self.option == "II":  # keep w_t as the candidate at the drawn step (a select: no host read)
            candidates = [self.state[param]["candidate"] for param in params]
            drawn = self._inner == self._candidate
            torch._foreach_copy_(candidates, [torch.where(drawn, p, c) for p, c in zip(params, candidates)])
        with torch.enable_grad():
            loss = closure()
        has_grad = [param.grad is not None for param in params]
        at_iterate = [param for param, present in zip(params, has_grad) if present]
        current_grads = [param.grad.clone() for param in at_iterate]
        current_values = [param.detach().clone() for param in params]
        torch._foreach_copy_(params, [self.state[param]["snapshot"] for param in params])
        with torch.enable_grad():
            closure()
        torch._foreach_copy_(params, current_values)
        for param, present in zip(params, has_grad):
            if not present:  # no gradient at the iterate: no step for this parameter
                param.grad = None
        if at_iterate:
            # g_i(w) - g_i(w~) + mu~, written into the .grad tensors in place: a compiled step then sees
            # the same gradient tensors at every step (a new .grad fails a guard: a recompile per step).
            corrected = torch._foreach_sub(current_grads, [param.grad for param in at_iterate])
            torch._foreach_add_(corrected, [self.state[param]["full_grad"] for param in at_iterate])
            torch._foreach_copy_([param.grad for param in at_iterate], corrected)
        super().step()
        torch._foreach_add_([self._inner], 1)
        return loss

    def __getstate__(self) -> dict[str, Any]:
        # torch pickles (and deep-copies) only defaults, state and param_groups; the snapshot schedule
        # and option II's draw live in attributes, without which a copy cannot step.
        extra = ("option", "_inner", "_candidate", "_generator")
        return {**super().__getstate__(), **{name: self.__dict__[name] for name in extra}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickles written before the counters became tensors hold them as Python ints.
        for old, new in (("inner_steps", "_inner"), ("_candidate_step", "_candidate")):
            if old in state and new not in state:
                state[new] = torch.tensor(state.pop(old), dtype=torch.int64)
        super().__setstate__(state)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["svrg"] = {"inner_steps": self.inner_steps, "option": self.option}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("svrg", {})
        super().load_state_dict(state_dict)
        self.inner_steps = extra.get("inner_steps", 0)
        self.option = extra.get("option", self.option)


def train_svrg(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, Any], Tensor],
    loader: Iterable[Any],
    optimizer: SVRG,
    epochs: int = 1,
) -> list[float]:
    """Run SVRG over a DataLoader: a snapshot on the full data every ``snapshot_every`` steps.

    ``loss_fn(model, batch)`` returns the mean loss of ``model`` on ``batch``; the full gradient is the
    batch-size-weighted mean over one pass of ``loader``. Returns the minibatch losses.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")

    def full_closure() -> Tensor:
        optimizer.zero_grad()
        total, count = 0.0, 0
        for batch in loader:
            size = len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)
            loss = loss_fn(model, batch) * size
            loss.backward()
            total, count = total + loss.item(), count + size
        for param in model.parameters():
            if param.grad is not None:
                param.grad.div_(count)
        return torch.tensor(total / count)

    losses = []
    for _ in range(epochs):
        for batch in loader:
            if optimizer.needs_snapshot:
                optimizer.take_snapshot(full_closure)

            def closure(batch=batch) -> Tensor:
                optimizer.zero_grad()
                loss = loss_fn(model, batch)
                loss.backward()
                return loss

            losses.append(optimizer.step(closure).detach().item())
    return losses
