"""Rows for the optimizers whose step looks at a whole vector: SWATS's switch test (a dot product over the
group), SVRG's snapshots, Newton's Hessian solve and LineSearchGD's search; all but SWATS step by a
closure protocol, which the harness drives (optim_harness.protocol_step)."""

from optim_descriptions import Case

import descentlab.optim as dl
from reference.line_search import line_search_gd_step
from reference.newton import newton_step
from reference.svrg import svrg_step
from reference.swats import swats_step


def _swats_over_group(x, oracle, state, hyper, t):
    """Algorithm 1 over the flat vector of a whole param group (the paper's switch test is per group)."""
    return swats_step(x, oracle.gradient(x), state, hyper, t)


# Documented defaults: Keskar & Socher 2017, sec. 3 (Adam's betas and eps = 1e-9); Johnson & Zhang give
# no defaults for SVRG, so its values are those its signature documents; Newton: the full step lr = 1 and
# c1 = 1e-4 of Nocedal & Wright (sec. 3.1), the rest as documented in the class; LineSearchGD: as documented.
DEFAULTS = {
    dl.SWATS: {
        "lr": 1e-3,
        "betas": (0.9, 0.999),
        "eps": 1e-9,
        "weight_decay": 0.0,
        "switch_rtol": 1e-5,
        "variant": "paper",
    },
    dl.SVRG: {"lr": 1e-2, "snapshot_every": 100, "weight_decay": 0.0},
    dl.Newton: {
        "lr": 1.0,
        "mode": "exact",
        "damping": 0.0,
        "line_search": None,
        "adaptive_damping": False,
        "damping_factor": 10.0,
        "max_hessian_params": 5000,
        "cg_tolerance": None,
        "cg_max_iterations": None,
        "c1": 1e-4,
        "shrink": 0.5,
        "max_evaluations": 30,
    },
    dl.LineSearchGD: {
        "lr": 1.0,
        "method": "golden",
        "max_step": 1.0,
        "tolerance": 1e-8,
        "c1": 1e-4,
        "c2": 0.9,
        "shrink": 0.5,
        "max_evaluations": 100,
        "max_expansions": 20,
    },
}

_SWATS_PAPER_NOT_APPLICABLE = {
    "foreach": "variant 'paper' refuses foreach=False: its switch test is one dot product over the whole "
    "group, which a per-tensor loop cannot form (row swats-per-tensor checks the loop)",
    "none-grad": "variant 'paper' needs every gradient of the group at every step for its switch test, "
    "and refuses a step without one",
    "complex": "variant 'paper' needs one dtype per group (one dot product), and the mixed parameter set "
    "puts complex and real tensors in one group",
}
_NEWTON_NOT_APPLICABLE = {
    "foreach": "no foreach argument: one linear solve over the flat parameter vector, no per-tensor kernels",
    "maximize": "no maximize argument: the Newton step is the same for L and -L ((-H)^-1 (-g) = H^-1 g); "
    "to maximise, minimise -L",
    "complex": "real parameters only (refused with advice to use torch.view_as_real)",
    "param-groups": "one parameter vector: a second param group is refused",
    "cache-blocking": "not a RuleOptimizer: the update is not elementwise",
}
_LINE_SEARCH_NOT_APPLICABLE = {
    "foreach": "no foreach argument: one search along the flat parameter vector, no per-tensor kernels",
    "maximize": "no maximize argument (as torch.optim.LBFGS): the closure returns -loss to maximise",
    "param-groups": "one search vector: a second param group is refused",
    "cache-blocking": "not a RuleOptimizer: the step length comes from a search over the whole vector",
}

CASES = [
    # --- SWATS -----------------------------------------------------------------------------------
    # eps = 1e-5 (not 1e-9) lets the paper's absolute switch test fire mid-run on these problems.
    Case(
        "swats",
        dl.SWATS,
        {"lr": 0.02, "betas": (0.8, 0.99), "eps": 1e-5, "weight_decay": 0.01},
        _swats_over_group,
        second_group={"lr": 0.01},
        bad=[
            ({"switch_rtol": 0.0}, "switch_rtol"),
            ({"betas": (0.9, 1.0)}, "betas[1]"),
            ({"variant": "adam"}, "variant"),
        ],
        reference_scope="group",
        not_applicable=_SWATS_PAPER_NOT_APPLICABLE,
    ),
    Case(
        "swats-per-tensor",
        dl.SWATS,
        {"lr": 0.01, "betas": (0.85, 0.99), "eps": 1e-6, "switch_rtol": 1e-3, "variant": "per-tensor"},
        swats_step,
        second_group={"switch_rtol": 1e-2, "weight_decay": 0.02},
        # The paper variant is cut into blocks (its switch test adds the blocks' dot products).
        not_applicable={
            "cache-blocking": "not elementwise in this variant: each tensor's test runs inside the chain"
        },
    ),
    # --- SVRG ------------------------------------------------------------------------------------
    Case(
        "svrg",
        dl.SVRG,
        {"lr": 0.0015, "snapshot_every": 7, "weight_decay": 0.02},
        svrg_step,
        second_group={"lr": 0.003},
        bad=[({"snapshot_every": 0}, "snapshot_every"), ({"lr": -1.0}, "lr"), ({"option": "III"}, "option")],
        reference_scope="group",
    ),
    # --- Newton ----------------------------------------------------------------------------------
    Case(
        "newton",
        dl.Newton,
        {"lr": 0.8, "damping": 0.05},
        newton_step,
        bad=[
            ({"mode": "bfgs"}, "mode"),
            ({"damping": -1.0}, "damping"),
            ({"lr": 0.0}, "lr"),
            ({"adaptive_damping": True, "damping": 0.0}, "damping > 0"),
        ],
        steps=20,
        reference_scope="group",
        not_applicable=_NEWTON_NOT_APPLICABLE,
    ),
    Case(
        "newton-cg",
        dl.Newton,
        {"lr": 0.9, "mode": "cg", "damping": 0.1, "cg_tolerance": 1e-3, "cg_max_iterations": 3},
        newton_step,
        bad=[({"mode": "cg", "cg_tolerance": 0.0}, "cg_tolerance")],
        steps=20,
        reference_scope="group",
        not_applicable=_NEWTON_NOT_APPLICABLE,
    ),
    Case(
        "newton-saddle-free-armijo",
        dl.Newton,
        {
            "lr": 1.5,
            "mode": "saddle-free",
            "damping": 0.2,
            "line_search": "armijo",
            "c1": 0.01,
            "shrink": 0.7,
            "max_evaluations": 12,
        },
        newton_step,
        bad=[({"line_search": "wolfe"}, "line_search"), ({"shrink": 1.0}, "shrink")],
        steps=20,
        reference_scope="group",
        not_applicable=_NEWTON_NOT_APPLICABLE,
    ),
    Case(
        "newton-adaptive-damping",
        dl.Newton,
        {"damping": 2.0, "adaptive_damping": True, "damping_factor": 3.0},
        newton_step,
        bad=[({"damping_factor": 1.0}, "damping_factor")],
        steps=20,
        reference_scope="group",
        not_applicable=_NEWTON_NOT_APPLICABLE,
    ),
    # --- LineSearchGD ----------------------------------------------------------------------------
    Case(
        "line-search-golden",
        dl.LineSearchGD,
        {"lr": 0.5, "max_step": 0.1, "tolerance": 1e-6, "max_evaluations": 60, "max_expansions": 8},
        line_search_gd_step,
        bad=[({"method": "brent"}, "method"), ({"tolerance": 0.0}, "tolerance")],
        steps=30,
        reference_scope="group",
        not_applicable=_LINE_SEARCH_NOT_APPLICABLE,
    ),
    Case(
        "line-search-armijo",
        dl.LineSearchGD,
        {"method": "armijo", "lr": 0.2, "max_step": 0.05, "c1": 0.3, "shrink": 0.6, "max_evaluations": 40},
        line_search_gd_step,
        bad=[({"method": "armijo", "c1": 0.95}, "c1")],
        steps=30,
        reference_scope="group",
        not_applicable=_LINE_SEARCH_NOT_APPLICABLE,
    ),
    # No float64 reference: test_line_search.py checks that its steps satisfy both Wolfe conditions.
    Case(
        "line-search-strong-wolfe",
        dl.LineSearchGD,
        {"method": "strong-wolfe", "c1": 1e-3, "c2": 0.5, "max_step": 0.01},
        None,
        bad=[({"method": "strong-wolfe", "c1": 0.6, "c2": 0.5}, "c1 < c2")],
        not_applicable=_LINE_SEARCH_NOT_APPLICABLE,
    ),
]
