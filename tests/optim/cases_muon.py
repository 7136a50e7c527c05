"""Rows for Muon (orthogonalised momentum for matrices, AdamW for the rest).

Documented defaults: torch.optim.Muon's docs (lr, weight_decay, momentum, nesterov, ns_coefficients, eps,
ns_steps, adjust_lr_fn) and, for the extra keys, the AdamW fallback's betas and eps of the KellerJordan/Muon
code (``adam_betas=(0.9, 0.95)``, ``adam_eps=1e-10``), ``ns_dtype="bfloat16"`` (the post's) and
``use_muon=None`` (matrices by dimension). The float64 rows set ``ns_dtype="param"``: the oracle iterates
in float64; the bfloat16 path is checked in test_muon.py (against torch.optim.Muon and a bfloat16
reference). torch.optim.Muon is not a ``torch_cls`` here because it refuses the table's vectors and
complex parameter; test_muon.py compares with it on matrices.
"""

from optim_descriptions import Case

import descentlab.optim as dl
from reference.muon import muon_step_with_shapes

DEFAULTS = {
    dl.Muon: {
        "lr": 1e-3,
        "weight_decay": 0.1,
        "momentum": 0.95,
        "nesterov": True,
        "ns_coefficients": (3.4445, -4.7750, 2.0315),
        "eps": 1e-7,
        "ns_steps": 5,
        "adjust_lr_fn": None,
        "use_muon": None,
        "adam_betas": (0.9, 0.95),
        "adam_eps": 1e-10,
        "ns_dtype": "bfloat16",
        "variant": "torch",
    }
}

# The harness hands the reference flat tensors: the quadratic problem's 3 x 4 and 2 x 2 x 2 parameters.
_STEP = muon_step_with_shapes({12: (3, 4), 8: (2, 2, 2)})
_NOT_ELEMENTWISE = {"cache-blocking": "the Newton–Schulz iteration is a function of the whole matrix"}

CASES = [
    Case(
        "muon",
        dl.Muon,
        {"lr": 0.02, "ns_dtype": "param"},
        _STEP,
        None,
        {"lr": 0.01, "weight_decay": 0.0},
        bad=[
            ({"momentum": 1.0}, "momentum"),
            ({"ns_steps": 100}, "ns_steps"),
            ({"ns_coefficients": (1.0, 2.0)}, "ns_coefficients"),
            ({"adjust_lr_fn": "rms"}, "adjust_lr_fn"),
            ({"ns_dtype": "float16"}, "ns_dtype"),
            ({"adam_betas": (0.9, 1.0)}, "adam_betas[1]"),
            ({"adam_eps": 0.0}, "adam_eps"),
            ({"use_muon": True}, "use_muon=True"),
            ({"variant": "blog"}, "variant"),
        ],
        not_applicable=_NOT_ELEMENTWISE,
    ),
    Case(
        "muon-match-rms-heavy-ball",
        dl.Muon,
        {
            "lr": 0.01,
            "momentum": 0.8,
            "nesterov": False,
            "adjust_lr_fn": "match_rms_adamw",
            "weight_decay": 0.05,
            "ns_steps": 3,
            "adam_betas": (0.8, 0.99),
            "ns_dtype": "param",
        },
        _STEP,
        None,
        {"use_muon": False, "lr": 0.003},  # the 2 x 2 x 2 tensor's group takes AdamW's step
        not_applicable=_NOT_ELEMENTWISE,
    ),
    Case(
        "muon-reference",
        dl.Muon,
        # eps is added to the norm in this form: a tiny eps makes it the oracle's exact normalisation.
        {"lr": 0.02, "variant": "reference", "eps": 1e-30, "ns_dtype": "param", "weight_decay": 0.0},
        _STEP,
        None,
        # With lr 0.02 here the fixed-step orbit about the minimum is chaotic: rounding-level differences
        # (1e-16 at step 40) grow ~1000x per 20 steps after step 60 (4e-9 at step 100), whatever the form.
        {"momentum": 0.9, "lr": 0.005},
        not_applicable=_NOT_ELEMENTWISE,
    ),
]
