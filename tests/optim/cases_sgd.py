"""Rows for SGD and its momentum forms."""

import torch
from optim_descriptions import Case

import descentlab.optim as dl
from reference.sgd import sgd_step

# Documented defaults, from torch.optim.SGD's docs (lr 1e-3 since torch 2.6) and descentlab's variant names.
DEFAULTS = {
    dl.SGD: {
        "lr": 1e-3,
        "momentum": 0.0,
        "dampening": 0.0,
        "weight_decay": 0.0,
        "nesterov": False,
        "variant": "torch",
    },
}

CASES = [
    Case(
        "sgd",
        dl.SGD,
        {"lr": 0.001},
        sgd_step,
        torch.optim.SGD,
        {"lr": 0.0005},
        bad=[({"lr": -1.0}, "lr"), ({"momentum": -0.1}, "momentum"), ({"variant": "nope"}, "variant")],
    ),
    Case(
        "sgd-momentum-wd",
        dl.SGD,
        {"lr": 0.0005, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01},
        sgd_step,
        torch.optim.SGD,
        {"momentum": 0.5, "weight_decay": 0.0},
        bad=[({"nesterov": True, "momentum": 0.0}, "nesterov")],
    ),
    Case(
        "sgd-nesterov",
        dl.SGD,
        {"lr": 0.0005, "momentum": 0.8, "nesterov": True},
        sgd_step,
        torch.optim.SGD,
        {"lr": 0.0002},
    ),
    Case(
        "sgd-ema",
        dl.SGD,
        {"lr": 0.002, "momentum": 0.9, "variant": "ema"},
        sgd_step,
        None,
        {"momentum": 0.5},
        bad=[({"variant": "ema", "dampening": 0.5, "momentum": 0.9}, "dampening")],
    ),
    Case(
        "sgd-ema-nesterov",
        dl.SGD,
        {"lr": 0.002, "momentum": 0.9, "nesterov": True, "variant": "ema"},
        sgd_step,
        None,
    ),
]
