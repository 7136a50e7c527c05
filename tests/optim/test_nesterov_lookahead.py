"""Nesterov against UDL eq. 6.12 taken literally (gradient at phi_t - alpha beta m_t)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from optim_harness import PROBLEMS, make_tensors, param_groups, run_optimizer

from descentlab.optim import Nesterov
from reference.first_order import nesterov_run

HYPER = {"lr": 0.002, "momentum": 0.8, "weight_decay": 0.01}
SECOND_GROUP = {"momentum": 0.5, "lr": 0.001}


def _group_hypers(problem):
    return [{}] + [SECOND_GROUP] * (len(problem.group_indices()) - 1)


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.name)
def test_true_iterate_matches_eq_6_12(problem, foreach):
    tensors = make_tensors(problem)
    optimizer = Nesterov(param_groups(problem, tensors, _group_hypers(problem)), **HYPER, foreach=foreach)
    hypers = [HYPER, {**HYPER, **SECOND_GROUP}][
        : len(problem.group_indices())
    ]  # from the test, not the library
    expected = nesterov_run(problem.gradient, problem.initial, problem.group_indices(), hypers, 100)
    held = run_optimizer(optimizer, tensors, problem, 100)
    iterates = [optimizer.iterate(tensor).numpy() for tensor in tensors]
    for ours, reference in zip(iterates, expected):
        assert np.all(np.isfinite(reference))
        np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)
    assert any(not np.allclose(a, p) for a, p in zip(iterates, problem.initial))
    # The held point is the look-ahead, which differs from the iterate while momentum is nonzero.
    assert any(not np.allclose(h, i, rtol=1e-6, atol=0) for h, i in zip(held, iterates))


def test_at_iterate_swaps_and_restores_bit_for_bit():
    problem = PROBLEMS[2]
    tensors = make_tensors(problem)
    optimizer = Nesterov(tensors, **HYPER)
    run_optimizer(optimizer, tensors, problem, 5)
    held = [t.detach().clone() for t in tensors]
    with optimizer.at_iterate():
        inside = [t.detach().clone() for t in tensors]
    for tensor, before, during in zip(tensors, held, inside):
        assert torch.equal(tensor, before)
        torch.testing.assert_close(during, optimizer.iterate(tensor), rtol=0, atol=0)
        assert not torch.equal(during, before)


def test_scheduled_lr_keeps_the_iterate_exact_and_uses_the_previous_lookahead():
    """Under a changing lr the stored offset keeps phi exact; the gradient point lags one lr (documented)."""
    problem = PROBLEMS[1]
    lrs = {t: 0.01 * (0.9 ** (t - 1)) for t in range(1, 31)}
    tensors = make_tensors(problem)
    optimizer = Nesterov(tensors, lr=lrs[1], momentum=0.9)
    for t in range(1, 31):
        optimizer.param_groups[0]["lr"] = lrs[t]
        run_optimizer(optimizer, tensors, problem, 1)
    # Literal recursion with the look-ahead built from the previous step's lr, as documented.
    phi, m = problem.initial[0].astype(np.float64), np.zeros(2)
    previous_offset = 0.0
    for t in range(1, 31):
        g = problem.gradient([phi - previous_offset * m])[0]
        m = 0.9 * m + 0.1 * g
        phi = phi - lrs[t] * m
        previous_offset = lrs[t] * 0.9
    np.testing.assert_allclose(optimizer.iterate(tensors[0]).numpy(), phi, rtol=1e-10, atol=1e-12)


def test_first_step_holds_both_points_equal_before_any_momentum():
    param = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    optimizer = Nesterov([param], lr=0.1, momentum=0.9)
    torch.testing.assert_close(optimizer.iterate(param), param.detach())
    param.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
    optimizer.step()
    # phi_1 = phi_0 - 0.1 * 0.1 * g; psi_1 = phi_1 - 0.1 * 0.9 * m_1 with m_1 = 0.1 g.
    expected_phi = torch.tensor([1.0 - 0.01, -2.0 - 0.01], dtype=torch.float64)
    torch.testing.assert_close(optimizer.iterate(param), expected_phi, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(param.detach(), expected_phi - 0.009, rtol=1e-14, atol=1e-15)


def test_state_dict_round_trip_continues_identically():
    problem = PROBLEMS[2]
    tensors, copies = make_tensors(problem), make_tensors(problem)
    optimizer, other = Nesterov(tensors, **HYPER), Nesterov(copies, **HYPER)
    run_optimizer(optimizer, tensors, problem, 7)
    with torch.no_grad():
        for source, target in zip(tensors, copies):
            target.copy_(source)
    # A deep copy, as after torch.save/torch.load: an in-process state_dict shares its tensors.
    other.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    run_optimizer(optimizer, tensors, problem, 5)
    run_optimizer(other, copies, problem, 5)
    for a, b in zip(tensors, copies):
        assert torch.equal(a, b)
        assert torch.equal(optimizer.iterate(a), other.iterate(b))


def test_maximize_ascends_the_negated_problem():
    problem = PROBLEMS[1]
    negated = dataclasses.replace(problem, gradient=lambda params: [-g for g in problem.gradient(params)])
    tensors = make_tensors(problem)
    optimizer = Nesterov(tensors, **HYPER, maximize=True)
    run_optimizer(optimizer, tensors, negated, 50)
    hypers = [HYPER]
    expected = nesterov_run(problem.gradient, problem.initial, [[0]], hypers, 50)
    np.testing.assert_allclose(optimizer.iterate(tensors[0]).numpy(), expected[0], rtol=1e-10, atol=1e-12)
