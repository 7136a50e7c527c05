"""``descentlab explore``: the page's precomputed paths against independent runs, its size, its errors."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch

from descentlab import optim
from descentlab.cli import main
from descentlab.explore import build_explorer, compute_paths, explorable_problems, render_page
from descentlab.explore.grid import MOMENTUM_VALUES, SQUARE_AVERAGE_VALUES, averaging_sliders, ladder
from descentlab.explore.page import page_data
from descentlab.explore.paths import shares_optimizer
from descentlab.optim.registry import get_optimizer_class, optimizer_classes
from descentlab.problems.registry import all_problems, get_problem
from descentlab.problems.textbook import GABOR_X, GABOR_Y
from explore.pages import decoded_path, page_json, path_index, quantum

MEGABYTE = 1_000_000


def reference_path(problem_name, make_optimizer, start, steps, closure=False):
    """The optimizer run directly on the problem's seed-0 task from ``start``, step by step, until its
    point leaves the window widened by its width on each side (or stops being finite)."""
    task = get_problem(problem_name).task(0)
    point = task.model.point
    with torch.no_grad():
        point.copy_(torch.tensor(start))
    optimizer = make_optimizer([point])
    (x0, x1), (y0, y1) = get_problem(problem_name).bounds
    low = np.array([x0 - (x1 - x0), y0 - (y1 - y0)])
    high = np.array([x1 + (x1 - x0), y1 + (y1 - y0)])
    points = [np.array(start, dtype=float)]
    for _ in range(steps):
        batch = next(task.batches)

        def evaluate(batch=batch):
            optimizer.zero_grad()
            loss = task.loss(batch)
            loss.backward()
            return loss

        if closure:
            optimizer.step(evaluate)
        else:
            evaluate()
            optimizer.step()
        at_iterate = getattr(optimizer, "at_iterate", contextlib.nullcontext)
        with at_iterate():
            now = point.detach().double().numpy().copy()
        if not (np.isfinite(now).all() and (now >= low).all() and (now <= high).all()):
            break
        points.append(now)
    return np.array(points)


def gabor_loss(points):
    """UDL eq. 6.8's least-squares loss, written out in float64 numpy."""
    x, y = np.array(GABOR_X), np.array(GABOR_Y)
    z = points[:, :1] + 0.06 * points[:, 1:] * x
    return ((np.sin(z) * np.exp(-(z**2) / 32) - y) ** 2).sum(-1)


# Independent makers: torch.optim where torch has the same algorithm, else our class called directly.
MAKERS = {
    "SGD": lambda p, v: torch.optim.SGD(p, lr=v["lr"]),
    "Adam": lambda p, v: torch.optim.Adam(p, lr=v["lr"], betas=(v["betas[0]"], v["betas[1]"])),
    "RMSprop": lambda p, v: torch.optim.RMSprop(p, lr=v["lr"], alpha=v["alpha"]),
    "Adagrad": lambda p, v: torch.optim.Adagrad(p, lr=v["lr"]),
    "Momentum": lambda p, v: optim.Momentum(p, lr=v["lr"], momentum=v["momentum"]),
    "Nesterov": lambda p, v: optim.Nesterov(p, lr=v["lr"], momentum=v["momentum"]),
}


def _combinations(entry):
    """Three slider positions per optimizer: the page's opening one, all at the top, a middle mix."""
    sliders = entry["sliders"]
    yield [s["default"] for s in sliders], 0
    yield [len(s["values"]) - 1 for s in sliders], 1
    yield [(len(s["values"]) - 1) * (j % 2) // 2 + j % 2 for j, s in enumerate(sliders)], 3


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_page_paths_are_what_the_optimizer_does(default_page, name):
    data = page_json(default_page[1])
    entry = next(o for o in data["optimizers"] if o["name"] == name)
    for indices, start in _combinations(entry):
        values = {s["key"]: s["values"][i] for s, i in zip(entry["sliders"], indices)}
        expected = reference_path(
            "gabor", lambda p, v=values: MAKERS[name](p, v), data["starts"][start], data["steps"]
        )
        points, losses = decoded_path(data, path_index(data, name, indices, start))
        assert points.shape == expected.shape, (values, start)
        np.testing.assert_allclose(points, expected, rtol=0, atol=quantum(data).max() + 1e-5)
        np.testing.assert_allclose(losses, gabor_loss(expected), rtol=2e-3)


def test_the_page_opens_on_the_rate_that_ends_lowest(default_page):
    data = page_json(default_page[1])
    for entry in data["optimizers"]:
        lr, *others = entry["sliders"]
        finals = []
        for index in range(len(lr["values"])):
            indices = [index, *(s["default"] for s in others)]
            points, _ = decoded_path(data, path_index(data, entry["name"], indices, 0))
            finals.append(gabor_loss(points[-1:])[0] if len(points) == data["steps"] + 1 else math.inf)
        best = min(finals)
        assert finals[lr["default"]] <= best + 1e-3 * abs(best), entry["name"]
        # the best rate is inside the slider's range, with smaller and larger ones to compare
        assert 0 < lr["default"] < len(lr["values"]) - 1, (entry["name"], lr)


def test_default_page_is_small_and_states_its_grids(default_page):
    explorer, path, seconds = default_page
    size = path.stat().st_size
    print(f"default gabor page: {size / MEGABYTE:.2f} MB, built in {seconds:.1f} s")
    assert size < 5 * MEGABYTE
    text = path.read_text()
    data = page_json(path)
    names = ["SGD", "Momentum", "Nesterov", "Adagrad", "RMSprop", "Adam"]
    assert [o["name"] for o in data["optimizers"]] == names
    for entry, result in zip(data["optimizers"], explorer.optimizers):
        grid = 1
        for slider in entry["sliders"]:
            grid *= len(slider["values"])
        assert entry["count"] == grid * len(data["starts"]) == result.paths.shape[0] * result.paths.shape[1]
        assert f"<td>{entry['name']}</td>" in text and f"<td>{entry['count']}</td>" in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text


@pytest.mark.parametrize(
    ("problem", "optimizer", "settings", "make", "closure"),
    [
        # gradient noise of the noisy task, shared optimizer
        ("noisy-bowl", "sgd", [{"lr": 0.1}, {"lr": 0.9}], lambda p, v: torch.optim.SGD(p, lr=v["lr"]), False),
        # closure protocol: one path at a time
        ("rosenbrock", "linesearchgd", [{"lr": 1.0}], lambda p, v: optim.LineSearchGD(p, lr=v["lr"]), True),
        # a whole-group switch test: not elementwise, one path at a time
        ("himmelblau", "swats", [{"lr": 0.05}], lambda p, v: optim.SWATS(p, lr=v["lr"]), False),
        # the salary model in raw units: the larger rate leaves the widened window at the first step
        ("salary", "sgd", [{"lr": 1e-3}, {"lr": 0.02}], lambda p, v: torch.optim.SGD(p, lr=v["lr"]), False),
    ],
)
def test_paths_equal_direct_runs(problem, optimizer, settings, make, closure):
    starts = [get_problem(problem).start, (0.5, -0.5) if problem != "salary" else (100.0, 500.0)]
    steps = 12
    paths = compute_paths(get_problem(problem), optimizer, settings, starts, steps)
    for row, setting in enumerate(settings):
        for column, start in enumerate(starts):
            expected = reference_path(problem, lambda p, v=setting: make(p, v), start, steps, closure)
            got = paths[row, column]
            assert np.isfinite(got[: len(expected)]).all() and np.isnan(got[len(expected) :]).all()
            np.testing.assert_allclose(got[: len(expected)], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "name", sorted(name for name, cls in optimizer_classes().items() if shares_optimizer(cls))
)
def test_sharing_one_optimizer_changes_no_path(name):
    """Every optimizer that declares an elementwise update gives, as rows of shared groups, exactly
    what it gives run alone on the problem's task."""
    cls = optimizer_classes()[name]
    settings = [{"lr": 0.01}, {"lr": 0.1}]
    starts = [(-7.0, 2.0), (3.0, -1.0)]
    paths = compute_paths(get_problem("bowl"), cls, settings, starts, 8)
    for row, setting in enumerate(settings):
        for column, start in enumerate(starts):
            expected = reference_path("bowl", lambda p, v=setting: cls(p, **v), start, 8)
            np.testing.assert_allclose(paths[row, column], expected, rtol=1e-6, atol=1e-7)


def test_classes_with_a_per_tensor_or_group_reduction_run_alone():
    from descentlab.optim._engine import RuleOptimizer

    for name, cls in optimizer_classes().items():
        if issubclass(cls, RuleOptimizer) and not cls.elementwise:
            assert not shares_optimizer(cls), name
    assert not any(
        shares_optimizer(optimizer_classes()[n]) for n in ("lamb", "lars", "prodigy", "adafactor", "swats")
    )
    assert shares_optimizer(optimizer_classes()["adam"])


def test_sliders_come_from_what_each_class_declares():
    def sliders(name):
        return [(s.key, s.values, s.values[s.default]) for s in averaging_sliders(get_optimizer_class(name))]

    assert sliders("sgd") == []  # torch's SGD has momentum 0 by default: plain gradient descent
    assert sliders("adagrad") == []
    assert sliders("momentum") == [("momentum", MOMENTUM_VALUES, 0.9)]
    assert sliders("adam") == [("betas[0]", MOMENTUM_VALUES, 0.9), ("betas[1]", SQUARE_AVERAGE_VALUES, 0.999)]
    assert sliders("rmsprop") == [("alpha", SQUARE_AVERAGE_VALUES, 0.99)]
    assert sliders("adadelta") == [("rho", SQUARE_AVERAGE_VALUES, 0.9)]
    # NormalizedGD's default betas (0, 0), the book's form: 0 joins beta2's values
    assert sliders("normalizedgd")[1] == ("betas[1]", (0.0, *SQUARE_AVERAGE_VALUES), 0.0)
    assert ladder(-2, 1.0) == [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]


def test_a_path_stops_when_it_leaves_the_widened_window():
    # SGD with lr 1.5 on the bowl multiplies y by 1 - 2 * 1.5 = -2 per step: out of [-12, 12] at step 3
    paths = compute_paths(get_problem("bowl"), "sgd", [{"lr": 1.5}], [(-7.0, 2.0)], 10)[0, 0]
    assert np.isfinite(paths[:3]).all() and np.isnan(paths[3:]).all()
    np.testing.assert_allclose(paths[:3, 1], [2.0, -4.0, 8.0])


def test_every_2d_problem_of_the_registry_builds_a_page():
    two_d = [p.name for p in all_problems() if p.function is not None and p.bounds is not None]
    assert explorable_problems() == two_d and {"gabor", "bowl", "rosenbrock", "noisy-bowl"} <= set(two_d)
    for name in two_d:
        data = page_data(build_explorer(name, ["sgd"], steps=5))
        assert data["problem"]["name"] == name and data["optimizers"][0]["count"] == 8 * len(data["starts"])
    assert page_json(render_page(build_explorer("saddle", ["sgd"], steps=5)))["loss"]["log"] is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--problem", "digits-mlp"], "has more than two parameters"),
        (["--problem", "gabbor"], "unknown problem 'gabbor'; the explorer knows the 2-D problems: bowl"),
        (["--optimizers", "adamm"], "unknown optimizer 'adamm'. Did you mean Adam"),
        (["--optimizers", ","], "name at least one optimizer"),
        (["--steps", "0"], "steps must be at least 1, got 0"),
        (["--start", "1;2"], "--start takes two numbers X,Y such as --start=-1.5,8.5; got '1;2'"),
        (["--start", "1,2,3"], "a start point is two finite numbers x,y; got (1.0, 2.0, 3.0)"),
        (["--start", "30,8"], "start (30, 8) lies outside the window of 'gabor', [-10, 10] x [2.5, 22.5]"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path):
    assert main(["explore", *argv, "--out", str(tmp_path / "page.html")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "page.html").exists()


def test_the_command_writes_the_page(capsys, tmp_path):
    out = tmp_path / "new folder" / "bowl.html"
    argv = ["explore", "--problem", "bowl", "--optimizers", "sgd,adam", "--steps", "20", "--out", str(out)]
    assert main([*argv, "--start=-7,2", "--start", "5,-3.5"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out.resolve())
    assert "explore bowl: " in captured.err and " MB, " in captured.err
    data = page_json(out)
    assert [o["name"] for o in data["optimizers"]] == ["SGD", "Adam"]
    assert data["starts"] == [[-7, 2], [5, -3.5]] and data["optimizers"][1]["count"] == 8 * 6 * 3 * 2
