"""timm registration: what timm will call is checked here without timm; the real registry where timm
imports. It needs a torchvision built for the installed torch, which the CPU torch of .venv lacks, so
`make test-timm` runs this file in .venv-timm (the CUDA build of the same torch, run on the CPU)."""

import inspect

import pytest
from torch import nn

from descentlab.integrations.timm import PREFIX, timm_descriptions
from descentlab.optim import RAdam
from descentlab.optim.registry import optimizer_classes, step_protocol
from integrations.framework_checks import timm_imports


def test_every_gradient_optimizer_with_weight_decay_is_described_under_a_name_timm_parses():
    described = {d["name"]: d for d in timm_descriptions()}
    expected = {
        PREFIX + name
        for name, cls in optimizer_classes().items()
        if step_protocol(cls) == "gradient" and "weight_decay" in inspect.signature(cls).parameters
    }
    assert set(described) == expected and "descentlab.radam" in described
    for name in described:
        # timm's create_optimizer splits on "_" and looks up the last piece
        assert name.lower().split("_")[-1] == name


def test_each_described_class_accepts_the_keywords_timm_passes():
    model = nn.Linear(3, 2)
    for description in timm_descriptions():
        keywords = {"lr": 0.01, "weight_decay": 0.0}  # timm always passes weight_decay
        if description["has_momentum"]:
            keywords["momentum"] = 0.9  # timm's default for optimizers that declare momentum
        if description["has_eps"]:
            keywords["eps"] = 1e-8
        if description["has_betas"]:
            keywords["betas"] = (0.9, 0.999)
        optimizer = description["opt_class"](model.parameters(), **keywords)
        assert optimizer.param_groups[0]["lr"] == 0.01


@pytest.mark.skipif(not timm_imports(), reason="timm needs a torchvision matching torch: `make test-timm`")
def test_create_optimizer_v2_builds_ours_through_timms_registry():
    import timm.optim

    from descentlab.integrations.timm import register

    assert "descentlab.radam" in register()
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    optimizer = timm.optim.create_optimizer_v2(model, "descentlab.radam", lr=1e-3, weight_decay=0.05)
    assert type(optimizer) is RAdam
    assert sorted(group["weight_decay"] for group in optimizer.param_groups) == [0.0, 0.05]
    lookahead = timm.optim.create_optimizer_v2(model, "lookahead_descentlab.radam", lr=1e-3)
    assert type(lookahead._base_optimizer) is RAdam  # timm keeps the wrapped optimizer there
