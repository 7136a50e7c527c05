"""Rows for Adam and AdamW."""

import torch
from optim_descriptions import Case

import descentlab.optim as dl
from reference.adam import adam_step

CASES = [
    Case(
        "adam",
        dl.Adam,
        {"lr": 0.01},
        adam_step,
        torch.optim.Adam,
        {"lr": 0.02},
        bad=[
            ({"betas": (0.9, 1.2)}, "betas[1]"),
            ({"betas": (-0.1, 0.9)}, "betas[0]"),
            ({"eps": -1.0}, "eps"),
        ],
    ),
    Case(
        "adam-amsgrad-wd",
        dl.Adam,
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05, "amsgrad": True},
        adam_step,
        torch.optim.Adam,
        {"weight_decay": 0.0, "betas": (0.5, 0.9)},
    ),
    Case(
        "adam-decoupled",
        dl.Adam,
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        adam_step,
        torch.optim.Adam,
    ),
    Case(
        "adamw",
        dl.AdamW,
        {"lr": 0.01, "weight_decay": 0.1},
        adam_step,
        torch.optim.AdamW,
        {"weight_decay": 0.3},
    ),
]
