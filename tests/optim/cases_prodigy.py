"""Rows for Prodigy (Mishchenko & Defazio 2024): the authors' form, the paper's, and the authors' options.

The reference steps the flat vector of each param group: d is one estimate per group, from sums over all
of the group's tensors.
"""

from optim_descriptions import Case

import descentlab.optim as dl
from reference.prodigy import prodigy_step

# Documented defaults: the paper's (d0 = 1e-6, lr = 1, Adam's betas and eps; beta3 = sqrt(beta2)) and the
# authors' prodigyopt 1.1.2 for its options (no bias correction, no safeguard, d_coef 1, no growth
# limit, slice_p 1, decoupled decay of 0); variant names from the class.
DEFAULTS = {
    dl.Prodigy: {
        "lr": 1.0,
        "betas": (0.9, 0.999),
        "beta3": None,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "decoupled_weight_decay": True,
        "use_bias_correction": False,
        "safeguard_warmup": False,
        "d0": 1e-6,
        "d_coef": 1.0,
        "growth_rate": None,  # no limit (the authors' float("inf"))
        "slice_p": 1,
        "variant": "authors",
    },
}

CASES = [
    Case(
        "prodigy",
        dl.Prodigy,
        {"lr": 1.0},
        prodigy_step,
        second_group={"d_coef": 0.5},
        bad=[
            ({"growth_rate": 0.5}, "growth_rate must be >= 1"),
            ({"slice_p": 0}, "slice_p must be an integer >= 1"),
            ({"d0": 0.0}, "d0 must be > 0"),
            ({"beta3": 1.5}, "beta3 must be in [0, 1"),
            ({"variant": "paper", "use_bias_correction": True}, "has no use_bias_correction"),
            ({"variant": "dadapt"}, "variant"),
        ],
        reference_scope="group",
        not_applicable={"cache-blocking": "not elementwise: d comes from sums over the whole group"},
    ),
    Case(
        "prodigy-paper",
        dl.Prodigy,
        {"lr": 1.0, "variant": "paper", "eps": 1e-3, "betas": (0.9, 0.99), "d0": 1e-4},
        prodigy_step,
        second_group={"lr": 0.5},
        reference_scope="group",
        not_applicable={"cache-blocking": "not elementwise: d comes from sums over the whole group"},
    ),
    Case(
        "prodigy-options",
        dl.Prodigy,
        {
            "lr": 1.0,
            "use_bias_correction": True,
            "safeguard_warmup": True,
            "growth_rate": 1.05,
            "beta3": 0.95,
            "slice_p": 3,
            "weight_decay": 0.01,
            "decoupled_weight_decay": False,
        },
        prodigy_step,
        second_group={"d_coef": 2.0, "lr": 0.7},
        reference_scope="group",
        not_applicable={"cache-blocking": "not elementwise: d comes from sums over the whole group"},
    ),
    Case(
        "prodigy-no-momentum-decoupled",
        dl.Prodigy,
        {"lr": 1.0, "betas": (0.0, 0.99), "eps": 1e-3, "weight_decay": 0.05},
        prodigy_step,
        second_group={"weight_decay": 0.0},
        reference_scope="group",
        not_applicable={"cache-blocking": "not elementwise: d comes from sums over the whole group"},
    ),
]
