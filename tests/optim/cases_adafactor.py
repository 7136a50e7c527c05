"""Rows for Adafactor (Shazeer & Stern 2018): torch.optim.Adafactor's form and the paper's.

The reference (tests/reference/adafactor.py) sees each parameter in its shape ("shaped" scope): the
quadratic-groups problem has a 3 x 4 matrix, a vector and a 2 x 2 x 2 tensor, the others one vector.
"""

import torch
from optim_descriptions import Case

import descentlab.optim as dl
from reference.adafactor import adafactor_step

# Documented defaults: torch.optim.Adafactor's docs (lr 1e-2, beta2_decay -0.8, eps (None, 1e-3), d 1,
# weight_decay 0), which are the paper's proposed hyperparameters; beta1 0 (no momentum, as the paper).
DEFAULTS = {
    dl.Adafactor: {
        "lr": 1e-2,
        "beta2_decay": -0.8,
        "eps": (None, 1e-3),
        "d": 1.0,
        "weight_decay": 0.0,
        "beta1": 0.0,
        "variant": "torch",
    },
}

_NOT_APPLICABLE = {
    "complex": "its moments factor real rows and columns: complex parameters are refused, as torch does",
    "cache-blocking": "per-tensor RMS (clipping, relative step) and row/column means: not elementwise",
}
_TORCH_NOT_APPLICABLE = {
    **_NOT_APPLICABLE,
    "torch-zero-size": "torch.optim.Adafactor divides by the size of the parameter (ZeroDivisionError)",
}

CASES = [
    Case(
        "adafactor",
        dl.Adafactor,
        {"lr": 0.02},
        adafactor_step,
        torch.optim.Adafactor,
        {"lr": 0.01, "d": 2.0},
        bad=[
            ({"beta2_decay": 0.5}, "beta2_decay must be <= 0"),
            ({"eps": (0.0, 1e-3)}, "eps[0] must be > 0"),
            ({"eps": (None, -1e-3)}, "eps[1] must be >= 0"),
            ({"eps": 1e-3}, "eps must be a pair"),
            ({"d": 0.5}, "d must be >= 1"),
            ({"weight_decay": -0.1}, "weight_decay must be >= 0"),
            ({"beta1": 1.0}, "beta1 must be in"),
            ({"lr": -0.1}, "lr must be >= 0"),
            ({"variant": "hf"}, "variant"),
        ],
        not_applicable=_TORCH_NOT_APPLICABLE,
        extra_arguments=("beta1", "differentiable"),
    ),
    Case(
        "adafactor-wd-eps-decay",
        dl.Adafactor,
        {"lr": 0.01, "weight_decay": 0.5, "eps": (1e-2, 1e-2), "beta2_decay": -0.6, "d": 1.5},
        adafactor_step,
        torch.optim.Adafactor,
        # beta2_decay -0.5 makes Rosenbrock's run amplify rounding 3x per step after step 40
        {"weight_decay": 0.0, "beta2_decay": -1.0},
        not_applicable=_TORCH_NOT_APPLICABLE,
        extra_arguments=("beta1", "differentiable"),
    ),
    Case(
        "adafactor-torch-momentum",
        dl.Adafactor,
        {"lr": 0.05, "beta1": 0.9},
        adafactor_step,
        None,
        {"beta1": 0.5},
        not_applicable=_NOT_APPLICABLE,
    ),
    Case(
        "adafactor-paper",
        dl.Adafactor,
        {"lr": 0.01, "variant": "paper"},
        adafactor_step,
        None,
        {"d": 1.2, "lr": 0.05},
        not_applicable=_NOT_APPLICABLE,
    ),
    Case(
        "adafactor-paper-momentum-eps",
        dl.Adafactor,
        {"variant": "paper", "beta1": 0.9, "lr": 0.05, "eps": (1e-3, 1e-2), "weight_decay": 0.1},
        adafactor_step,
        None,
        {"beta1": 0.5, "eps": (None, 1e-3)},
        not_applicable=_NOT_APPLICABLE,
    ),
]

for _case in CASES:
    _case.reference_scope = "shaped"
