"""Rows for Schedule-Free SGD and AdamW (Defazio et al. 2024); torch.optim has neither.

The rows compare the parameters, which hold y (the point of the next gradient) in train mode; the
average x, train()/eval() and bitwise resume are tested in test_schedule_free.py.
"""

from optim_descriptions import Case

import descentlab.optim as dl
from reference.schedule_free import schedule_free_adamw_step, schedule_free_sgd_step

# Documented defaults: the authors' package (facebookresearch/schedule_free, SGDScheduleFree and
# AdamWScheduleFree signatures); "paper" is descentlab's default variant name for Algorithm 1.
_AVERAGING = {"warmup_steps": 0, "r": 0.0, "weight_lr_power": 2.0, "weight_decay": 0.0}
DEFAULTS = {
    dl.ScheduleFreeSGD: {**_AVERAGING, "lr": 1.0, "momentum": 0.9},
    dl.ScheduleFreeAdamW: {
        **_AVERAGING,
        "lr": 2.5e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "variant": "paper",
    },
}

CASES = [
    Case(
        "schedule-free-sgd",
        dl.ScheduleFreeSGD,
        {"lr": 0.001},
        schedule_free_sgd_step,
        None,
        {"lr": 0.002, "momentum": 0.5},
        bad=[
            ({"momentum": 1.5}, "momentum"),
            ({"warmup_steps": -1}, "warmup_steps"),
            ({"weight_lr_power": -2.0}, "weight_lr_power"),
            ({"r": -1.0}, "r"),
        ],
    ),
    Case(
        "schedule-free-sgd-warmup-wd",
        dl.ScheduleFreeSGD,
        {"lr": 0.002, "momentum": 0.95, "weight_decay": 0.05, "warmup_steps": 20, "r": 1.0},
        schedule_free_sgd_step,
        None,
        {"warmup_steps": 5, "weight_lr_power": 1.0, "momentum": 0.0},
    ),
    Case(
        "schedule-free-adamw",
        dl.ScheduleFreeAdamW,
        {"lr": 0.01},
        schedule_free_adamw_step,
        None,
        {"lr": 0.02, "betas": (0.5, 0.99)},
        bad=[
            ({"betas": (1.0, 0.999)}, "betas[0]"),
            ({"eps": -1e-8}, "eps"),
            ({"weight_decay": -0.1}, "weight_decay"),
            ({"variant": "torch"}, "variant"),
        ],
    ),
    Case(
        "schedule-free-adamw-warmup-wd",
        dl.ScheduleFreeAdamW,
        {"lr": 0.02, "betas": (0.95, 0.99), "weight_decay": 0.1, "warmup_steps": 30, "eps": 1e-6},
        schedule_free_adamw_step,
        None,
        {"r": 2.0, "weight_lr_power": 0.0},
    ),
    Case(
        "schedule-free-adamw-authors-code",
        dl.ScheduleFreeAdamW,
        {"lr": 0.01, "weight_decay": 0.05, "warmup_steps": 10, "variant": "authors-code"},
        schedule_free_adamw_step,
        None,
        {"betas": (0.8, 0.95), "lr": 0.005},
    ),
]
