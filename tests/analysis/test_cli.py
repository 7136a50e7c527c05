import argparse
import itertools
import json

import pytest
import torch
from torch import nn

import descentlab.cli
from descentlab._cli import analysis as analysis_cli
from descentlab.problems import Problem, Task, register
from descentlab.problems.registry import _PROBLEMS


def _regression_task(seed: int, batch_size: int | None) -> Task:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(64, 3, generator=generator)
    targets = inputs @ torch.tensor([1.0, -1.0, 0.5]) + 0.1 * torch.randn(64, generator=generator)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    size = batch_size or 16
    order = torch.randperm(64, generator=generator)
    batches = itertools.cycle([order[start : start + size] for start in range(0, 64, size)])

    def loss(indices):
        return ((model(inputs[indices]).squeeze(-1) - targets[indices]) ** 2).mean()

    return Task(model=model, batches=batches, loss=loss, evaluate=lambda: {}, steps_per_epoch=64 // size)


def _bowl_task(seed: int, batch_size: int | None) -> Task:
    model = nn.Module()
    model.point = nn.Parameter(torch.tensor([1.5, -1.0]))
    return Task(
        model=model,
        batches=itertools.repeat(None),
        loss=lambda _: model.point[0] ** 2 + 4 * model.point[1] ** 2,
        evaluate=lambda: {},
    )


@pytest.fixture
def problems():
    added = [
        register(
            Problem("test-analysis-regression", "tiny regression", "learning", _regression_task, 10, 16)
        ),
        register(Problem("test-analysis-bowl", "x^2 + 4 y^2", "function2d", _bowl_task, 10)),
    ]
    try:
        yield [problem.name for problem in added]
    finally:
        for problem in added:
            _PROBLEMS.pop(problem.name, None)


def run(argv):
    parser = argparse.ArgumentParser(prog="descentlab")
    analysis_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_landscape_writes_a_figure_and_json_with_a_trajectory(problems, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "landscape",
        "--problem",
        problems[0],
        "--out",
        str(out),
        "--resolution",
        "5",
        "--train-steps",
        "8",
    ]
    assert run([*argv, "--lr", "0.05", "--batches", "2"]) == 0
    stem = out / f"{problems[0]}-seed0"
    record = json.loads((stem.parent / f"{stem.name}-landscape.json").read_text())
    assert len(record["losses"]) == 5 and len(record["losses"][0]) == 5
    assert len(record["trajectory"]["coordinates"]) == 9
    assert record["losses"][2][2] == pytest.approx(record["center_loss"], rel=1e-6)
    for suffix in ("landscape.png", "trajectory.png"):
        assert (stem.parent / f"{stem.name}-{suffix}").stat().st_size > 1000
    assert not [path for path in out.iterdir() if path.name.startswith(".")]  # no temporary files left
    assert "loss surface: 25 loss evaluations" in capsys.readouterr().out


def test_landscape_of_a_model_with_only_one_dimensional_parameters(problems, tmp_path, capsys):
    assert run(["landscape", "--problem", problems[1], "--out", str(tmp_path), "--resolution", "3"]) == 0
    assert "one_dimensional='normalize'" in capsys.readouterr().out


def test_hessian_of_the_bowl_is_exact(problems, tmp_path):
    assert run(["hessian", "--problem", problems[1], "--out", str(tmp_path), "--top-k", "2"]) == 0
    record = json.loads((tmp_path / f"{problems[1]}-seed0-hessian.json").read_text())
    assert record["top_eigenvalues"] == pytest.approx([8.0, 2.0])
    assert record["exact_eigenvalues"] == pytest.approx([2.0, 8.0])
    assert record["trace"]["estimate"] == pytest.approx(10.0)  # Rademacher is exact on a diagonal Hessian
    assert record["classification"] == "not critical"  # (1.5, -1) is not the minimum


def test_hessian_of_a_network_agrees_with_its_exact_spectrum(problems, tmp_path):
    argv = [
        "hessian",
        "--problem",
        problems[0],
        "--out",
        str(tmp_path),
        "--top-k",
        "3",
        "--trace-samples",
        "50",
    ]
    assert run(argv) == 0
    record = json.loads((tmp_path / f"{problems[0]}-seed0-hessian.json").read_text())
    assert record["parameters"] == 21
    assert record["top_eigenvalues"] == pytest.approx(sorted(record["exact_eigenvalues"])[::-1][:3], rel=1e-4)
    assert (tmp_path / f"{problems[0]}-seed0-hessian-density.png").stat().st_size > 1000


def test_lr_find_writes_its_suggestions_and_leaves_no_trace_on_the_task(problems, tmp_path, capsys):
    argv = [
        "lr-find",
        "--problem",
        problems[0],
        "--optimizer",
        "Adam",
        "--out",
        str(tmp_path),
        "--steps",
        "40",
    ]
    assert run(argv) == 0
    record = json.loads((tmp_path / f"{problems[0]}-seed0-Adam-lr-find.json").read_text())
    assert set(record["suggestions"]) == {"steepest", "minimum/10"}
    assert len(record["learning_rates"]) == len(record["losses"]) <= 40
    assert "Adam on test-analysis-regression" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["landscape", "--resolution", "1"], r"--resolution must be in \[2, 201\], got 1"),
        (["landscape", "--extent", "0"], r"--extent must be in \(0, 100\], got 0"),
        (["hessian", "--top-k", "0"], r"--top-k must be in \[1, 100\], got 0"),
        (["lr-find", "--steps", "5"], r"--steps must be in \[10, 10000\], got 5"),
        (["lr-find", "--start-lr", "1", "--end-lr", "0.1"], "--end-lr must be > --start-lr=1, got 0.1"),
        (["lr-find", "--optimizer", "Adamm"], "unknown optimizer 'Adamm'. Did you mean Adam"),
        (["lr-find", "--optimizer", "LBFGS"], "needs a closure"),
    ],
)
def test_bad_values_raise_value_errors_with_the_allowed_range(problems, tmp_path, argv, message):
    with pytest.raises(ValueError, match=message):
        run([*argv, "--problem", problems[0], "--out", str(tmp_path)])


def test_unknown_problem_and_clean_error_through_main(problems, monkeypatch, capsys):
    with pytest.raises(ValueError, match="unknown problem 'nope'"):
        run(["hessian", "--problem", "nope"])
    monkeypatch.setattr(descentlab.cli, "COMMAND_MODULES", ("descentlab._cli.analysis",))
    assert descentlab.cli.main(["lr-find", "--problem", problems[0], "--steps", "3"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "descentlab: error: --steps must be in [10, 10000], got 3 (--debug shows the traceback)"
    )


def test_resolve_optimizer_prefers_descentlab_then_torch():
    import descentlab.optim

    assert analysis_cli.resolve_optimizer("sgd") is descentlab.optim.SGD
    assert analysis_cli.resolve_optimizer("Rprop") is torch.optim.Rprop
    with pytest.raises(ValueError, match="unknown optimizer 'Optimizer'"):
        analysis_cli.resolve_optimizer("Optimizer")
    with pytest.raises(ValueError, match="needs a closure"):
        analysis_cli.resolve_optimizer("Newton")
    with pytest.raises(ValueError, match="needs a closure"):
        analysis_cli.resolve_optimizer("LBFGS")
