"""The task contract the lab relies on: epoch passes, three evaluation splits, fingerprints."""

import dataclasses

import pytest
import torch
from torch.nn import functional

from descentlab.problems import Problem, all_problems, get_problem
from descentlab.problems.classification import (
    ClassificationData,
    carve_validation,
    classification_problem,
    split_three,
)
from descentlab.problems.digits import digits_data
from descentlab.problems.functions2d import FUNCTIONS, function_problem
from descentlab.problems.gaussian_mlp import gaussian_data
from descentlab.problems.mnist_1d import mnist1d_data
from descentlab.problems.networks import mlp
from descentlab.problems.textbook import LINEAR_X, LINEAR_Y, least_squares_problem, line

DATA = {
    "digits-logreg": digits_data, "digits-mlp": digits_data, "digits-cnn": digits_data,
    "mnist1d-mlp": mnist1d_data, "mnist1d-cnn": mnist1d_data, "gaussian-deep-mlp": gaussian_data,
}  # fmt: skip
WITHOUT_FINITE_DATA = {problem.name for problem in all_problems() if "noisy" in problem.tags}


def weighted_epoch_loss(task):
    batches = list(task.epoch_batches())
    sizes = [1 if batch is None else len(batch[0]) for batch in batches]
    with torch.no_grad():
        total = sum(size * task.loss(batch).double() for size, batch in zip(sizes, batches))
    return float(total) / sum(sizes), batches


def test_exactly_the_problems_without_a_finite_training_set_lack_epoch_batches():
    expected = {f"noisy-{f.name}" for f in FUNCTIONS if f.name != "saddle"} | {"noisy-quadratic"}
    assert expected == WITHOUT_FINITE_DATA
    for problem in all_problems():
        assert (problem.task().epoch_batches is None) == (problem.name in WITHOUT_FINITE_DATA), problem.name


@pytest.mark.parametrize(
    ("name", "batch_size"), [("bowl", None), ("gabor", None), ("gabor", 7), ("salary", 2)]
)
def test_epoch_loss_of_2d_and_textbook_problems_is_the_full_loss(name, batch_size):
    problem = get_problem(name)
    task = problem.task(seed=1, batch_size=batch_size)
    point = next(task.model.parameters()).detach().double()
    mean, batches = weighted_epoch_loss(task)
    assert mean == pytest.approx(float(problem.function(point)), rel=1e-6)
    if batch_size:
        assert [len(batch[0]) for batch in batches][-1] == 30 % 7 if name == "gabor" else 1


@pytest.mark.parametrize("name", sorted(DATA))
def test_epoch_loss_of_classifiers_is_the_full_training_cross_entropy_in_a_fixed_order(name):
    data = DATA[name]()
    task = get_problem(name).task(seed=2, batch_size=96)
    with torch.no_grad():
        expected = functional.cross_entropy(task.model(data.train_inputs), data.train_labels).item()
    mean, batches = weighted_epoch_loss(task)
    assert mean == pytest.approx(expected, rel=1e-5)
    assert [len(b[0]) for b in batches] == [96] * (len(data.train_inputs) // 96) + [
        len(data.train_inputs) % 96
    ]
    again = task.epoch_batches()
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again)), "the order is fixed"
    next(task.batches)  # drawing minibatches does not move the epoch order
    assert torch.equal(next(iter(task.epoch_batches()))[1], batches[0][1])


def direct_metrics(model, inputs, labels):
    model.eval()
    with torch.no_grad():
        logits = model(inputs)
    model.train()
    return (logits.argmax(1) == labels).double().mean().item(), functional.cross_entropy(
        logits, labels
    ).item()


@pytest.mark.parametrize("name", ["digits-mlp", "mnist1d-cnn"])
def test_train_and_test_evaluations_match_direct_computations(name):
    data = DATA[name]()
    task = get_problem(name).task(seed=0)
    optimizer = torch.optim.Adam(task.model.parameters(), lr=3e-3)
    for _ in range(20):
        optimizer.zero_grad()
        task.loss(next(task.batches)).backward()
        optimizer.step()
    accuracy, loss = direct_metrics(task.model, data.test_inputs, data.test_labels)
    assert task.evaluate_test() == pytest.approx({"accuracy": accuracy, "loss": loss}, rel=1e-5)
    subset = data.train_evaluation_indices
    assert len(subset) == 1000 and len(torch.unique(subset)) == 1000
    assert subset.min() >= 0 and subset.max() < len(data.train_inputs)
    accuracy, loss = direct_metrics(task.model, data.train_inputs[subset], data.train_labels[subset])
    assert task.evaluate_train() == pytest.approx({"accuracy": accuracy, "loss": loss}, rel=1e-5)
    assert task.evaluate_test() != task.evaluate() != task.evaluate_train()


def test_the_training_subset_is_the_same_for_every_seed():
    problem = get_problem("digits-mlp")
    first, second = problem.task(seed=0), problem.task(seed=9)
    second.model.load_state_dict(first.model.state_dict())
    assert first.evaluate_train() == second.evaluate_train()
    assert first.evaluate_test() == second.evaluate_test()


def test_problems_without_data_splits_have_no_train_or_test_evaluation():
    for problem in all_problems():
        task = problem.task()
        has_splits = problem.name in DATA
        assert (task.evaluate_train is not None) == has_splits == (task.evaluate_test is not None), (
            problem.name
        )


def test_split_three_and_carve_validation_partition_the_examples():
    inputs = torch.arange(50, dtype=torch.float32)[:, None]
    labels = torch.arange(50) % 10
    data = split_three(inputs, labels, validation_fraction=0.2, test_fraction=0.3)
    assert (len(data.train_inputs), len(data.validation_inputs), len(data.test_inputs)) == (25, 10, 15)
    everything = torch.cat([data.train_inputs, data.validation_inputs, data.test_inputs])[:, 0]
    assert sorted(everything.tolist()) == list(range(50))
    assert torch.equal(data.train_labels, data.train_inputs[:, 0].long() % 10)
    assert split_three(inputs, labels, 0.2, 0.3).fingerprint == data.fingerprint
    small = carve_validation(inputs[:12], labels[:12], inputs[40:], labels[40:], validation_count=4)
    assert sorted(torch.cat([small.train_inputs, small.validation_inputs])[:, 0].tolist()) == list(range(12))
    assert len(small.validation_inputs) == 4 and torch.equal(small.test_inputs, inputs[40:])
    assert torch.equal(small.train_evaluation_indices.sort().values, torch.arange(8)), "all when < 1000"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x, y: split_three(x, y, 0.0, 0.2), r"validation_fraction must be in \(0, 1\), got 0.0"),
        (lambda x, y: split_three(x, y, 0.2, 1.0), r"test_fraction must be in \(0, 1\), got 1.0"),
        (lambda x, y: split_three(x, y, 0.5, 0.5), "must be < 1 to leave training examples, got 0.5 \\+ 0.5"),
        (lambda x, y: carve_validation(x, y, x, y, 10), r"validation_count must be in \[1, 9\].*got 10"),
        (lambda x, y: ClassificationData(x, y, x, y, x, y[:3]), "10 test inputs but 3 test labels"),
        (lambda x, y: ClassificationData(x, y, x[:0], y[:0], x, y), "the validation split is empty"),
    ],
)
def test_bad_splits_are_rejected(call, message):
    with pytest.raises(ValueError, match=message):
        call(torch.zeros(10, 2), torch.zeros(10, dtype=torch.int64))


def test_fingerprints_are_16_hex_digits_distinct_and_stable():
    fingerprints = [problem.fingerprint() for problem in all_problems()]
    assert all(len(value) == 16 and int(value, 16) >= 0 for value in fingerprints)
    assert len(set(fingerprints)) == len(fingerprints)
    assert [problem.fingerprint() for problem in all_problems()] == fingerprints


def test_fingerprint_covers_identity_and_is_cached():
    calls = []

    def data_fingerprint():
        calls.append(1)
        return "data-a"

    base = Problem("p", "summary", "model", lambda s, b: None, 10, data_fingerprint=data_fingerprint)
    assert base.fingerprint() == base.fingerprint() and len(calls) == 1
    same = dataclasses.replace(base, summary="other words", target=3.0)
    assert same.fingerprint() == base.fingerprint(), "summary and target are not part of the identity"
    changes = [
        {"name": "q"}, {"version": 2}, {"kind": "learning"}, {"budget_steps": 11}, {"batch_size": 4},
        {"options": {"init": "default"}}, {"data_fingerprint": lambda: "data-b"}, {"data_fingerprint": None},
    ]  # fmt: skip
    others = {dataclasses.replace(base, **change).fingerprint() for change in changes}
    assert len(others) == len(changes) and base.fingerprint() not in others
    assert hash(get_problem("digits-mlp")) == hash(get_problem("digits-mlp")), "problems stay hashable"


def test_data_fingerprints_change_with_the_data():
    function = FUNCTIONS[0]
    moved = dataclasses.replace(function, start=(-6.0, 2.0))
    assert function_problem(function).fingerprint() != function_problem(moved).fingerprint()
    assert function_problem(function).fingerprint() == get_problem("bowl").fingerprint()
    assert get_problem("noisy-bowl").data_fingerprint() != get_problem("bowl").data_fingerprint()

    def textbook(y):
        return least_squares_problem("linear-regression", "", line, LINEAR_X, y, (0.6, -0.2), ((0.0, 0.0),),
                                     0.0, ((0.0, 2.0), (-1.0, 1.0)), 200, 0.0, ())  # fmt: skip

    assert textbook(LINEAR_Y).fingerprint() == get_problem("linear-regression").fingerprint()
    assert textbook((0.68, *LINEAR_Y[1:])).fingerprint() != get_problem("linear-regression").fingerprint()

    data = digits_data()
    one_pixel = data.test_inputs.clone()
    one_pixel[0, 0] += 1 / 16
    changed = dataclasses.replace(data, test_inputs=one_pixel)

    def digits(load):
        return classification_problem("digits-logreg", "", load, lambda: mlp((64, 10)), 1500, 64, 0.92,
                                      options={"init": "default"})  # fmt: skip

    assert digits(digits_data).fingerprint() == get_problem("digits-logreg").fingerprint()
    assert digits(lambda: changed).fingerprint() != get_problem("digits-logreg").fingerprint()
