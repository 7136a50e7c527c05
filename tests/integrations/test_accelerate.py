"""accelerate: prepare, gradient accumulation and save_state / load_state with descentlab's objects."""

import pytest
import torch
from torch import nn

accelerate = pytest.importorskip("accelerate")

from descentlab import create_optimizer  # noqa: E402
from descentlab.schedules import Cosine, ScheduledLR  # noqa: E402

ACCUMULATE, MICROBATCHES, LR = 2, 8, 0.01


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1))


def loader():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4 * MICROBATCHES, 3, generator=generator)
    y = x.sum(dim=1, keepdim=True) ** 2
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)


def build(accelerator):
    model = make_model()
    optimizer = create_optimizer("nadam", model, lr=LR, weight_decay=0.01)
    scheduler = ScheduledLR(optimizer, Cosine(MICROBATCHES // ACCUMULATE))
    return accelerator.prepare(model, optimizer, loader(), scheduler)


def run(accelerator, objects, batches):
    model, optimizer, data, scheduler = objects
    for index, (x, y) in enumerate(data):
        if index in batches:
            with accelerator.accumulate(model):
                accelerator.backward(nn.functional.mse_loss(model(x), y))
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()


def reference():
    """The same training written out: mean of ACCUMULATE microbatch gradients, then one step."""
    model = make_model()
    optimizer = create_optimizer("nadam", model, lr=LR, weight_decay=0.01)
    scheduler = ScheduledLR(optimizer, Cosine(MICROBATCHES // ACCUMULATE))
    for index, (x, y) in enumerate(loader()):
        (nn.functional.mse_loss(model(x), y) / ACCUMULATE).backward()
        if (index + 1) % ACCUMULATE == 0:
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
    return model, optimizer


def accelerator():
    return accelerate.Accelerator(cpu=True, gradient_accumulation_steps=ACCUMULATE)


def test_gradient_accumulation_steps_once_per_accumulation(tmp_path):
    acc = accelerator()
    objects = build(acc)
    run(acc, objects, range(MICROBATCHES))
    expected_model, expected_optimizer = reference()
    model, optimizer = objects[0], objects[1]
    for a, b in zip(model.parameters(), expected_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert optimizer.optimizer.state_dict()["state"][0]["step"] == MICROBATCHES // ACCUMULATE
    assert optimizer.param_groups[0]["lr"] == pytest.approx(expected_optimizer.param_groups[0]["lr"])


def test_save_state_and_load_state_continue_bitwise(tmp_path):
    straight = accelerator()
    straight_objects = build(straight)
    run(straight, straight_objects, range(MICROBATCHES))

    first = accelerator()
    first_objects = build(first)
    run(first, first_objects, range(MICROBATCHES // 2))
    first.save_state(str(tmp_path / "state"))

    resumed = accelerator()
    resumed_objects = build(resumed)
    resumed.load_state(str(tmp_path / "state"))
    run(resumed, resumed_objects, range(MICROBATCHES // 2, MICROBATCHES))
    for a, b in zip(straight_objects[0].parameters(), resumed_objects[0].parameters()):
        assert torch.equal(a, b)
    assert straight_objects[3].scheduler.last_epoch == resumed_objects[3].scheduler.last_epoch
