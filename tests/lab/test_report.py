import csv
import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from descentlab.atomic import write_text as write_text_atomic
from descentlab.lab import RunStore, run_comparison, run_spec, write_report
from descentlab.lab.report import curves, plots
from descentlab.lab.report.colors import configuration_colors
from descentlab.lab.report.curves import time_differs
from descentlab.lab.report.data import load_report_data
from descentlab.lab.report.statistics import configuration_rows
from descentlab.lab.spec import RunSpec
from lab.browser import open_in_browser, require_browser


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    from lab.tiny_problems import register_tiny_problems, unregister_tiny_problems

    register_tiny_problems()
    folder = tmp_path_factory.mktemp("report")
    run_comparison(
        folder,
        ["sgd", "adam", "adamw"],
        ["tiny-bowl", "tiny-logreg", "tiny-blowup"],
        [0, 1],
        lr_grid=(0.01, 0.1, 1.0),
        name="first",
    )
    original = plots.figure_to_data_uri

    def recording(figure):  # every figure the page embeds: its axes' y labels, as drawn
        _DRAWN.append([axes.get_ylabel() for axes in figure.axes if axes.get_visible()])
        return original(figure)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "figure_to_data_uri", recording)
        page = write_report(folder)
    unregister_tiny_problems()
    return folder, page


_DRAWN: list[list[str]] = []


def _alts(text: str) -> list[str]:
    return re.findall(r"<img src='data:image/png;base64,[^']*' alt='([^']*)'>", text)


def test_page_is_self_contained(report_dir):
    folder, page = report_dir
    text = page.read_text()
    assert page == folder / "report.html"
    assert "<script" not in text and not re.search(r"(src|href)=['\"]https?:", text)
    alts = _alts(text)
    assert len(alts) == text.count("<img ")  # every image is an embedded PNG
    # 2-D problems: paths, sweep, loss vs steps, step sizes; the learning problem has no paths; the
    # best configuration of each problem gets the three analysis figures, except on tiny-blowup where
    # every configuration diverged; then the performance profiles of the comparison
    analysis = ["loss surface around the end point", "Hessian spectral density", "learning-rate range test"]
    best = {"tiny-bowl": "Adam lr=1", "tiny-logreg": "Adam lr=3.16"}
    (section,) = load_report_data(folder).sections
    timed = {p.name: time_differs(p) for p in section.problems}  # measured times: load decides
    assert not timed["tiny-bowl"] and not timed["tiny-blowup"]  # never on two parameters
    expected = []
    for problem in ("tiny-bowl", "tiny-logreg", "tiny-blowup"):
        paths = [] if problem == "tiny-logreg" else [f"{problem} trajectories"]
        curves = [f"{problem} steps curves", *([f"{problem} wall time curves"] if timed[problem] else [])]
        expected += [*paths, f"{problem} sweep", *curves, f"{problem} step sizes"]
        expected += [f"{best[problem]} {what}" for what in analysis] if problem in best else []
    assert alts == [*expected, "comparison first performance profiles"]
    for name in (
        "tiny-bowl",
        "tiny-logreg",
        "tiny-blowup",
        "SGD lr=",
        "Adam lr=",
        "AdamW lr=",
        "comparison first",
    ):
        assert name in text
    assert "On tiny-blowup every configuration diverged." in text
    assert "Every configuration diverged: no end point." in text
    assert not [path for path in folder.iterdir() if path.name.endswith(".tmp")]


def test_identical_seeds_are_said_to_be_identical_not_a_spread(report_dir):
    _, page = report_dir
    text = page.read_text()
    # the tiny bowl starts at one point for every seed and is full batch: both seeds are the same run
    assert "identical on 2 seeds" in text and "± 0 " not in text


def test_data_files_match_the_store(report_dir):
    folder, _ = report_dir
    with open(folder / "runs.csv", newline="") as handle:
        runs = list(csv.DictReader(handle))
    assert len(runs) == 3 * 3 * 2
    assert {row["outcome"] for row in runs if row["problem"] == "tiny-blowup"} == {"diverged"}
    document = json.loads((folder / "report.json").read_text())
    (part,) = document["parts"]
    assert set(part["problems"]) == {"tiny-bowl", "tiny-logreg", "tiny-blowup"}
    chosen = {(c["problem"], c["optimizer"]): c["lr"] for c in part["settings"]["configurations"]}
    for row in runs:
        assert float(row["lr"]) == chosen[row["problem"], row["optimizer"]]
        assert row["label"].startswith({"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[row["optimizer"]])
    with open(folder / "records.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert {row["run_id"] for row in records} == {row["run_id"] for row in runs}
    assert "val_accuracy" in records[0] and "gradient_evaluations" in records[0]


def test_table_means_are_computed_from_the_runs(report_dir):
    folder, _ = report_dir
    document = json.loads((folder / "report.json").read_text())
    (part,) = document["parts"]
    for row in part["problems"]["tiny-logreg"]:
        finals = [
            run["summary"]["final_metric"]
            for run in document["runs"]
            if run["configuration_id"] == row["configuration_id"]
        ]
        assert len(finals) == 2 and row["headline"]["mean"] == pytest.approx(sum(finals) / 2)


def test_unlike_runs_are_never_merged(tmp_path):
    for lr in (0.1, 0.3):
        for seed in (0, 1):
            result = run_spec(RunSpec.create("tiny-logreg", "sgd", {"lr": lr}, seed=seed, steps=5))
            with RunStore(tmp_path) as store:
                store.save(result, purpose="run")
    data = load_report_data(tmp_path)
    (section,) = data.sections
    (problem,) = section.problems
    assert sorted(c.label for c in problem.configurations) == ["SGD lr=0.1 · 5 steps", "SGD lr=0.3 · 5 steps"]
    assert all(sorted(run["seed"] for run in c.runs) == [0, 1] for c in problem.configurations)


def test_two_comparisons_in_one_folder_stay_apart(tmp_path):
    run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0], settings={"lr": 0.1}, name="a")
    run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0], settings={"lr": 0.2, "steps": 5}, name="b")
    data = load_report_data(tmp_path)
    assert [s.title for s in data.sections] == ["comparison a", "comparison b"]
    labels = [[c.label for p in s.problems for c in p.configurations] for s in data.sections]
    assert labels == [["SGD lr=0.1"], ["SGD lr=0.2 · 5 steps"]]


def test_a_tie_is_reported_as_a_tie(tmp_path):
    # clipping at 1e6 never acts on the bowl: two configurations with bit-identical results
    run_comparison(
        tmp_path, ["sgd"], ["tiny-bowl"], [0, 1], settings={"lr": 0.1}, vary=[("clip_value", ["1e6", "1e7"])]
    )
    text = write_report(tmp_path, analysis=False).read_text()
    assert "On tiny-bowl, tie: SGD lr=0.1 · clip_value=1e+06, SGD lr=0.1 · clip_value=1e+07" in text
    assert "ends best" not in text


def test_a_clear_winner_is_named(tmp_path):
    run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0, 1], vary=[("lr", ["0.001", "0.3"])])
    text = write_report(tmp_path, analysis=False).read_text()
    assert (
        "On tiny-bowl, SGD lr=0.3 ends best" in text and "beats the runner-up on all 2 common seeds" in text
    )


def test_one_stochastic_seed_decides_nothing(tmp_path):
    run_comparison(tmp_path, ["sgd"], ["tiny-logreg"], [0], vary=[("lr", ["0.001", "1"])])
    text = write_report(tmp_path, analysis=False).read_text()
    assert "On tiny-logreg, tie: " in text and "one seed only" in text


def test_report_renders_a_store_whose_problems_are_not_registered(tmp_path):
    from lab.tiny_problems import register_tiny_problems, unregister_tiny_problems

    run_comparison(tmp_path, ["sgd"], ["tiny-logreg"], [0], settings={"lr": 0.1, "steps": 3})
    unregister_tiny_problems()
    try:
        text = write_report(tmp_path, analysis=False).read_text()
    finally:
        register_tiny_problems()
    assert "problem not registered" in text and "SGD lr=0.1 · 3 steps" in text


def test_learning_problems_report_test_beside_validation(tmp_path):
    run_comparison(tmp_path, ["adam"], ["digits-logreg"], [0], settings={"lr": 0.01, "steps": 20})
    text = write_report(tmp_path, analysis=False).read_text()
    assert "test accuracy ↑" in text and "validation accuracy" in text and "train accuracy" in text


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "page.html"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and [path.name for path in tmp_path.iterdir()] == ["page.html"]


@pytest.fixture(scope="module")
def browser_view(report_dir):
    require_browser()
    folder, page = report_dir
    return open_in_browser(page, folder / "screenshot.png", (800, 1400))  # one browser for both widths


def test_page_loads_in_headless_chromium_without_errors(report_dir, browser_view):
    _, page = report_dir
    assert browser_view["title"] == "descentlab report"
    assert browser_view["console"] == []
    assert browser_view["closed_details"] == 3  # each problem's why waits one click away
    assert len(browser_view["images"]) == len(_alts(page.read_text()))
    assert all(complete and width > 0 and height > 0 for complete, width, height, _ in browser_view["images"])


@pytest.mark.parametrize("width", [800, 1400])
def test_page_layout_holds_at_800_and_1400_px(browser_view, width):
    view = browser_view["widths"][width]
    assert view["overflow"] == []  # no element wider than its card, no sideways page scroll
    # figures are drawn at most a card wide at 800 px: shown at their natural size, text stays readable
    # (the textbook figures of `descentlab figure` may be scaled down; this folder has none)
    assert all(scale > 0.99 for _, scale in view["scales"]), view["scales"]
    shot = view["screenshot"]
    assert shot.name == f"screenshot-{width}.png" and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000


def _problem(folder, name):
    (section,) = [s for s in load_report_data(folder).sections if s.title == "comparison first"]
    problem_runs = next(p for p in section.problems if p.name == name)
    colors = configuration_colors([(c.label, c.optimizer) for c in problem_runs.configurations])
    return problem_runs, colors


def test_sweep_rings_the_chosen_rate_and_crosses_every_diverged_one(report_dir):
    folder, _ = report_dir
    problem_runs, colors = _problem(folder, "tiny-blowup")
    with RunStore(folder) as store:
        sweeps = [run for run in store.runs("sweep") if run["problem"] == "tiny-blowup"]
    with open(folder / "runs.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["problem"] == "tiny-blowup"]
    chosen = {row["label"]: float(row["lr"]) for row in rows}
    axes = plots.sweep_figure(problem_runs, colors).axes[0]
    crossed = 0
    for configuration in problem_runs.configurations:
        mine = [run for run in sweeps if run["optimizer"] == configuration.optimizer]
        diverged = sorted(
            run["spec"].hyperparameter_dict["lr"] for run in mine if run["outcome"] != "completed"
        )
        lines = [line for line in axes.lines if line.get_color() == colors[configuration.label]]
        crosses = [line for line in lines if line.get_marker() == "x"]
        assert [list(line.get_xdata()) for line in crosses] == ([diverged] if diverged else [])
        crossed += len(diverged)
        (ring,) = [line for line in lines if line.get_label() == "_chosen rate"]
        assert list(ring.get_xdata()) == [chosen[configuration.label]]
    assert crossed > 0  # on -100 (x^2 + y^2) the faster rates blow up within the short sweep run


def test_sweep_axis_is_floored_at_the_float_resolution(report_dir):
    folder, _ = report_dir
    problem_runs, colors = _problem(folder, "tiny-bowl")
    configuration = next(c for c in problem_runs.configurations if c.swept and c.sweep)
    finished = [lr for lr, value in configuration.sweep.items() if value is not None]
    configuration.sweep[max(finished, key=float)] = 1e-40  # one short run ends at a float32 denormal
    values = [v for c in problem_runs.configurations if c.swept for v in c.sweep.values() if v is not None]
    axes = plots.sweep_figure(problem_runs, colors).axes[0]
    assert axes.get_yscale() == "log"
    resolution = np.finfo(curves.run_dtype(problem_runs)).eps
    assert axes.get_ylim()[0] == pytest.approx(resolution * max(values), rel=1e-12)
    assert axes.get_ylim()[0] > 1e-20  # not the denormal's 1e-40
    drawn = np.concatenate(
        [np.asarray(line.get_ydata(), dtype=float) for line in axes.lines if len(line.get_ydata())]
    )
    assert drawn.min() >= axes.get_ylim()[0]


def test_loss_axis_stops_at_the_float_resolution_not_at_a_denormal(report_dir):
    folder, _ = report_dir
    problem_runs, colors = _problem(folder, "tiny-bowl")
    # the resolution is taken at the scale the curves start from: each run's first recorded loss
    starts = [
        next(r.loss for r in run["records"] if r.loss) for runs in problem_runs.runs.values() for run in runs
    ]
    run = problem_runs.configurations[0].runs[0]
    run["records"][-1] = dataclasses.replace(run["records"][-1], loss=1e-40)  # one run hits a denormal
    dtype = run["summary"].dtype
    (figure, title), *_ = curves.curves_figures(problem_runs, colors)
    axes = figure.axes[0]
    assert title == "steps curves" and axes.get_yscale() == "log"
    assert axes.get_ylim()[0] == pytest.approx(np.finfo(dtype).eps * max(starts), rel=1e-12)
    assert curves.loss_floor(np.array([10.0, 1e-3, 1e-40]), "float32") == pytest.approx(
        np.finfo(np.float32).eps * 10.0
    )
    assert curves.loss_floor(np.array([10.0, 1e-3]), "float32") == 5e-4  # nothing below resolution
    # a diverging curve's peak of 1e6 does not lift the floor when the curves started at 20
    assert curves.loss_floor(np.array([1e6, 20.0, 1e-4]), "float32", scale=20.0) == 5e-5
    assert curves.loss_floor(np.array([1.0, -1.0]), "float32") is None  # a negative loss: linear axis


def test_paths_that_leave_the_window_are_cut_at_its_edge_and_marked(report_dir):
    folder, _ = report_dir
    problem_runs, colors = _problem(folder, "tiny-blowup")
    (x_low, x_high), (y_low, y_high) = problem_runs.problem.bounds
    axes = plots.trajectory_figure(problem_runs, colors).axes[0]
    assert axes.get_xlim() == (x_low, x_high) and axes.get_ylim() == (y_low, y_high)
    for label, color in colors.items():
        path = next(line for line in axes.lines if line.get_label().startswith(label))
        assert path.get_label().endswith("(diverged) (leaves the window)") and path.get_clip_on()
        (exit_marks,) = [
            line for line in axes.lines if line.get_color() == color and line.get_marker() == "X"
        ]
        x, y = exit_marks.get_xydata()[0]
        on_edge = min(abs(x - x_low), abs(x - x_high), abs(y - y_low), abs(y - y_high))
        assert on_edge < 1e-9 and x_low <= x <= x_high and y_low <= y <= y_high


def test_effective_step_size_of_plain_sgd_is_its_learning_rate(report_dir):
    folder, _ = report_dir
    problem_runs, colors = _problem(folder, "tiny-bowl")
    (sgd,) = [c for c in problem_runs.configurations if c.optimizer == "sgd"]
    figure = curves.step_size_figure(problem_runs, colors)
    effective, update = figure.axes
    (line,) = [line for line in effective.lines if line.get_label() == sgd.label]
    np.testing.assert_allclose(line.get_ydata(), sgd.lr, rtol=1e-9)  # Δθ = -lr g on a full-batch bowl
    with open(folder / "records.csv", newline="") as handle:
        norms = [
            float(row["update_norm"])
            for row in csv.DictReader(handle)
            if row["run_id"] == sgd.runs[0]["run_id"] and row["update_norm"]
        ]
    (line,) = [line for line in update.lines if line.get_label() == sgd.label]
    np.testing.assert_allclose(line.get_ydata(), norms, rtol=1e-12)  # both seeds start alike: mean = seed 0
    assert all(axes.get_ylabel() for axes in figure.axes)


def test_end_point_analysis_finds_the_curvature_of_the_bowl(report_dir):
    _, page = report_dir
    text = page.read_text()
    card = text[text.index("id='s0-tiny-bowl'") :].split("</section>")[0]
    # the Hessian of x^2/20 + y^2 is diag(1/10, 2) everywhere
    assert "Largest Hessian eigenvalues at the end point: 2, 0.1 (Lanczos, 2 steps)." in card
    assert "Stability edge of plain gradient descent there: lr &lt; 2/λmax = 1." in card
    assert "end point reproduced" in card and "LR range test: 100 steps" in card
    assert "for models of at most 5000 parameters" in text  # the rule bounding the cost, on the page


def test_wall_time_is_drawn_only_where_time_per_step_differs(report_dir):
    folder, _ = report_dir
    for name in ("tiny-bowl", "tiny-blowup"):  # a two-parameter step is bookkeeping, however timed
        assert not curves.time_differs(_problem(folder, name)[0])
    problem_runs, colors = _problem(folder, "tiny-logreg")

    def timed(per_step: dict[str, float]) -> list[str]:
        for configuration in problem_runs.configurations:
            for run in configuration.runs:
                seconds = per_step[configuration.optimizer] * run["summary"].steps
                run["summary"] = dataclasses.replace(run["summary"], seconds=seconds)
        return [title for _, title in curves.curves_figures(problem_runs, colors)]

    assert timed({"sgd": 2e-3, "adam": 4e-3, "adamw": 4e-3}) == ["steps curves", "wall time curves"]
    assert timed({"sgd": 2e-3, "adam": 2.2e-3, "adamw": 2.1e-3}) == ["steps curves"]  # within 1.25x
    assert timed({"sgd": 1e-4, "adam": 3e-4, "adamw": 3e-4}) == ["steps curves"]  # too short to mean much


def test_every_figure_of_the_page_labels_its_y_axis(report_dir):
    _, page = report_dir
    # the analysis figures come from descentlab.analysis' own plot functions; they are held to it too
    assert len(_DRAWN) == len(_alts(page.read_text()))
    assert all(label.strip() for labels in _DRAWN for label in labels), _DRAWN
    assert sum(len(labels) for labels in _DRAWN) >= 20


def test_many_configurations_get_small_multiples_and_only_the_best_in_colour(tmp_path):
    rates = ["0.01", "0.03", "0.1", "0.3", "0.6", "0.9"]
    run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0], settings={"steps": 12}, vary=[("lr", rates)])
    (section,) = load_report_data(tmp_path).sections
    (problem_runs,) = section.problems
    colors = configuration_colors([(c.label, c.optimizer) for c in problem_runs.configurations])
    paths = plots.trajectory_figure(problem_runs, colors)
    panels = [axes for axes in paths.axes if axes.get_visible()]
    assert [axes.get_title() for axes in panels] == [c.label for c in problem_runs.configurations]
    assert all(len([line for line in axes.lines if line.get_marker() == "o"]) == 1 for axes in panels)
    # the three lowest final losses, read from the store, keep their colours; the rest turn grey
    with RunStore(tmp_path) as store:
        finals = {run["spec"].hyperparameter_dict["lr"]: run["summary"].final_metric for run in store.runs()}
    best = sorted(finals, key=finals.get)[: curves.HIGHLIGHT_BEST]
    highlight = curves.highlighted(problem_runs, configuration_rows(problem_runs))
    assert highlight == {c.label for c in problem_runs.configurations if c.lr in best}
    (figure, _), *_ = curves.curves_figures(problem_runs, colors, highlight)
    lines = figure.axes[0].lines
    assert sorted(line.get_label() for line in lines if line.get_color() != curves.OTHERS_COLOR) == sorted(
        highlight
    )
    assert [line.get_label() for line in lines if line.get_color() == curves.OTHERS_COLOR] == [
        "others (3)"
    ] * 3


def test_the_global_minimum_is_marked_apart_from_the_local_ones(tmp_path):
    with RunStore(tmp_path) as store:
        store.save(run_spec(RunSpec.create("gabor", "sgd", {"lr": 0.01}, seed=0, steps=5)), purpose="run")
    (section,) = load_report_data(tmp_path).sections
    (problem_runs,) = section.problems
    problem = problem_runs.problem
    axes = plots.trajectory_figure(problem_runs, {problem_runs.configurations[0].label: "#000000"}).axes[0]
    marks = {line.get_label(): line.get_xydata() for line in axes.lines}

    def loss(points):
        return problem.function(torch.tensor(points, dtype=torch.float64)).numpy()

    assert len(marks["global minimum"]) == 1 and len(marks["local minima"]) == len(problem.minima) - 1
    np.testing.assert_allclose(loss(marks["global minimum"]), problem.optimum, rtol=1e-9)
    assert (loss(marks["local minima"]) > problem.optimum + 1e-3).all()


def test_an_analysis_tool_refusing_the_end_point_leaves_its_reason_not_a_crash(tmp_path):
    # lr = 0 never moves: the trajectory has no direction to project on
    with RunStore(tmp_path) as store:
        store.save(run_spec(RunSpec.create("tiny-bowl", "sgd", {"lr": 0.0}, seed=0, steps=3)), purpose="run")
    text = write_report(tmp_path).read_text()
    assert "No end-point analysis: all points are identical" in text
