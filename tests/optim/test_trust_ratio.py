"""LAMB and LARS beyond the contract table: equivalences with torch.optim, zero norms, the variants'
departures, the phi bounds check, and a run through the lab's CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from optim_harness import drive, mixed_params

import descentlab.optim as dl
from descentlab._cli import lab as lab_cli
from descentlab.cli import main
from descentlab.lab import RunStore
from reference.lamb_lars import lamb_step


def _real_params():
    return mixed_params(complex_param=False)


def _run(cls, steps=30, scheduler=None, **hyper):
    params = _real_params()
    optimizer = cls(params, **hyper)
    drive(optimizer, params, steps, scheduler=scheduler(optimizer) if scheduler else None)
    return params


def test_lamb_without_adaptation_is_torchs_adamw():
    # u = r + lambda x without the ratio: x <- x - lr (r + lambda x) is AdamW's decoupled step.
    ours = _run(dl.LAMB, lr=0.01, eps=1e-8, weight_decay=0.1, adapt=False)
    theirs = _run(torch.optim.AdamW, lr=0.01, eps=1e-8, weight_decay=0.1)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("variant", ["paper", "timm"])
def test_lars_without_adaptation_is_torchs_sgd_under_a_constant_lr(variant):
    hyper = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}
    ours = _run(dl.LARS, adapt=False, variant=variant, **hyper)
    theirs = _run(torch.optim.SGD, **hyper)
    for a, b in zip(ours, theirs):
        if variant == "timm":  # the same buffer and operations as torch's SGD
            assert torch.equal(a, b)
        else:  # lr inside the buffer: v = lr * b, equal up to rounding
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_lars_paper_and_timm_differ_once_the_lr_changes():
    def halve_every_5(optimizer):
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)

    hyper = {"lr": 1.0, "momentum": 0.9, "weight_decay": 0.01, "trust_coefficient": 0.01}
    paper = _run(dl.LARS, scheduler=halve_every_5, **hyper)
    timm = _run(dl.LARS, scheduler=halve_every_5, variant="timm", **hyper)
    constant = [_run(dl.LARS, **hyper), _run(dl.LARS, variant="timm", **hyper)]
    torch.testing.assert_close(constant[0][0], constant[1][0], rtol=1e-12, atol=1e-14)
    # With a schedule the paper's buffer remembers the larger past rates: it moves further.
    start = _real_params()[0]
    assert (paper[0] - start).norm() > 1.01 * (timm[0] - start).norm()


def test_zero_norms_give_ratio_one():
    # A zero tensor (a bias at initialisation): phi(0) = 0, so the paper's ratio would freeze it.
    bias = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    grad = torch.tensor([0.5, -2.0, 0.0], dtype=torch.float64)
    optimizer = dl.LAMB([bias], lr=0.1, weight_decay=0.0)
    bias.grad = grad.clone()
    optimizer.step()
    expected = -0.1 * grad / (grad.abs() + 1e-6)  # the first step's r = m_hat / (sqrt(v_hat) + eps)
    torch.testing.assert_close(bias.detach(), expected, rtol=1e-12, atol=1e-15)
    # A zero gradient on a nonzero tensor: ||u|| = 0, nothing moves, no NaN.
    weight = torch.ones(2, dtype=torch.float64, requires_grad=True)
    lars = dl.LARS([weight], weight_decay=0.0)
    weight.grad = torch.zeros(2, dtype=torch.float64)
    lars.step()
    assert torch.equal(weight.detach(), torch.ones(2, dtype=torch.float64))


def test_optax_variant_divides_by_the_norm_of_the_decayed_gradient():
    # w = (1, 0), g = (0, 1), beta = 0.5: eq. 6 divides by ||g|| + beta ||w|| = 1.5, optax by
    # ||g + beta w|| = sqrt(1.25) (never larger, by the triangle inequality): a 34% longer step here.
    steps = {}
    for variant in ("paper", "optax"):
        weight = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
        lars = dl.LARS([weight], momentum=0.0, weight_decay=0.5, trust_coefficient=0.1, variant=variant)
        weight.grad = torch.tensor([0.0, 1.0], dtype=torch.float64)
        lars.step()
        steps[variant] = torch.tensor([1.0, 0.0], dtype=torch.float64) - weight.detach()
    decayed = torch.tensor([0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(steps["paper"], 0.1 / 1.5 * decayed, rtol=1e-15, atol=0)
    torch.testing.assert_close(steps["optax"], 0.1 / 1.25**0.5 * decayed, rtol=1e-15, atol=0)


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ({"phi_min": 2.0, "phi_max": 1.0}, r"phi_min must be <= phi_max, got phi_min=2.0 > phi_max=1.0"),
        ({"phi_min": -1.0}, r"phi_min must be >= 0, got -1.0"),
        ({"phi_max": float("inf")}, "phi_max must be finite"),
    ],
)
def test_phi_bounds_are_checked(bounds, message):
    with pytest.raises(ValueError, match=message):
        dl.LAMB([torch.zeros(2, requires_grad=True)], **bounds)
    bounded = dl.LAMB([torch.zeros(2, requires_grad=True)], phi_min=0.5, phi_max=10.0)
    assert bounded.param_groups[0]["phi_max"] == 10.0


def _reference_run(step, hyper, steps=100):
    """The float64 reference on one 3x4 tensor, gradients of f = sum(0.5 a (x - c)^2 + 0.1 x^4)."""
    scale, shift = np.linspace(0.5, 3.0, 12).reshape(3, 4), np.cos(np.arange(12.0)).reshape(3, 4)
    x, state = np.full((3, 4), 1.5), {}
    for t in range(1, steps + 1):
        x = step(x, scale * (x - shift) + 0.4 * x**3, state, hyper, t)
    return x


LAMB_HYPER = {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01}
LAMB_HYPER |= {"phi_min": 0.0, "phi_max": None, "adapt": True}


@pytest.mark.parametrize("departure", [{"bias_correction": False}, {"trust_clip": True}])
def test_the_widely_used_lamb_departures_change_the_iterates(departure):
    """apex / timm's options (bias_correction=False; timm's trust_clip) measured against Algorithm 2.

    Their sizes on this problem are quoted in LAMB's docstring (relative distance after 100 steps).
    """
    paper = _reference_run(lamb_step, LAMB_HYPER)
    departed = _reference_run(lamb_step, {**LAMB_HYPER, **departure})
    assert np.linalg.norm(departed - paper) / np.linalg.norm(paper) > 1e-3


def test_lamb_and_lars_run_in_the_lab(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="descentlab")
    lab_cli.register(parser.add_subparsers(dest="command"))
    for optimizer, hyper in (("LAMB", "weight_decay=0.01"), ("LARS", "trust_coefficient=0.01")):
        argv = ["run", "--problem", "bowl", "--optimizer", optimizer, "--lr", "0.1", "--hp", hyper]
        args = parser.parse_args([*argv, "--steps", "8", "--out", str(tmp_path)])
        assert args.handler(args) == 0
        assert "completed after 8 steps" in capsys.readouterr().out
    with RunStore(tmp_path) as store:
        assert {run["optimizer"] for run in store.runs(purpose="run")} == {"lamb", "lars"}


def test_descentlab_optimizers_lists_lamb_and_lars_with_their_papers(capsys):
    assert main(["optimizers"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "You et al. 2020" in lines["LAMB"] and "Algorithm 2" in lines["LAMB"]
    assert "You, Gitman & Ginsburg 2017" in lines["LARS"] and "paper, timm, optax" in lines["LARS"]


@pytest.mark.parametrize("cls", [dl.LAMB, dl.LARS])
def test_the_step_leaves_the_gradients_unchanged(cls):
    weight = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    grad = torch.tensor([0.3, 0.1, -0.2], dtype=torch.float64)
    optimizer = cls([weight], weight_decay=0.0)
    weight.grad = grad.clone()
    optimizer.step()
    assert torch.equal(weight.grad, grad) and not torch.equal(weight.detach(), torch.tensor([1.0, -2.0, 0.5]))
