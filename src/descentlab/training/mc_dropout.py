"""Monte Carlo dropout: predictive mean and uncertainty from N stochastic forward passes.

Gal & Ghahramani, "Dropout as a Bayesian Approximation", ICML 2016 (https://arxiv.org/abs/1506.02142).

How dropout is kept active while everything else is in eval mode: the model is put in ``eval()`` (so batch
norm uses its running statistics and does not update them), and the forward passes run under a
:class:`torch.overrides.TorchFunctionMode` that rewrites every call of ``F.dropout``, ``F.dropout1d/2d/3d``,
``F.alpha_dropout``, ``F.feature_alpha_dropout`` and their ``torch.*dropout`` counterparts to
``training=True``. This reaches ``nn.Dropout``
modules *and* functional calls such as ``F.dropout(x, p, training=self.training)`` in a custom ``forward``.
``nn.MultiheadAttention`` modules are switched to train mode (their attention dropout is decided from
``self.training``). What it cannot reach: code that skips the dropout call itself when not training
(``if self.training: x = F.dropout(x)``) or passes ``dropout_p`` straight to
``F.scaled_dot_product_attention``; if no dropout call happens at all, a ``ValueError`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 (the field's name for it)
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["MCDropoutPrediction", "mc_dropout_predict"]

# function -> name of its "training" argument, which is the third positional one in every case.
_DROPOUT_FUNCTIONS = {
    F.dropout: "training",
    F.dropout1d: "training",
    F.dropout2d: "training",
    F.dropout3d: "training",
    F.alpha_dropout: "training",
    F.feature_alpha_dropout: "training",
    torch.dropout: "train",
    torch.feature_dropout: "train",
    torch.alpha_dropout: "train",
    torch.feature_alpha_dropout: "train",
}


class _ForceDropout(TorchFunctionMode):
    """Turn every functional dropout call into its training form, counting the calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _DROPOUT_FUNCTIONS:
            self.calls += 1
            if len(args) > 2:  # positional (input, p, training, ...)
                args = (*args[:2], True, *args[3:])
            else:
                kwargs[_DROPOUT_FUNCTIONS[func]] = True
        return func(*args, **kwargs)


@dataclass(frozen=True)
class MCDropoutPrediction:
    """Result of :func:`mc_dropout_predict`.

    Attributes:
        mean: mean over samples of the outputs (of the probabilities for ``task="classification"``).
        std: standard deviation over samples (unbiased, N-1), same shape as ``mean``.
        predictive_entropy: :math:`H[\\bar p] = -\\sum_c \\bar p_c \\log \\bar p_c` per input
            (classification only, else ``None``).
        mutual_information: :math:`H[\\bar p] - \\frac1N\\sum_n H[p_n]` (BALD; classification only).
        samples: all samples, shape ``(num_samples, *output_shape)``, if ``keep_samples``.
    """

    mean: torch.Tensor
    std: torch.Tensor
    predictive_entropy: torch.Tensor | None = None
    mutual_information: torch.Tensor | None = None
    samples: torch.Tensor | None = None


def _entropy(probabilities: torch.Tensor) -> torch.Tensor:
    return -(probabilities * torch.log(probabilities.clamp_min(torch.finfo(probabilities.dtype).tiny))).sum(
        -1
    )


@torch.no_grad()
def mc_dropout_predict(
    model: nn.Module,
    inputs: torch.Tensor,
    num_samples: int = 30,
    task: str = "regression",
    samples_per_pass: int = 1,
    keep_samples: bool = False,
) -> MCDropoutPrediction:
    """Predict with dropout active and batch norm in eval mode, over ``num_samples`` passes.

    Args:
        model: any module with dropout (modules or functional calls, see the module docstring).
        inputs: a batch, first dimension = batch.
        num_samples: N >= 2 stochastic passes.
        task: ``"regression"`` (statistics of raw outputs) or ``"classification"`` (outputs are logits over
            the last dimension; statistics of softmax probabilities, plus entropies).
        samples_per_pass: how many samples share one forward pass, by repeating ``inputs`` along the batch
            dimension (valid because in eval mode batch rows do not interact); trades memory for speed.
        keep_samples: also return all samples.

    The model's ``training`` flags (every submodule's) are restored afterwards, even on error.
    Randomness comes from torch's global generator; seed it for reproducible samples.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 2:
        raise ValueError(f"num_samples must be an int >= 2 (a std needs two samples), got {num_samples!r}")
    if isinstance(samples_per_pass, bool) or not isinstance(samples_per_pass, int) or samples_per_pass < 1:
        raise ValueError(f"samples_per_pass must be an int >= 1, got {samples_per_pass!r}")
    if task not in ("regression", "classification"):
        raise ValueError(f"task must be 'regression' or 'classification', got {task!r}")
    modes = {module: module.training for module in model.modules()}
    batch = inputs.shape[0]
    outputs = []
    try:
        model.eval()
        for module in model.modules():
            if isinstance(module, nn.MultiheadAttention):
                module.train()
        force = _ForceDropout()
        with force:
            remaining = num_samples
            while remaining > 0:
                k = min(samples_per_pass, remaining)
                out = model(inputs.repeat(k, *([1] * (inputs.ndim - 1))) if k > 1 else inputs)
                outputs.extend(out.reshape(k, batch, *out.shape[1:]).unbind(0))
                remaining -= k
                if force.calls == 0:
                    raise ValueError(
                        f"{type(model).__name__} made no dropout call, so MC dropout would have zero spread; "
                        "add nn.Dropout or F.dropout(..., training=self.training) to the model"
                    )
    finally:
        for module, mode in modes.items():
            module.training = mode
    samples = torch.stack(outputs)
    if task == "classification":
        samples = torch.softmax(samples, dim=-1)
    mean = samples.mean(0)
    std = samples.std(0, correction=1)
    entropy = information = None
    if task == "classification":
        entropy = _entropy(mean)
        information = entropy - _entropy(samples).mean(0)
    return MCDropoutPrediction(mean, std, entropy, information, samples if keep_samples else None)
