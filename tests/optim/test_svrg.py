"""SVRG: unbiased corrected gradient and iterates equal to a float64 loop of the paper's procedure."""

import numpy as np
import pytest
import torch

from descentlab.optim import SVRG, train_svrg
from reference.svrg import svrg_least_squares

rng = np.random.default_rng(0)
X = rng.normal(size=(24, 3))
y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=24)


def _setup():
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def loss_on(idx):
        return 0.5 * ((Xt[idx] @ w - yt[idx]) ** 2).mean()

    return w, loss_on


def test_iterates_match_the_papers_procedure():
    batches = [rng.choice(24, size=4, replace=False) for _ in range(60)]
    expected = svrg_least_squares(X, y, np.zeros(3), lr=0.1, m=10, batches=batches)
    w, loss_on = _setup()
    optimizer = SVRG([w], lr=0.1, snapshot_every=10)

    def full_closure():
        optimizer.zero_grad()
        loss = loss_on(np.arange(24))
        loss.backward()
        return loss

    for idx in batches:
        if optimizer.needs_snapshot:
            optimizer.take_snapshot(full_closure)

        def closure(idx=idx):
            optimizer.zero_grad()
            loss = loss_on(idx)
            loss.backward()
            return loss

        optimizer.step(closure)
    np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-10, atol=1e-13)
    assert np.linalg.norm(expected) > 1.0  # it really moved towards the solution


def test_corrected_gradient_is_unbiased():
    w, loss_on = _setup()
    optimizer = SVRG([w], lr=0.0)
    with torch.no_grad():
        w.copy_(torch.tensor([0.3, 0.1, -0.2]))

    def full_closure():
        optimizer.zero_grad()
        loss = loss_on(np.arange(24))
        loss.backward()
        return loss

    optimizer.take_snapshot(full_closure)
    with torch.no_grad():
        w.copy_(torch.tensor([0.9, -1.0, 0.4]))  # move away from the snapshot
    corrected = []
    for i in range(24):  # every one-sample batch: the expectation over i is exact

        def closure(i=i):
            optimizer.zero_grad()
            loss = loss_on([i])
            loss.backward()
            return loss

        optimizer.step(closure)  # lr = 0: parameters stay, .grad holds the corrected gradient
        corrected.append(w.grad.clone())
    full = torch.tensor(X.T @ (X @ w.detach().numpy() - y) / 24)
    torch.testing.assert_close(torch.stack(corrected).mean(0), full, rtol=1e-12, atol=1e-12)
    assert torch.stack(corrected).std(0).max() > 0  # individual estimates differ: the test is not vacuous


def test_train_svrg_over_a_dataloader_reduces_the_loss():
    Xt, yt = torch.tensor(X), torch.tensor(y)
    dataset = torch.utils.data.TensorDataset(Xt, yt)
    loader = torch.utils.data.DataLoader(dataset, batch_size=6, shuffle=False)
    model = torch.nn.Linear(3, 1).double()
    optimizer = SVRG(model.parameters(), lr=0.1, snapshot_every=4)

    def loss_fn(model, batch):
        inputs, targets = batch
        return 0.5 * ((model(inputs).squeeze(1) - targets) ** 2).mean()

    losses = train_svrg(model, loss_fn, loader, optimizer, epochs=20)
    assert losses[-1] < 0.05 * losses[0]


def test_protocol_errors_are_clear():
    w, loss_on = _setup()
    optimizer = SVRG([w])
    with pytest.raises(ValueError, match="take_snapshot"):
        optimizer.step(lambda: loss_on([0]))
    with pytest.raises(ValueError, match="closure"):
        optimizer.step()
    with pytest.raises(ValueError, match="snapshot_every"):
        SVRG([w], snapshot_every=0)
    with pytest.raises(ValueError, match="option"):
        SVRG([w], option="III")


def test_a_pickle_from_before_tensor_counters_still_loads():
    """Older pickles held the inner-loop counter and option II's draw as ints (``inner_steps``,
    ``_candidate_step``); they must load with the same schedule."""
    w, loss_on = _setup()
    optimizer = SVRG([w], lr=0.1, snapshot_every=5, option="II")

    def full_closure():
        optimizer.zero_grad()
        loss = loss_on(np.arange(24))
        loss.backward()
        return loss

    optimizer.take_snapshot(full_closure)
    for _ in range(3):
        optimizer.step(lambda: (optimizer.zero_grad(), loss_on(np.arange(8)).backward()))
    state = optimizer.__getstate__()
    state["inner_steps"] = int(state.pop("_inner"))
    state["_candidate_step"] = int(state.pop("_candidate"))
    restored = SVRG.__new__(SVRG)
    restored.__setstate__(state)
    assert restored.inner_steps == 3 and int(restored._candidate) == int(optimizer._candidate)
    assert restored.needs_snapshot is False
