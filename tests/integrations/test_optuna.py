"""Optuna tunes a descentlab optimizer; each trial's value is what torch.optim gives at that lr."""

import pytest
import torch

optuna = pytest.importorskip("optuna")

from descentlab import create_optimizer  # noqa: E402

STEPS = 30


def final_loss(optimizer_factory) -> float:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    x = torch.randn(32, 2)
    y = x @ torch.tensor([[2.0], [-1.0]])
    optimizer = optimizer_factory(model)
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    return torch.nn.functional.mse_loss(model(x), y).item()


def test_optuna_study_over_adams_learning_rate():
    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        return final_loss(lambda model: create_optimizer("Adam", model, lr=lr))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=8)
    assert len(study.trials) == 8
    for trial in study.trials:  # the independent reference: torch's Adam at the trial's lr
        expected = final_loss(
            lambda model, lr=trial.params["lr"]: torch.optim.Adam(model.parameters(), lr=lr)
        )
        assert trial.value == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert study.best_value < final_loss(lambda model: torch.optim.Adam(model.parameters(), lr=1e-4))
