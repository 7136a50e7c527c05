"""Model options: validation, defaults that rebuild the original networks, and what each option does."""

import math

import pytest
import torch
from torch import nn

from descentlab.problems import Problem, Task, all_problems, get_problem
from descentlab.problems.seeding import seeded_init

MLP_OPTION_NAMES = {"dropout", "batch_norm", "activation", "init"}
CNN_OPTION_NAMES = {"batch_norm", "activation", "init"}


def original_network(name):
    """The networks as they were before model options, written out layer by layer."""
    if name == "digits-logreg":
        return nn.Sequential(nn.Linear(64, 10))
    if name == "digits-mlp":
        return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    if name == "mnist1d-mlp":
        return nn.Sequential(
            nn.Linear(40, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10)
        )
    if name == "digits-cnn":
        return nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4, 10),
        )  # fmt: skip
    return nn.Sequential(
        nn.Unflatten(1, (1, 40)), nn.Conv1d(1, 25, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv1d(25, 25, 5, stride=2, padding=2), nn.ReLU(), nn.Conv1d(25, 25, 5, stride=2, padding=2),
        nn.ReLU(), nn.Flatten(), nn.Linear(25 * 5, 10),
    )  # fmt: skip


CLASSIFIERS = ["digits-logreg", "digits-mlp", "digits-cnn", "mnist1d-mlp", "mnist1d-cnn"]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_default_options_rebuild_the_original_network_with_the_same_parameters(name):
    problem = get_problem(name)
    with seeded_init(4):
        reference = original_network(name)
    for task in (problem.task(seed=4), problem.task(seed=4, options=dict(problem.options))):
        assert [type(m) for m in task.model] == [type(m) for m in reference]
        assert task.model.state_dict().keys() == reference.state_dict().keys()
        for key, value in reference.state_dict().items():
            assert torch.equal(task.model.state_dict()[key], value), key


def test_each_problem_declares_its_options():
    declared = {problem.name: set(problem.options) for problem in all_problems()}
    assert declared.pop("digits-logreg") == {"init"}
    assert declared.pop("digits-mlp") == declared.pop("mnist1d-mlp") == MLP_OPTION_NAMES
    assert declared.pop("gaussian-deep-mlp") == MLP_OPTION_NAMES
    assert declared.pop("digits-cnn") == declared.pop("mnist1d-cnn") == CNN_OPTION_NAMES
    for textbook in ("linear-regression", "gabor", "salary"):
        assert declared.pop(textbook) == {"order", "start"}
    assert all(options == set() for options in declared.values()), declared
    assert dict(get_problem("digits-mlp").options) == {
        "dropout": 0.0, "batch_norm": False, "activation": "relu", "init": "default",
    }  # fmt: skip


def test_unknown_option_names_it_and_lists_the_allowed():
    with pytest.raises(
        ValueError,
        match=r"'digits-mlp' has no model option width; "
        r"allowed options: activation, batch_norm, dropout, init",
    ):
        get_problem("digits-mlp").task(options={"width": 3})
    with pytest.raises(ValueError, match=r"'bowl' has no model option dropout; it accepts no model options"):
        get_problem("bowl").task(options={"dropout": 0.1})
    with pytest.raises(ValueError, match="no model option dropout; allowed options: init"):
        get_problem("digits-logreg").task(options={"dropout": 0.1})


@pytest.mark.parametrize(
    ("option", "value", "allowed"),
    [
        ("dropout", 1.0, r"a float in \[0, 1\)"),
        ("dropout", -0.1, r"a float in \[0, 1\)"),
        ("dropout", True, r"a float in \[0, 1\)"),
        ("dropout", "0.1", r"a float in \[0, 1\)"),
        ("batch_norm", 1, "True or False"),
        ("batch_norm", "yes", "True or False"),
        ("activation", "swish", "one of relu, leaky_relu, elu, selu, gelu, tanh, sigmoid"),
        ("activation", ["relu"], "one of relu, leaky_relu"),
        ("init", "kaiming", "one of default, glorot, xavier, he, lecun, auto or a positive float"),
        ("init", 0.0, "or a positive float"),
        ("init", -0.1, "or a positive float"),
        ("init", math.inf, "or a positive float"),
        ("init", False, "or a positive float"),
    ],
)
def test_bad_option_values_name_option_value_and_allowed_values(option, value, allowed):
    with pytest.raises(
        ValueError, match=rf"option '{option}' of problem 'digits-mlp' must be .*{allowed}.*got"
    ):
        get_problem("digits-mlp").task(options={option: value})
    with pytest.raises(ValueError, match=rf", got {value!r}$".replace("[", r"\[").replace("]", r"\]")):
        get_problem("digits-mlp").task(options={option: value})


def test_options_reach_make_task_merged_and_canonical_and_none_when_undeclared():
    calls = []

    def with_options(seed, batch_size, **options):
        calls.append((seed, batch_size, options))
        return Task(model=nn.Linear(1, 1), batches=iter(()), loss=lambda batch: None, evaluate=dict)

    def without_options(seed, batch_size):  # the historical two-argument factory
        calls.append((seed, batch_size))
        return with_options(seed, batch_size)

    declared = get_problem("digits-mlp")
    problem = Problem("fake", "", "learning", with_options, 10, batch_size=8,
                      options=declared.options, option_domains=declared.option_domains)  # fmt: skip
    problem.task(seed=2, options={"init": "xavier", "dropout": 0})
    assert calls[-1] == (2, 8, {"dropout": 0.0, "batch_norm": False, "activation": "relu", "init": "glorot"})
    assert problem.resolve_options({"init": 0.5}) == {**declared.options, "init": 0.5}
    plain = Problem("plain", "", "function2d", without_options, 10)
    plain.task(seed=1, options={})
    assert calls[-2] == (1, None)


def test_option_domains_must_name_declared_options():
    message = r"option_domains names \['dropout'\], which are not in options \['init'\]"
    with pytest.raises(ValueError, match=message):
        Problem("bad", "", "learning", lambda s, b: None, 1, options={"init": "default"},
                option_domains={"dropout": get_problem("digits-mlp").option_domains["dropout"]})  # fmt: skip


def module_types(model):
    return [type(module) for module in model]


def test_mlp_options_add_batch_norm_before_and_dropout_after_each_hidden_activation():
    options = {"batch_norm": True, "dropout": 0.3, "activation": "tanh"}
    digits = get_problem("digits-mlp").task(seed=0, options=options).model
    assert module_types(digits) == [nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout, nn.Linear]
    assert digits[3].p == 0.3 and digits[1].num_features == 128
    hidden = [nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout]
    signal = get_problem("mnist1d-mlp").task(seed=0, options=options).model
    assert module_types(signal) == [*hidden, *hidden, nn.Linear]


@pytest.mark.parametrize(
    ("activation", "module"),
    [("relu", nn.ReLU), ("leaky_relu", nn.LeakyReLU), ("elu", nn.ELU), ("selu", nn.SELU),
     ("gelu", nn.GELU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid)],
)  # fmt: skip
def test_activation_replaces_every_hidden_activation(activation, module):
    for name, count in (("mnist1d-mlp", 2), ("digits-cnn", 2), ("mnist1d-cnn", 3)):
        model = get_problem(name).task(seed=0, options={"activation": activation}).model
        found = [type(m) for m in model.modules() if type(m) in (nn.ReLU, module)]
        assert found == [module] * count, name


def test_cnn_batch_norm_sits_between_each_conv_and_its_activation():
    digits = get_problem("digits-cnn").task(seed=0, options={"batch_norm": True}).model
    assert module_types(digits)[1:5] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in digits) == 2
    signal = get_problem("mnist1d-cnn").task(seed=0, options={"batch_norm": True}).model
    assert module_types(signal)[1:4] == [nn.Conv1d, nn.BatchNorm1d, nn.ReLU]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in signal) == 3
    task = get_problem("mnist1d-cnn").task(seed=0, options={"batch_norm": True})
    task.loss(next(task.batches)).backward()
    assert 0 <= task.evaluate()["accuracy"] <= 1


def test_dropout_is_random_in_training_and_off_in_evaluation():
    task = get_problem("digits-mlp").task(seed=0, options={"dropout": 0.5})
    batch = next(task.batches)
    assert task.loss(batch).item() != task.loss(batch).item()
    assert task.evaluate() == task.evaluate()


def linear_weights(model):
    return [m.weight.detach().double() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def fans(weight):
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


@pytest.mark.parametrize(
    ("init", "activation", "variance"),
    [
        ("he", "tanh", lambda fan_in, fan_out, last: 2 / fan_in),
        ("glorot", "relu", lambda fan_in, fan_out, last: 2 / (fan_in + fan_out)),
        ("xavier", "relu", lambda fan_in, fan_out, last: 2 / (fan_in + fan_out)),
        ("lecun", "relu", lambda fan_in, fan_out, last: 1 / fan_in),
        ("auto", "relu", lambda fan_in, fan_out, last: 2 / (fan_in + fan_out) if last else 2 / fan_in),
        ("auto", "selu", lambda fan_in, fan_out, last: 2 / (fan_in + fan_out) if last else 1 / fan_in),
        ("auto", "tanh", lambda fan_in, fan_out, last: 2 / (fan_in + fan_out)),
        (0.03, "relu", lambda fan_in, fan_out, last: 0.03**2),
    ],
)
def test_init_sets_each_weight_variance_by_its_scheme_and_zeroes_biases(init, activation, variance):
    for name in ("mnist1d-mlp", "digits-cnn"):
        model = get_problem(name).task(seed=1, options={"init": init, "activation": activation}).model
        weights = linear_weights(model)
        for index, weight in enumerate(weights):
            if weight.numel() < 1000:  # too few draws for a 10 % check on the std
                continue
            expected = math.sqrt(variance(*fans(weight), index == len(weights) - 1))
            assert weight.std().item() == pytest.approx(expected, rel=0.1), (name, index)
            assert abs(weight.mean().item()) < 0.1 * expected
        biases = [m.bias for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        assert all(torch.count_nonzero(bias) == 0 for bias in biases)


def test_logreg_init_and_seeded_reinitialisation():
    problem = get_problem("digits-logreg")
    weight = problem.task(seed=0, options={"init": 0.5}).model[0].weight
    assert weight.std().item() == pytest.approx(0.5, rel=0.1)
    first = problem.task(seed=3, options={"init": "he"}).model[0].weight
    again = problem.task(seed=3, options={"init": "he"}).model[0].weight
    other = problem.task(seed=4, options={"init": "he"}).model[0].weight
    assert torch.equal(first, again) and not torch.equal(first, other)
    default = problem.task(seed=3).model[0].weight
    assert not torch.equal(first, default)
