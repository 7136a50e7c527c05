"""Rows for the wrappers (Lookahead, SAM, WeightAveraging) over a few bases.

A row's reference hyperparameters are the wrapper's documented defaults (k = 5, alpha = 0.5, inside the
paper's tested k in {5, 10}, alpha in {0.5, 0.8};
SAM's rho = 0.05 of Foret et al., ASAM's eta = 0.01 of Kwon et al.; EMA decay 0.999, start 0, every step)
over its base's documented defaults (torch.optim.Adam's docs; UDL eq. 6.11 for Momentum), written here.
SAM's perturbation uses one norm over all parameter groups, which neither reference scope of the table
can express: its float64 reference runs over all parameters jointly in test_wrappers.py. Likewise the
table compares the live weights of WeightAveraging (the base's trajectory); its averages are checked
against their reference there.
"""

from optim_descriptions import Case

import descentlab.optim as dl
from reference.adam import adam_step
from reference.first_order import momentum_step
from reference.wrappers import lookahead

_ADAM = {
    "lr": 1e-3,
    "betas": (0.9, 0.999),
    "eps": 1e-8,
    "weight_decay": 0.0,
    "amsgrad": False,
    "decoupled_weight_decay": False,
    "variant": "torch",
}
_MOMENTUM = {"lr": 1e-2, "momentum": 0.9, "weight_decay": 0.0}

DEFAULTS = {
    dl.Lookahead: {"lookahead_k": 5, "lookahead_alpha": 0.5, "lookahead_variant": "paper"},
    dl.SAM: {"sam_rho": 0.05, "sam_variant": "sam", "sam_eta": 0.01},
    dl.WeightAveraging: {"average": "ema", "ema_decay": 0.999, "average_start": 0, "average_every": 1},
}

_BLOCKING = {
    "cache-blocking": "the wrapper's own updates are whole-tensor lerps and copies; the base's blocked "
    "update is its own row's check",
}

CASES = [
    Case(
        "lookahead-adam",
        dl.Lookahead,
        {"base": "adam", "lr": 0.01, "lookahead_k": 7},
        lookahead(adam_step),
        None,
        {"lookahead_alpha": 0.3, "lr": 0.02},
        bad=[
            ({"lookahead_k": 0}, "lookahead_k"),
            ({"lookahead_alpha": 1.5}, "lookahead_alpha"),
            ({"lookahead_variant": "nope"}, "lookahead_variant"),
            ({"base": "nope"}, "base='nope'"),
            ({"base": "linesearchgd", "lr": 1.0}, "steps from a gradient"),
        ],
        defaults=_ADAM,
        not_applicable=_BLOCKING,
    ),
    Case(
        "lookahead-momentum-timm",
        dl.Lookahead,
        {"base": "momentum", "lr": 0.002, "lookahead_alpha": 0.8, "lookahead_variant": "timm"},
        lookahead(momentum_step),
        None,
        {"lookahead_k": 3},
        defaults=_MOMENTUM,
        not_applicable=_BLOCKING,
    ),
    Case(
        "lookahead-momentum-torch-optimizer",
        dl.Lookahead,
        {"base": "momentum", "lr": 0.002, "lookahead_k": 6, "lookahead_variant": "torch-optimizer"},
        lookahead(momentum_step),
        None,
        {"momentum": 0.5},
        defaults=_MOMENTUM,
        not_applicable=_BLOCKING,
    ),
    Case(
        "sam-momentum",
        dl.SAM,
        {"base": "momentum", "lr": 0.002, "sam_rho": 0.1},
        None,
        None,
        {"sam_rho": 0.02},
        bad=[
            ({"sam_rho": -0.1}, "sam_rho"),
            ({"sam_variant": "gsam"}, "sam_variant"),
            ({"sam_eta": -1.0}, "sam_eta"),
        ],
        defaults=_MOMENTUM,
        not_applicable=_BLOCKING,
    ),
    Case(
        "asam-adam",
        dl.SAM,
        {"base": "adam", "lr": 0.01, "sam_rho": 0.5, "sam_variant": "asam"},
        None,
        None,
        defaults=_ADAM,
        not_applicable=_BLOCKING,
    ),
    Case(
        "swa-adam",
        dl.WeightAveraging,
        {"base": "adam", "lr": 0.01, "average": "swa", "average_start": 20, "average_every": 3},
        adam_step,
        None,
        {"lr": 0.005},
        bad=[
            ({"average": "mean"}, "average"),
            ({"ema_decay": 1.5}, "ema_decay"),
            ({"average_every": 0}, "average_every"),
            ({"average_start": -1}, "average_start"),
        ],
        defaults=_ADAM,
        not_applicable=_BLOCKING,
    ),
    Case(
        "ema-momentum",
        dl.WeightAveraging,
        {"base": "momentum", "lr": 0.002, "ema_decay": 0.9},
        momentum_step,
        None,
        defaults=_MOMENTUM,
        not_applicable=_BLOCKING,
    ),
]
