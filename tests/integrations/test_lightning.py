"""Lightning drives descentlab's optimizers and schedulers; checkpoints resume bitwise; diagnostics log."""

import math

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")

from descentlab import create_optimizer  # noqa: E402
from descentlab.integrations.lightning import DiagnosticsCallback  # noqa: E402
from descentlab.optim import SGD, LineSearchGD, RAdam  # noqa: E402
from descentlab.schedules import Cosine, ScheduledLR  # noqa: E402

BATCHES, BATCH_SIZE = 3, 8


def data() -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCHES * BATCH_SIZE, 4, generator=generator)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH_SIZE)


def make_model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 1))


def loss_of(model: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


class Module(pl.LightningModule):
    """A tiny regression whose configure_optimizers is chosen by the test."""

    def __init__(self, configure):
        super().__init__()
        self.model = make_model()
        self.configure = configure

    def training_step(self, batch, batch_idx):
        return loss_of(self.model, batch)

    def configure_optimizers(self):
        return self.configure(self.model)


def trainer(tmp_path, **options) -> pl.Trainer:
    defaults = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    return pl.Trainer(**{**defaults, **options})


def fit(tmp_path, configure, epochs, **options) -> Module:
    module = Module(configure)
    trainer(tmp_path, max_epochs=epochs, **options).fit(module, data())
    return module


def with_cosine(model):
    optimizer = create_optimizer("radam", model, lr=0.01, weight_decay=0.1)
    scheduler = ScheduledLR(optimizer, Cosine(2 * BATCHES))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def with_torch_step_lr(model):
    optimizer = RAdam(model.parameters(), lr=0.01)
    return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)]


def manual_run(epochs, make_optimizer, make_scheduler, scheduler_per_step):
    """The loop Lightning should be running, written out: the independent reference."""
    model = make_model()
    optimizer = make_optimizer(model)
    scheduler = make_scheduler(optimizer)
    for _ in range(epochs):
        for batch in data():
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
            if scheduler_per_step:
                scheduler.step()
        if not scheduler_per_step:
            scheduler.step()
    return model


def assert_same_parameters(first: nn.Module, second: nn.Module) -> None:
    for (name, a), b in zip(first.named_parameters(), second.parameters()):
        assert torch.equal(a, b), name


def test_our_optimizer_and_scheduler_per_step_match_the_plain_loop(tmp_path):
    module = fit(tmp_path, with_cosine, epochs=2)

    def optimizer(model):
        # the groups create_optimizer promises, built by hand
        decayed = [model[0].weight, model[3].weight]
        others = [model[0].bias, model[1].weight, model[1].bias, model[3].bias]
        groups = [{"params": decayed, "weight_decay": 0.1}, {"params": others, "weight_decay": 0.0}]
        return RAdam(groups, lr=0.01)

    reference = manual_run(2, optimizer, lambda o: ScheduledLR(o, Cosine(2 * BATCHES)), True)
    assert_same_parameters(module.model, reference)
    final_lr = module.trainer.optimizers[0].param_groups[0]["lr"]
    assert final_lr == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi)), abs=1e-12)


def test_torch_scheduler_per_epoch_with_our_optimizer(tmp_path):
    module = fit(tmp_path, with_torch_step_lr, epochs=2)
    reference = manual_run(
        2,
        lambda m: RAdam(m.parameters(), lr=0.01),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5),
        False,
    )
    assert_same_parameters(module.model, reference)
    assert module.trainer.optimizers[0].param_groups[0]["lr"] == 0.01 * 0.5**2


def test_closure_optimizer_runs_under_lightning_and_logs_its_step_sizes(tmp_path):
    callback = DiagnosticsCallback()
    module = fit(tmp_path, lambda m: LineSearchGD(m.parameters(), method="armijo"), 1, callbacks=[callback])

    reference = make_model()
    optimizer = LineSearchGD(reference.parameters(), method="armijo")
    for batch in data():

        def closure(batch=batch):
            optimizer.zero_grad()
            loss = loss_of(reference, batch)
            loss.backward()
            return loss

        optimizer.step(closure)
    assert_same_parameters(module.model, reference)
    ours = module.trainer.optimizers[0]
    assert ours.step_sizes == optimizer.step_sizes and len(ours.step_sizes) == BATCHES
    logged = module.trainer.callback_metrics
    assert float(logged["descentlab/line_search/step_size"]) == pytest.approx(optimizer.step_sizes[-1])
    assert "descentlab/group0/update_norm" in logged


def test_diagnostics_effective_step_size_of_sgd_is_its_lr(tmp_path):
    module = fit(tmp_path, lambda m: SGD(m.parameters(), lr=0.05), 1, callbacks=[DiagnosticsCallback()])
    logged = module.trainer.callback_metrics
    assert float(logged["descentlab/group0/effective_step_size"]) == pytest.approx(0.05, rel=1e-5)
    assert float(logged["descentlab/group0/grad_to_update_ratio"]) == pytest.approx(20.0, rel=1e-5)


@pytest.mark.parametrize(
    "configure",
    [with_cosine, lambda m: LineSearchGD(m.parameters(), method="golden", max_evaluations=12)],
    ids=["radam-cosine", "line-search"],
)
def test_checkpoint_resume_continues_bitwise(tmp_path, configure):
    straight = fit(tmp_path / "straight", configure, epochs=2)
    first = Module(configure)
    first_trainer = trainer(tmp_path / "first", max_epochs=1)
    first_trainer.fit(first, data())
    checkpoint = tmp_path / "epoch1.ckpt"
    first_trainer.save_checkpoint(checkpoint)
    resumed = Module(configure)
    resumed_trainer = trainer(tmp_path / "resumed", max_epochs=2)
    resumed_trainer.fit(resumed, data(), ckpt_path=checkpoint)
    assert_same_parameters(resumed.model, straight.model)
    if isinstance(straight.trainer.optimizers[0], LineSearchGD):
        assert resumed_trainer.optimizers[0].step_sizes == straight.trainer.optimizers[0].step_sizes
