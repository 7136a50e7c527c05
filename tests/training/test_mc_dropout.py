import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from descentlab.training import mc_dropout_predict


class TwoHeads(nn.Module):
    """One head sees dropout (module + functional), the other never does."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU())
        self.dropout = nn.Dropout(0.5)
        self.noisy = nn.Linear(16, 3)
        self.clean = nn.Linear(16, 2)
        self.bn_modes = []
        self.trunk[1].register_forward_hook(lambda m, i, o: self.bn_modes.append(m.training))

    def forward(self, x):
        h = self.trunk(x)
        noisy = self.noisy(self.dropout(h))
        return torch.cat([noisy, self.clean(h)], dim=1)


class FunctionalOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 16)
        self.b = nn.Linear(16, 2)

    def forward(self, x):
        hidden = torch.dropout(self.a(x), 0.2, self.training)
        return self.b(F.dropout(hidden, p=0.5, training=self.training))


def test_std_positive_only_where_dropout_acts_and_bn_stays_eval():
    torch.manual_seed(0)
    model = TwoHeads()
    model(torch.randn(32, 4))  # fill BN running stats
    model.train()
    model.trunk.eval()  # an odd mix, to check every module's mode is restored
    modes = {name: m.training for name, m in model.named_modules()}
    stats = model.trunk[1].running_mean.clone()
    model.bn_modes.clear()
    prediction = mc_dropout_predict(model, torch.randn(5, 4), num_samples=20, samples_per_pass=7)
    assert prediction.mean.shape == (5, 5) and prediction.std.shape == (5, 5)
    assert (prediction.std[:, :3] > 0).all()
    assert (prediction.std[:, 3:] == 0).all()
    assert model.bn_modes and not any(model.bn_modes)
    assert torch.equal(model.trunk[1].running_mean, stats)
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_samples_per_pass_gives_same_statistics_as_one_by_one():
    model = TwoHeads().eval()
    x = torch.randn(3, 4)
    torch.manual_seed(1)
    one = mc_dropout_predict(model, x, num_samples=6, keep_samples=True)
    torch.manual_seed(1)
    batched = mc_dropout_predict(model, x, num_samples=6, samples_per_pass=6, keep_samples=True)
    assert one.samples.shape == batched.samples.shape == (6, 3, 5)
    # Clean head identical in every sample both ways; noisy head's mean close (different masks).
    assert torch.allclose(batched.samples[:, :, 3:], one.samples[:, :, 3:], atol=1e-6)


def test_functional_dropout_is_activated_and_classification_entropy():
    torch.manual_seed(0)
    model = FunctionalOnly().eval()
    x = torch.randn(4, 4)
    prediction = mc_dropout_predict(model, x, num_samples=50, task="classification", keep_samples=True)
    assert (prediction.std > 0).all()
    assert torch.allclose(prediction.mean.sum(-1), torch.ones(4), atol=1e-6)
    p = prediction.mean
    assert torch.allclose(prediction.predictive_entropy, -(p * p.log()).sum(-1), atol=1e-6)
    expected = -(prediction.samples * prediction.samples.log()).sum(-1).mean(0)
    assert torch.allclose(prediction.mutual_information, prediction.predictive_entropy - expected, atol=1e-6)
    assert (prediction.mutual_information >= -1e-6).all()
    assert not model.training


def test_model_without_dropout_is_an_error():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="made no dropout call"):
        mc_dropout_predict(model, torch.randn(2, 3))
    with pytest.raises(ValueError, match="num_samples must be"):
        mc_dropout_predict(FunctionalOnly(), torch.randn(2, 4), num_samples=1)
