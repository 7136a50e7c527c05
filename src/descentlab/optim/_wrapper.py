"""The one mechanism behind optimizers that wrap another one (Lookahead, SAM, WeightAveraging).

A wrapper is a real :class:`torch.optim.Optimizer` around a *base* optimizer (any descentlab or torch
optimizer that steps from a gradient). It shares the base's ``param_groups`` list itself, so a torch
scheduler, ``add_param_group`` or a hand edit of ``lr`` reaches the base with no copying; the wrapper's
own hyperparameters live in those same groups under prefixed keys (``lookahead_k``, ``sam_rho``,
``ema_decay``, ...) that no base uses, so both are saved, scheduled and validated per group.

Two ways to build one:

- ``Wrapper(params, base="sgd", <wrapper keys>, **base_hyperparameters)``: the base is built from its
  registry name (or class) over ``params``, with every other keyword passed to it (``lr``,
  ``momentum``, ``variant`` ...). This is the form the lab, the CLI and ``descentlab tune`` use.
- ``Wrapper(optimizer, <wrapper keys>)``: wrap an optimizer that already exists.

``state_dict()`` is the base's state_dict plus one entry, ``state_key`` (``"lookahead_state"``, ...),
holding the wrapper's per-parameter state by parameter index; so a base checkpoint loads into a wrapper
(whose own state then starts fresh) and wrappers nest.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping
from itertools import chain
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from descentlab.optim._validation import ValidatedOptimizer

DEFAULT_BASE = "sgd"
"""The base a wrapper builds when given parameters and no ``base``."""


def build_base(
    params: Any, base: str | type[Optimizer], hyperparameters: dict[str, Any], wrapper: str
) -> Optimizer:
    """The base optimizer: ``params`` itself when it is one, else ``base`` built over ``params``."""
    from descentlab.optim.registry import make_optimizer, resolve_optimizer_class, step_protocol

    if isinstance(params, Optimizer):
        if base != DEFAULT_BASE:
            raise ValueError(
                f"{wrapper} got an optimizer to wrap and base={base!r}: pass one of them (the base is the "
                "optimizer given)"
            )
        if hyperparameters:
            raise ValueError(
                f"{wrapper} wraps an existing optimizer as given: pass its hyperparameters to it, not to "
                f"{wrapper} (got {', '.join(sorted(hyperparameters))})"
            )
        optimizer = params
    else:
        if not isinstance(base, (str, type)):
            raise ValueError(
                f"base must be an optimizer name such as 'sgd' or an Optimizer class, got {base!r}"
            )
        try:
            cls = resolve_optimizer_class(base)
        except (TypeError, ValueError) as error:
            raise ValueError(f"base={base!r}: {error}") from None
        try:
            optimizer = make_optimizer(cls, params, **hyperparameters)
        except ValueError as error:
            raise ValueError(f"{error} (the base optimizer of {wrapper})") from None
    protocol = step_protocol(type(optimizer))
    if protocol != "gradient":
        raise ValueError(
            f"{wrapper} needs a base optimizer that steps from a gradient, got {type(optimizer).__name__} "
            f"(step protocol {protocol!r}); choose a gradient optimizer such as 'sgd' or 'adam'"
        )
    return optimizer


class OptimizerWrapper(ValidatedOptimizer):
    """Base class of the wrappers: delegation to ``self.base`` and the shared-groups bookkeeping.

    Subclasses pass their own group keys with their values (``own``) to ``__init__``, declare their
    checks in ``hyperparameters``, a ``state_key`` and a ``form_key``, and implement :meth:`step`. Hooks
    registered on the wrapper (step, state_dict, load_state_dict) run as torch runs them.
    """

    reference: ClassVar[str] = ""
    variants: ClassVar[tuple[str, ...]] = ()
    step_protocol: ClassVar[str] = "gradient"
    state_key: ClassVar[str] = ""
    # The group key that selects the wrapper's form (its ``variant`` keyword goes to the base), shown
    # in the ``descentlab optimizers`` table; its check is a ``Choice`` of the forms, the default first.
    form_key: ClassVar[str] = ""

    def __init__(
        self,
        params: Any,
        base: str | type[Optimizer],
        own: dict[str, Any],
        base_hyperparameters: dict[str, Any],
    ) -> None:
        self.validate_group(own)
        base_optimizer = build_base(params, base, base_hyperparameters, type(self).__name__)
        clashes = sorted(set(own) & set(base_optimizer.defaults))
        if clashes:  # a wrapper of the same kind inside: its keys would be shared with ours
            raise ValueError(
                f"{type(self).__name__}: the base {type(base_optimizer).__name__} already uses the group "
                f"keys {clashes}; wrap it in another kind of wrapper"
            )
        # torch's bookkeeping (hooks, the step wrapper, ``state``) without groups of its own: add_param_group
        # only delegates once ``base`` is set, and the placeholder group is replaced by the base's list.
        super().__init__([{"params": []}], {**base_optimizer.defaults, **own})
        self.base = base_optimizer
        self.own_defaults = dict(own)
        self.param_groups = base_optimizer.param_groups
        for group in self.param_groups:
            self._fill_own_keys(group)
            self.validate_group(group)

    # --- validation of the wrapper's own keys (the base validates its keys itself) ----------------------
    def validate_group(self, group: Mapping[str, Any]) -> None:
        """Run the wrapper's declared checks on its own keys of ``group``, then :meth:`check_group`."""
        for name, value in group.items():
            if name in self.hyperparameters:
                self.hyperparameters[name](name, value)
        self.check_group(dict(group))

    def _fill_own_keys(self, group: dict[str, Any]) -> None:
        for key, value in self.own_defaults.items():
            group.setdefault(key, value)

    # --- delegation --------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add the group to the base (which validates its keys), with the wrapper's keys filled in."""
        if "base" not in self.__dict__:  # torch.optim.Optimizer.__init__'s placeholder group
            Optimizer.add_param_group(self, param_group)
            return
        self.validate_group(param_group)
        self.base.add_param_group(param_group)
        self._fill_own_keys(self.param_groups[-1])

    def zero_grad(self, set_to_none: bool = True) -> None:
        """The base's ``zero_grad``."""
        self.base.zero_grad(set_to_none=set_to_none)

    def params(self) -> list[Tensor]:
        """Every parameter of every group, in group order (the order of state_dict indices)."""
        return list(chain.from_iterable(group["params"] for group in self.param_groups))

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "base": self.base, "own_defaults": self.own_defaults}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.param_groups = self.base.param_groups

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.own_defaults}, base={self.base!r})"

    # --- state_dict: the base's, plus the wrapper's state by parameter index --------------------------
    def state_dict(self) -> dict[str, Any]:
        """The base's ``state_dict`` with the wrapper's per-parameter state under ``state_key``."""
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        saved = self.base.state_dict()
        # As torch's state_dict: the state's own tensors, not copies.
        own = {
            index: dict(self.state[param])
            for index, param in enumerate(self.params())
            if self.state.get(param)
        }
        state_dict = {**saved, self.state_key: own}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            state_dict = post_hook(self, state_dict) or state_dict
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load the base's part into the base and the wrapper's part here; a base checkpoint loads too.

        Saved groups are checked for the wrapper's keys before anything is loaded; groups saved without
        them (a checkpoint of the base alone) get the constructor's values.
        """
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            state_dict = pre_hook(self, state_dict) or state_dict
        for saved in state_dict["param_groups"]:
            self.validate_group({**self.own_defaults, **saved})
        base_part = {key: value for key, value in state_dict.items() if key != self.state_key}
        self.base.load_state_dict(base_part)
        self.param_groups = self.base.param_groups
        for group in self.param_groups:
            self._fill_own_keys(group)
        self.state.clear()
        own = state_dict.get(self.state_key, {})
        for index, param in enumerate(self.params()):
            if index in own:
                self.state[param] = {key: _copy_value(value, param) for key, value in own[index].items()}
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    # --- what a subclass supplies ------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step of the wrapped algorithm (see the subclass)."""
        raise NotImplementedError


def real_view(tensor: Tensor) -> Tensor:
    """``tensor`` as real numbers (a complex tensor as its real pairs), sharing its memory."""
    return torch.view_as_real(tensor) if torch.is_complex(tensor) else tensor


def _copy_value(value: Any, like: Tensor) -> Any:
    """A copy of a saved state value; tensors go to ``like``'s device (their dtype is kept, bit for bit)."""
    if isinstance(value, Tensor):
        return value.detach().to(device=like.device, copy=True)
    return copy.deepcopy(value)


@contextlib.contextmanager
def swapped_in(pairs: list[tuple[Tensor, Tensor]]) -> Iterator[None]:
    """Hold ``value`` in each ``param`` of ``pairs`` inside the block; restore every param exactly after."""
    saved = []
    with torch.no_grad():
        for param, value in pairs:
            saved.append((param, param.detach().clone()))
            param.copy_(value)
    try:
        yield
    finally:
        with torch.no_grad():
            for param, original in saved:
                param.copy_(original)
