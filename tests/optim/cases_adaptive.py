"""Rows for the per-coordinate adaptive family: Adagrad, RMSprop, Adadelta, Adamax."""

import torch
from optim_descriptions import Case

import descentlab.optim as dl
from reference.adaptive import adadelta_step, adagrad_step, adamax_step, rmsprop_step


def _zeiler_algorithm_1(param, grad, state, hyper, t):
    """Zeiler 2012, Algorithm 1 with no learning rate (what variant='zeiler' computes)."""
    return adadelta_step(param, grad, state, {**hyper, "variant": "zeiler"}, t)


# Documented defaults, from torch.optim's docs and descentlab's variant names.
DEFAULTS = {
    dl.Adagrad: {
        "lr": 1e-2,
        "lr_decay": 0.0,
        "eps": 1e-10,
        "weight_decay": 0.0,
        "initial_accumulator_value": 0.0,
        "variant": "torch",
    },
    dl.RMSprop: {
        "lr": 1e-2,
        "alpha": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.0,
        "momentum": 0.0,
        "centered": False,
        "variant": "torch",
    },
    dl.Adadelta: {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0, "variant": "torch"},
    dl.Adamax: {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "variant": "torch"},
}

CASES = [
    # --- Adagrad ---------------------------------------------------------------------------------
    Case(
        "adagrad",
        dl.Adagrad,
        {"lr": 0.1},
        adagrad_step,
        torch.optim.Adagrad,
        {"lr": 0.05},
        bad=[
            ({"lr_decay": -0.1}, "lr_decay must be >= 0"),
            ({"initial_accumulator_value": -1.0}, "initial_accumulator_value must be >= 0"),
            ({"eps": -1e-3}, "eps must be > 0"),
            ({"weight_decay": -0.5}, "weight_decay must be >= 0"),
            ({"lr": -0.1}, "lr must be >= 0"),
            ({"variant": "duchi"}, "variant"),
        ],
    ),
    Case(
        "adagrad-decay-init-wd",
        dl.Adagrad,
        {"lr": 0.1, "lr_decay": 0.05, "initial_accumulator_value": 0.3, "weight_decay": 0.02, "eps": 1e-6},
        adagrad_step,
        torch.optim.Adagrad,
        {"lr_decay": 0.0, "weight_decay": 0.0},
    ),
    Case(
        "adagrad-eps-inside",
        dl.Adagrad,
        {"lr": 0.1, "eps": 1e-3, "initial_accumulator_value": 0.1, "variant": "eps_inside"},
        adagrad_step,
        None,
        {"lr_decay": 0.01, "initial_accumulator_value": 0.5},
    ),
    # --- RMSprop ---------------------------------------------------------------------------------
    Case(
        "rmsprop",
        dl.RMSprop,
        {"lr": 0.01},
        rmsprop_step,
        torch.optim.RMSprop,
        {"lr": 0.005, "alpha": 0.9},
        bad=[
            ({"alpha": 1.5}, r"alpha must be in [0, 1]"),
            ({"alpha": -0.1}, r"alpha must be in [0, 1]"),
            ({"momentum": -0.9}, "momentum must be >= 0"),
            ({"eps": -1.0}, "eps must be > 0"),
            ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
            ({"variant": "graves"}, "centered=True"),
        ],
    ),
    Case(
        "rmsprop-centered-momentum-wd",
        dl.RMSprop,
        {"lr": 0.002, "alpha": 0.9, "momentum": 0.8, "centered": True, "weight_decay": 0.01},
        rmsprop_step,
        torch.optim.RMSprop,
        {"momentum": 0.5, "weight_decay": 0.0},
    ),
    Case("rmsprop-momentum", dl.RMSprop, {"lr": 0.002, "momentum": 0.9}, rmsprop_step, torch.optim.RMSprop),
    Case("rmsprop-centered", dl.RMSprop, {"lr": 0.005, "centered": True}, rmsprop_step, torch.optim.RMSprop),
    Case(
        "rmsprop-eps-inside",
        dl.RMSprop,
        {"lr": 0.005, "eps": 1e-4, "momentum": 0.5, "variant": "eps_inside"},
        rmsprop_step,
        None,
        {"centered": True, "alpha": 0.95},
    ),
    Case(
        "rmsprop-graves",
        dl.RMSprop,
        {"lr": 1e-3, "alpha": 0.95, "momentum": 0.9, "eps": 1e-4, "centered": True, "variant": "graves"},
        rmsprop_step,
        None,
        {"lr": 5e-4, "momentum": 0.5},
    ),
    Case(
        "rmsprop-graves-no-momentum",
        dl.RMSprop,
        {"lr": 1e-3, "alpha": 0.95, "eps": 1e-4, "centered": True, "weight_decay": 0.01, "variant": "graves"},
        rmsprop_step,
        None,
    ),
    # --- Adadelta --------------------------------------------------------------------------------
    Case(
        "adadelta",
        dl.Adadelta,
        {"lr": 0.5},
        adadelta_step,
        torch.optim.Adadelta,
        {"lr": 0.25, "rho": 0.95},
        bad=[
            ({"rho": 1.5}, r"rho must be in [0, 1]"),
            ({"eps": -1.0}, "eps must be > 0"),
            ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
            ({"variant": "zeiler"}, "lr must be 1, got 0.5"),
        ],
    ),
    Case(
        "adadelta-wd",
        dl.Adadelta,
        {"lr": 0.8, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.05},
        adadelta_step,
        torch.optim.Adadelta,
        {"weight_decay": 0.0},
    ),
    # Algorithm 1 as published equals the default Adadelta at lr=1; variant="zeiler" adds only the lr
    # guard (exercised in the "adadelta" row's bad list), which this table's lr-halving group test refuses.
    Case("adadelta-zeiler-algorithm-1", dl.Adadelta, {"lr": 1.0}, _zeiler_algorithm_1, torch.optim.Adadelta),
    Case(
        "adadelta-scaled-accumulator",
        dl.Adadelta,
        {"lr": 0.5, "variant": "scaled_accumulator"},
        adadelta_step,
        None,
        {"lr": 0.7, "weight_decay": 0.01},
    ),
    # --- Adamax ----------------------------------------------------------------------------------
    Case(
        "adamax",
        dl.Adamax,
        {"lr": 0.02},
        adamax_step,
        torch.optim.Adamax,
        {"lr": 0.01},
        bad=[
            ({"betas": (0.9, 1.0)}, "betas[1]"),
            ({"betas": (1.0, 0.9)}, "betas[0]"),
            ({"eps": -1.0}, "eps must be > 0"),
            ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ],
    ),
    Case(
        "adamax-wd",
        dl.Adamax,
        {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-3, "weight_decay": 0.05},
        adamax_step,
        torch.optim.Adamax,
        {"weight_decay": 0.0, "betas": (0.5, 0.9)},
    ),
    # eps=1e-3 would visibly change the step if the paper variant used it anywhere.
    Case(
        "adamax-paper",
        dl.Adamax,
        {"lr": 0.02, "eps": 1e-3, "variant": "paper"},
        adamax_step,
        None,
        {"lr": 0.01},
    ),
    Case(
        "adamax-keras",
        dl.Adamax,
        {"lr": 0.02, "eps": 1e-2, "variant": "keras"},
        adamax_step,
        None,
        {"betas": (0.5, 0.9)},
    ),
]
