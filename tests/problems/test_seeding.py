"""Seeds on deterministic problems move the start by the documented rule; elsewhere they do not."""

import pytest
import torch

from descentlab.problems import all_problems, get_problem
from descentlab.problems.functions2d import FUNCTIONS
from descentlab.problems.seeding import perturbed_start

PLAIN_2D = {function.name for function in FUNCTIONS}
TEXTBOOK = {"linear-regression", "gabor", "salary"}


def start_of(problem, seed):
    (parameter,) = list(problem.task(seed=seed).model.parameters())
    return tuple(parameter.detach().double().tolist())


def test_exactly_the_plain_2d_functions_and_textbook_models_are_deterministic():
    deterministic = {problem.name for problem in all_problems() if problem.deterministic}
    assert deterministic == PLAIN_2D | TEXTBOOK


@pytest.mark.parametrize("name", sorted(PLAIN_2D | TEXTBOOK))
def test_seed_zero_is_the_canonical_start_and_other_seeds_distinct_points_inside_the_window(name):
    problem = get_problem(name)
    # The float32 default dtype stores the canonical start rounded; compare in that precision.
    canonical = tuple(torch.tensor(problem.start).double().tolist())
    assert start_of(problem, 0) == canonical
    one, two = start_of(problem, 1), start_of(problem, 2)
    assert len({canonical, one, two}) == 3
    for point in (one, two):
        for value, (low, high) in zip(point, problem.bounds):
            assert low <= value <= high
    assert start_of(problem, 1) == one, "the same seed gives the same start"


def test_deterministic_tasks_are_otherwise_identical_across_seeds():
    first, second = get_problem("rosenbrock").task(seed=1), get_problem("rosenbrock").task(seed=2)
    assert next(first.batches) is None and next(second.batches) is None
    assert first.epoch_batches() == second.epoch_batches() == [None]


@pytest.mark.parametrize("name", ["noisy-bowl", "noisy-rosenbrock", "noisy-rastrigin"])
def test_noisy_functions_keep_the_canonical_start_for_every_seed(name):
    problem = get_problem(name)
    assert not problem.deterministic
    canonical = tuple(torch.tensor(problem.start).double().tolist())
    assert start_of(problem, 0) == start_of(problem, 5) == canonical


def test_offsets_are_normal_with_five_percent_of_the_window_width():
    start, bounds = (0.0, 10.0), ((-100.0, 100.0), (0.0, 20.0))  # widths 200 and 20, start mid-window
    offsets = torch.tensor(
        [[a - b for a, b in zip(perturbed_start(start, bounds, seed), start)] for seed in range(1, 1201)],
        dtype=torch.float64,
    )
    # With 1200 draws the sample std is within ~2 % of the truth and the mean within ~0.03 std.
    torch.testing.assert_close(
        offsets.std(0), torch.tensor([10.0, 1.0], dtype=torch.float64), rtol=0.08, atol=0
    )
    assert (offsets.mean(0).abs() < torch.tensor([1.5, 0.15])).all()
    correlation = torch.corrcoef(offsets.T)[0, 1]
    assert abs(correlation) < 0.1, "the two axes are perturbed independently"


def test_points_near_the_edge_are_clamped_into_the_window():
    bounds = ((0.0, 1.0), (0.0, 1.0))
    points = [perturbed_start((1.0, 0.0), bounds, seed) for seed in range(1, 41)]
    assert all(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 for x, y in points)
    assert any(x == 1.0 for x, _ in points) and any(x < 1.0 for x, _ in points)


def test_negative_seed_is_rejected():
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        perturbed_start((0.0, 0.0), ((0.0, 1.0), (0.0, 1.0)), -1)
