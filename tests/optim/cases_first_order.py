"""Rows for the optimizers torch does not have: Momentum, Nesterov, NormalizedGD, Lion.

Nesterov's parameters hold the look-ahead point, so the generic reference runner (which compares the held
parameters) cannot express eq. 6.12; its reference comparison lives in test_nesterov_lookahead.py.
"""

from optim_descriptions import Case

import descentlab.optim as dl
from reference.first_order import lion_step, momentum_step, normalized_gd_step

# Documented defaults. Momentum, Nesterov and NormalizedGD have no published ones (UDL sec. 6.3 gives
# none): these are the values their signatures document. Lion's betas (0.9, 0.99) are Chen et al. 2023's.
DEFAULTS = {
    dl.Momentum: {"lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0},
    dl.Nesterov: {"lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0},
    dl.NormalizedGD: {"lr": 1e-3, "betas": (0.0, 0.0), "eps": 1e-8},
    dl.Lion: {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.0},
}

CASES = [
    Case(
        "momentum",
        dl.Momentum,
        {"lr": 0.002},
        momentum_step,
        None,
        {"momentum": 0.5},
        bad=[({"momentum": 1.0}, "momentum"), ({"weight_decay": -0.1}, "weight_decay"), ({"lr": -1}, "lr")],
    ),
    Case("momentum-wd", dl.Momentum, {"lr": 0.003, "momentum": 0.7, "weight_decay": 0.05}, momentum_step),
    Case(
        "nesterov",
        dl.Nesterov,
        {"lr": 0.002, "momentum": 0.8, "weight_decay": 0.01},
        None,
        None,
        bad=[({"momentum": -0.2}, "momentum"), ({"weight_decay": -1.0}, "weight_decay")],
    ),
    Case(
        "normalized-gd",
        dl.NormalizedGD,
        {"lr": 0.01},
        normalized_gd_step,
        None,
        {"lr": 0.003},
        bad=[({"betas": (0.9, 1.0)}, "betas[1]"), ({"eps": -1e-8}, "eps")],
    ),
    Case(
        "normalized-gd-averaged",
        dl.NormalizedGD,
        {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-6},
        normalized_gd_step,
        None,
        {"betas": (0.5, 0.9)},
    ),
    Case(
        "lion",
        dl.Lion,
        {"lr": 0.001},
        lion_step,
        None,
        {"lr": 0.0005},
        bad=[({"betas": (1.0, 0.99)}, "betas[0]"), ({"weight_decay": -0.5}, "weight_decay")],
    ),
    Case(
        "lion-wd",
        dl.Lion,
        {"lr": 0.002, "betas": (0.8, 0.95), "weight_decay": 0.3},
        lion_step,
        None,
        {"weight_decay": 0.0, "betas": (0.95, 0.98)},
    ),
]
