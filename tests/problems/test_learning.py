"""Learning problems: seeding, data, training, evaluation."""

import random

import numpy as np
import pytest
import torch
from torch.nn import functional

from descentlab.problems import all_problems, get_problem
from descentlab.problems.classification import accuracy_and_loss
from descentlab.problems.digits import digits_data
from descentlab.problems.mnist_1d import mnist1d_data

CLASSIFIERS = ["digits-logreg", "digits-mlp", "digits-cnn", "mnist1d-mlp", "mnist1d-cnn"]


def first_batches(task, count=3):
    return [next(task.batches) for _ in range(count)]


def initial_parameters(task):
    return [parameter.detach().clone() for parameter in task.model.parameters()]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_same_seed_same_init_and_batches_different_seed_differs(name):
    problem = get_problem(name)
    first, again, other = problem.task(seed=7), problem.task(seed=7), problem.task(seed=8)
    for a, b in zip(initial_parameters(first), initial_parameters(again)):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(initial_parameters(first), initial_parameters(other)))
    for (inputs_a, labels_a), (inputs_b, labels_b) in zip(first_batches(first), first_batches(again)):
        assert torch.equal(inputs_a, inputs_b) and torch.equal(labels_a, labels_b)
    assert not torch.equal(first_batches(first)[0][1], first_batches(other)[0][1])


def test_batch_order_does_not_depend_on_the_optimizer():
    problem = get_problem("digits-mlp")
    seen = {}
    for optimizer_class in (torch.optim.SGD, torch.optim.Adam):
        task = problem.task(seed=3)
        optimizer = optimizer_class(task.model.parameters(), lr=0.01)
        labels = []
        for _ in range(5):
            batch = next(task.batches)
            labels.append(batch[1])
            optimizer.zero_grad()
            task.loss(batch).backward()
            optimizer.step()
        seen[optimizer_class.__name__] = torch.cat(labels)
    assert torch.equal(seen["SGD"], seen["Adam"])


def test_task_construction_leaves_global_random_state_alone():
    torch.manual_seed(123)
    expected_torch = torch.rand(3)
    np.random.seed(5)
    random.seed(5)
    expected_numpy, expected_python = np.random.rand(), random.random()
    mnist1d_data.cache_clear()
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(5)
    get_problem("mnist1d-mlp").task(seed=0)
    assert torch.equal(torch.rand(3), expected_torch)
    assert np.random.rand() == expected_numpy
    assert random.random() == expected_python


def test_an_epoch_visits_every_training_example_once_and_reshuffles():
    task = get_problem("digits-logreg").task(seed=0, batch_size=100)
    data = digits_data()
    assert task.steps_per_epoch == 11  # ceil(1079 / 100)

    def epoch():
        return torch.cat([next(task.batches)[0] for _ in range(task.steps_per_epoch)])

    first, second = epoch(), epoch()
    assert len(first) == len(data.train_inputs)
    assert torch.equal(first.sum(0), data.train_inputs.sum(0))
    assert torch.equal(torch.sort(first.sum(1)).values, torch.sort(data.train_inputs.sum(1)).values)
    assert not torch.equal(first, second)


def test_digits_split_is_fixed_disjoint_and_complete():
    from sklearn.datasets import load_digits

    data = digits_data()
    sizes = (len(data.train_inputs), len(data.validation_inputs), len(data.test_inputs))
    assert sizes == (1079, 359, 359)  # 60/20/20 of 1797
    everything = torch.cat([data.train_inputs, data.validation_inputs, data.test_inputs])
    labels = torch.cat([data.train_labels, data.validation_labels, data.test_labels])
    original = torch.tensor(load_digits().data, dtype=torch.float32) / 16

    # The splits are a permutation of the data set: sorting rows (with labels) gives the same table.
    def sorted_rows(inputs, targets):
        table = torch.cat([inputs, targets[:, None].float()], dim=1).numpy()
        return table[np.lexsort(table.T[::-1])]

    np.testing.assert_array_equal(
        sorted_rows(everything, labels),
        sorted_rows(original, torch.tensor(load_digits().target)),
    )
    assert everything.min() == 0 and everything.max() == 1
    assert digits_data.__wrapped__().fingerprint == data.fingerprint, "the split is the same every time"


def test_mnist1d_keeps_the_packages_test_split_and_carves_800_validation_signals():
    from mnist1d.data import get_dataset_args, make_dataset

    reference = make_dataset(get_dataset_args())
    data = mnist1d_data()
    assert (len(data.train_inputs), len(data.validation_inputs), len(data.test_inputs)) == (3200, 800, 1000)
    np.testing.assert_allclose(data.test_inputs.numpy(), reference["x_test"].astype(np.float32))
    np.testing.assert_array_equal(data.test_labels.numpy(), reference["y_test"])
    train_and_validation = torch.cat([data.train_inputs, data.validation_inputs]).numpy()
    package_train = reference["x"].astype(np.float32)
    np.testing.assert_array_equal(
        np.sort(train_and_validation.sum(1)), np.sort(package_train.sum(1)), "validation comes from train"
    )
    assert train_and_validation.shape == (4000, 40)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_a_few_adam_steps_reduce_the_validation_loss(name):
    task = get_problem(name).task(seed=0)
    before = task.evaluate()
    optimizer = torch.optim.Adam(task.model.parameters(), lr=3e-3)
    for _ in range(40):
        optimizer.zero_grad()
        task.loss(next(task.batches)).backward()
        optimizer.step()
    after = task.evaluate()
    assert after["loss"] < 0.9 * before["loss"]
    assert after["accuracy"] > before["accuracy"]


def test_evaluation_matches_a_direct_computation_and_keeps_the_training_mode():
    task = get_problem("digits-mlp").task(seed=0)
    data = digits_data()
    with torch.no_grad():
        logits = task.model(data.validation_inputs)
    expected_accuracy = (logits.argmax(1) == data.validation_labels).double().mean().item()
    expected_loss = functional.cross_entropy(logits, data.validation_labels).item()
    metrics = task.evaluate()
    assert metrics["accuracy"] == pytest.approx(expected_accuracy)
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert task.model.training
    big = accuracy_and_loss(task.model, data.train_inputs, data.train_labels)  # 2 chunks of 1000
    with torch.no_grad():
        train_logits = task.model(data.train_inputs)
    assert big["loss"] == pytest.approx(
        functional.cross_entropy(train_logits, data.train_labels).item(), rel=1e-5
    )


def test_classifiers_report_accuracy_as_a_higher_is_better_metric_with_a_target():
    for problem in all_problems():
        if problem.kind == "learning" and problem.metric == "accuracy":
            assert problem.higher_is_better and 0 < problem.target < 1 and problem.batch_size


def test_bad_batch_size_is_rejected():
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1 for a learning problem, got 0"):
        get_problem("digits-mlp").task(seed=0, batch_size=0)


def test_default_comparison_set():
    default = {problem.name for problem in all_problems() if "default" in problem.tags}
    assert default == {"bowl", "rosenbrock", "beale", "himmelblau", "gabor", "digits-mlp", "mnist1d-mlp"}


def test_a_float64_model_trains_on_the_float32_data():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        task = get_problem("digits-logreg").task(seed=0)
    finally:
        torch.set_default_dtype(previous)
    assert next(task.model.parameters()).dtype == torch.float64
    loss = task.loss(next(task.batches))
    assert loss.dtype == torch.float64
    loss.backward()
    assert 0 <= task.evaluate()["accuracy"] <= 1
