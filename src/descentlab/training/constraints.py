"""Max-norm constraint: keep every neuron's incoming weight vector inside a ball of radius r.

After each optimizer step, each incoming weight vector :math:`w_j` is rescaled to
:math:`w_j \\leftarrow w_j \\cdot \\min(1, r / \\|w_j\\|_2)` (Srivastava et al., "Dropout: A Simple Way to
Prevent Neural Networks from Overfitting", JMLR 2014, section 5.1). The rescaling is torch's
:func:`torch.renorm`, applied along the axis that indexes output units:

=========================  ======================  ==========================================
layer                      weight shape            one neuron's incoming vector
=========================  ======================  ==========================================
``nn.Linear``              (out, in)               a row ``weight[j]``
``nn.Conv1d/2d/3d``        (out, in/groups, *k)    an output channel ``weight[j]`` (all of it)
``nn.ConvTranspose1d/2d/3d`` (in, out/groups, *k)  ``weight[:, j]`` (only with ``groups=1``)
``nn.Bilinear``            (out, in1, in2)         ``weight[j]``
=========================  ======================  ==========================================

Biases are never constrained.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from descentlab.optim._validation import check_positive

__all__ = ["MaxNormConstraint", "apply_max_norm", "attach_max_norm", "neuron_axis"]

_OUTPUT_AXIS_0 = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Bilinear)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def neuron_axis(module: nn.Module) -> int | None:
    """The weight axis that indexes output neurons for ``module``, or ``None`` if it is not constrained.

    Raises:
        ValueError: for a grouped transposed convolution, whose per-output-channel vectors are not a slice.
    """
    if isinstance(module, _OUTPUT_AXIS_0):
        return 0
    if isinstance(module, _TRANSPOSED):
        if module.groups != 1:
            raise ValueError(
                f"max-norm on a grouped ConvTranspose (groups={module.groups}) is not supported: an output "
                "channel's incoming weights are spread over several groups; exclude this layer by name"
            )
        return 1
    return None


class MaxNormConstraint:
    """Rescale incoming weight vectors of a model's layers to norm ``<= max_norm``.

    Args:
        model: the model whose ``Linear``/``Conv``/``ConvTranspose``/``Bilinear`` weights are constrained.
        max_norm: the radius r (> 0); Srivastava et al. report r between 3 and 4 working well with dropout.
        include: glob patterns on module names (``"encoder.*"``); default: every supported layer.
        exclude: glob patterns on module names to leave alone, e.g. the output layer.

    Example:
        >>> constraint = MaxNormConstraint(model, max_norm=3.0)  # doctest: +SKIP
        >>> handle = constraint.attach(optimizer)  # runs after every optimizer.step()  # doctest: +SKIP
        >>> handle.remove()  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        max_norm: float,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> None:
        check_positive("max_norm", max_norm)
        for name, patterns in (("include", include), ("exclude", exclude)):
            listed = isinstance(patterns, (list, tuple)) and all(isinstance(p, str) for p in patterns)
            if not (listed or (name == "include" and patterns is None)):
                raise TypeError(
                    f"{name} must be a list of glob patterns, e.g. ['encoder.*'], got {patterns!r}"
                )
        self.max_norm = float(max_norm)
        self.targets: list[tuple[str, nn.Parameter, int]] = []
        for name, module in model.named_modules():
            if include is not None and not any(fnmatch.fnmatchcase(name, pat) for pat in include):
                continue
            if any(fnmatch.fnmatchcase(name, pat) for pat in exclude):
                continue
            axis = neuron_axis(module)
            if axis is not None:
                self.targets.append((name, module.weight, axis))
        if not self.targets:
            raise ValueError(
                f"no layer to constrain in {type(model).__name__} with include={include}, "
                f"exclude={list(exclude)}; "
                "max-norm applies to Linear, ConvNd, ConvTransposeNd and Bilinear weights"
            )

    @torch.no_grad()
    def apply(self) -> None:
        """Rescale every targeted weight now."""
        for _, weight, axis in self.targets:
            # renorm's dim is the axis *along which* sub-tensors are taken, i.e. the neuron axis.
            weight.copy_(torch.renorm(weight, p=2, dim=axis, maxnorm=self.max_norm))

    def attach(self, optimizer: torch.optim.Optimizer) -> RemovableHandle:
        """Run :meth:`apply` after every ``optimizer.step()``; the returned handle's ``remove()`` detaches."""
        return optimizer.register_step_post_hook(lambda _optimizer, _args, _kwargs: self.apply())


def apply_max_norm(model: nn.Module, max_norm: float, **kwargs) -> None:
    """One-off max-norm rescaling of ``model``; ``kwargs`` as in :class:`MaxNormConstraint`."""
    MaxNormConstraint(model, max_norm, **kwargs).apply()


def attach_max_norm(
    optimizer: torch.optim.Optimizer, model: nn.Module, max_norm: float, **kwargs
) -> RemovableHandle:
    """Enforce max-norm on ``model`` after every step of any ``torch.optim`` optimizer.

    Applies the constraint once immediately, so the weights satisfy it from the start, then after every
    step. Returns the hook's handle (``handle.remove()`` detaches). ``kwargs`` as in
    :class:`MaxNormConstraint`.
    """
    constraint = MaxNormConstraint(model, max_norm, **kwargs)
    constraint.apply()
    return constraint.attach(optimizer)
