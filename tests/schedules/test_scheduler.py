"""The LRScheduler wrappers: per-group bases, any param-group key, exact resume, pickling."""

import copy
import io
import pickle

import pytest
import torch

from descentlab.schedules import (
    Cosine,
    CosineRestarts,
    HyperparameterScheduler,
    Plateau,
    ScheduledLR,
    Sequence,
    Warmup,
    linear,
    momentum_key,
    one_cycle,
    one_cycle_momentum,
)


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


def make_optimizer(model, kind="sgd"):
    groups = [
        {"params": model[0].parameters(), "lr": 0.1},
        {"params": model[2].parameters(), "lr": 0.01},
    ]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=1e-4)
    return torch.optim.Adam(groups, lr=0.1, weight_decay=1e-4)


def train_step(model, optimizer, step):
    generator = torch.Generator().manual_seed(step)
    inputs = torch.randn(16, 4, generator=generator)
    loss = model(inputs).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def build(kind):
    model = make_model()
    optimizer = make_optimizer(model, kind)
    schedules = {
        "lr": Warmup(
            "linear", 5, then=Sequence([(20, Cosine(20, 1.0, 0.1)), (None, Plateau(0.1, patience=1))])
        ),
        momentum_key(optimizer): one_cycle_momentum(40),
        "weight_decay": linear(40, 1e-4, 0.0),
    }
    return model, optimizer, HyperparameterScheduler(optimizer, schedules)


def snapshot(optimizer):
    return [
        (group["lr"], group.get("momentum"), group.get("betas"), group["weight_decay"])
        for group in optimizer.param_groups
    ]


def run(model, optimizer, scheduler, steps, start=0):
    history = []
    for step in range(start, start + steps):
        loss = train_step(model, optimizer, step)
        scheduler.step(loss)
        history.append(snapshot(optimizer))
    return history


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("load_scheduler_first", [False, True])
def test_resume_mid_schedule_gives_identical_values(kind, load_scheduler_first):
    model, optimizer, scheduler = build(kind)
    uninterrupted = run(model, optimizer, scheduler, 40)
    final_weights = [p.detach().clone() for p in model.parameters()]

    model, optimizer, scheduler = build(kind)
    first_half = run(model, optimizer, scheduler, 27)
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        },
        buffer,
    )
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)  # plain data only: no lambdas, no objects

    model, optimizer, scheduler = build(kind)
    model.load_state_dict(checkpoint["model"])
    if load_scheduler_first:
        scheduler.load_state_dict(checkpoint["scheduler"])
        optimizer.load_state_dict(checkpoint["optimizer"])
    else:
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
    second_half = run(model, optimizer, scheduler, 13, start=27)

    assert first_half + second_half == uninterrupted  # exact equality, not approximate
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), final_weights))
    lrs = [state[0][0] for state in uninterrupted]
    assert len(set(lrs[25:])) >= 2, "the plateau part should have reduced the learning rate"


def test_scheduler_on_freshly_loaded_optimizer_has_no_initial_lr_error():
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    saved = optimizer.state_dict()  # no scheduler yet: no initial_lr in the groups
    fresh = torch.optim.SGD(model.parameters(), lr=0.5)
    fresh.load_state_dict(saved)
    scheduler = ScheduledLR(fresh, Cosine(10), last_epoch=4)
    assert fresh.param_groups[0]["initial_lr"] == 0.5
    assert scheduler.last_epoch == 5  # torch's convention: last_epoch=n sets the value of step n + 1
    assert scheduler.get_last_lr() == [pytest.approx(0.5 * Cosine(10)(5))]


def test_torch_needs_initial_lr_where_we_do_not():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    with pytest.raises(KeyError, match="initial_lr"):
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 10, last_epoch=3)
    ScheduledLR(optimizer, Cosine(10), last_epoch=3)


def test_relative_schedule_keeps_per_group_ratios():
    optimizer = make_optimizer(make_model())
    scheduler = ScheduledLR(optimizer, CosineRestarts(7, final=0.1))
    for step in range(1, 20):
        optimizer.step()
        scheduler.step()
        multiplier = CosineRestarts(7, final=0.1)(step)
        assert scheduler.get_last_lr() == [0.1 * multiplier, 0.01 * multiplier]


def test_absolute_schedule_sets_every_group_to_the_value():
    optimizer = make_optimizer(make_model())
    scheduler = ScheduledLR(optimizer, Cosine(10, initial=0.3, final=0.0), relative=False)
    assert scheduler.get_last_lr() == [0.3, 0.3]
    optimizer.step()
    scheduler.step()
    assert scheduler.get_last_lr() == [pytest.approx(Cosine(10, 0.3)(1))] * 2


@pytest.mark.parametrize("key", ["momentum", "weight_decay", "dampening"])
def test_sgd_hyperparameters_follow_a_schedule(key):
    optimizer = make_optimizer(make_model(), "sgd")
    schedule = linear(10, 0.9, 0.5)
    scheduler = HyperparameterScheduler(optimizer, {key: schedule})
    for step in range(1, 12):
        optimizer.step()
        scheduler.step()
        assert [group[key] for group in optimizer.param_groups] == [schedule(step)] * 2
        assert [group["lr"] for group in optimizer.param_groups] == [0.1, 0.01]  # untouched


@pytest.mark.parametrize(("key", "index"), [("betas[0]", 0), ("betas[1]", 1)])
def test_adam_betas_elements_follow_a_schedule(key, index):
    optimizer = make_optimizer(make_model(), "adam")
    schedule = linear(10, 0.99, 0.9)
    scheduler = HyperparameterScheduler(optimizer, {key: schedule, "eps": linear(10, 1e-8, 1e-6)})
    other = 1 - index
    for step in range(1, 12):
        optimizer.step()
        scheduler.step()
        for group in optimizer.param_groups:
            assert isinstance(group["betas"], tuple)
            assert group["betas"][index] == schedule(step)
            assert group["betas"][other] == (0.9, 0.999)[other]
            assert group["eps"] == linear(10, 1e-8, 1e-6)(step)


def test_relative_hyperparameter_is_a_multiplier_of_its_initial_value():
    optimizer = make_optimizer(make_model(), "adam")
    scheduler = HyperparameterScheduler(optimizer, {"weight_decay": Cosine(4)}, relative=["weight_decay"])
    assert optimizer.param_groups[0]["initial_weight_decay"] == 1e-4
    optimizer.step()
    scheduler.step()
    assert scheduler.get_last_values() == {"weight_decay": [1e-4 * Cosine(4)(1)] * 2}


def test_tensor_learning_rate_is_filled_in_place():
    lr = torch.tensor(0.1)
    optimizer = torch.optim.Adam([torch.zeros(2, requires_grad=True)], lr=lr)
    scheduler = ScheduledLR(optimizer, Cosine(4))
    tensor = optimizer.param_groups[0]["lr"]
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] is tensor
    assert tensor.item() == pytest.approx(0.1 * Cosine(4)(1))


def test_one_cycle_with_torch_sgd_and_adam_in_lightning_style_loop():
    for kind in ("sgd", "adam"):
        model = make_model()
        optimizer = make_optimizer(model, kind)
        key = momentum_key(optimizer)
        scheduler = HyperparameterScheduler(optimizer, {"lr": one_cycle(30), key: one_cycle_momentum(30)})
        for step in range(29):
            train_step(model, optimizer, step)
            scheduler.step()
        assert optimizer.param_groups[1]["lr"] == pytest.approx(0.01 / 25 / 1e4)
        assert scheduler.get_last_values()[key] == [pytest.approx(0.95)] * 2


def test_scheduler_pickles_and_deepcopies_with_independent_state():
    model, optimizer, scheduler = build("sgd")
    run(model, optimizer, scheduler, 30)
    clone = copy.deepcopy(scheduler)
    restored = pickle.loads(pickle.dumps(scheduler))
    assert pickle.loads(pickle.dumps(scheduler.state_dict())) == scheduler.state_dict()
    for other in (clone, restored):
        assert other.state_dict() == scheduler.state_dict()
        other.step(123.0)
    assert clone.last_epoch == scheduler.last_epoch + 1
    assert scheduler.schedules["lr"].state_dict() != clone.schedules["lr"].state_dict()


def test_schedule_objects_are_copied_not_shared():
    plateau = Plateau(patience=0)
    first = ScheduledLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), plateau)
    second = ScheduledLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), plateau)
    first.step(1.0)
    first.step(2.0)
    assert first.get_last_lr() == [0.1] and second.get_last_lr() == [1.0] and plateau.state.best is None


def test_errors_name_the_problem():
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match=r"has no 'momentum' to schedule; it has: .*betas"):
        HyperparameterScheduler(optimizer, {"momentum": Cosine(3)})
    with pytest.raises(ValueError, match=r"has no element 2"):
        HyperparameterScheduler(optimizer, {"betas[2]": Cosine(3)})
    with pytest.raises(ValueError, match="must look like 'momentum' or 'betas\\[0\\]'"):
        HyperparameterScheduler(optimizer, {"betas(0)": Cosine(3)})
    with pytest.raises(TypeError, match="must be a descentlab Schedule"):
        ScheduledLR(optimizer, lambda step: 0.5)
    scheduler = ScheduledLR(optimizer, Cosine(3))
    with pytest.raises(ValueError, match="none of the schedules \\['lr'\\] uses metrics"):
        scheduler.step(0.3)
    other = HyperparameterScheduler(optimizer, {"eps": Cosine(3)})
    with pytest.raises(ValueError, match="build the scheduler with the same schedules"):
        scheduler.load_state_dict(other.state_dict())
    with pytest.raises(ValueError, match="neither 'betas' nor 'momentum'"):
        momentum_key(torch.optim.Adagrad([torch.zeros(1, requires_grad=True)]))


def test_works_inside_torch_sequential_lr_like_our_sequence():
    warmup, cosine = linear(5, 0.2, 1.0), Cosine(15, 1.0, 0.1)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3, momentum=0.9)
    chained = torch.optim.lr_scheduler.SequentialLR(
        optimizer,
        [ScheduledLR(optimizer, warmup), ScheduledLR(optimizer, cosine)],
        milestones=[5],
    )
    lrs = []
    for _ in range(25):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        chained.step()
    ours = Sequence([(5, warmup), (None, cosine)])
    assert lrs == pytest.approx([0.3 * ours(t) for t in range(25)], rel=1e-12)
