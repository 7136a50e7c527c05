"""The salary linear unit: monthly salary from years of experience, five people, one weight and a bias.

The textbook (Han Bingtao, "零基础入门深度学习 (2): 线性单元和梯度下降" [Deep learning from zero, part 2:
the linear unit and gradient descent], 2016) trains ``y = w x + b`` from ``w = b = 0`` with the delta
rule ``w <- w + 0.01 (t - y) x``, ``b <- b + 0.01 (t - y)``, one sample at a time in data order, for 10
passes, and prints ``w = 1124.0634970262222``, ``b = 85.485289`` and the predictions for 3.4, 15, 1.5
and 6.3 years. The lab's ``salary`` problem has the loss ``sum_i (y_i - t_i)^2`` and scales a
minibatch of one by ``N = 5``, so a sample's gradient is ``10 (y - t) x``: SGD with ``lr = 0.001`` and
``order=data`` is the book's procedure exactly. Batch gradient descent gets the same rate and the same
10 passes (10 full-batch steps).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from descentlab.figures.base import FigureDefinition, Runs
from descentlab.figures.panels import draw_start_and_minima
from descentlab.lab.report.plots import draw_contours, draw_path
from descentlab.lab.spec import RunSpec
from descentlab.problems.registry import get_problem
from descentlab.problems.textbook import SALARY, SALARY_YEARS

BOOK_RATE = 0.01
SAMPLES = len(SALARY)
LR = BOOK_RATE / (2 * SAMPLES)
"""The lab's rate for the book's: the per-sample loss ``N (y - t)^2`` has gradient ``2 N (y - t) x``."""

PASSES = 10
QUERY_YEARS = (3.4, 15.0, 1.5, 6.3)
"""The experience values whose predicted salaries the book prints."""

PER_SAMPLE = "per sample, data order (the book)"
BATCH = "batch gradient descent"
WINDOW = ((-1000.0, 1000.0), (0.0, 1400.0))
"""The part of the loss surface the 10 passes cross (the problem's window is three times wider)."""
COLORS = {PER_SAMPLE: "#dc2626", BATCH: "#2563eb"}


def salary_runs() -> dict[str, RunSpec]:
    """The book's per-sample procedure and batch descent, both 10 passes at the same rate."""
    per_sample = RunSpec.create(
        "salary", "sgd", {"lr": LR}, epochs=PASSES, batch_size=1, model={"order": "data"}
    )
    batch = RunSpec.create("salary", "sgd", {"lr": LR}, epochs=PASSES)
    return {PER_SAMPLE: per_sample, BATCH: batch}


def draw_salary(runs: Runs) -> Figure:
    """Data with the fitted lines and the book's predictions; paths over the loss surface; loss per pass."""
    problem = get_problem("salary")
    figure = Figure(figsize=(15.0, 4.4), layout="constrained")
    data, surface, losses = figure.subplots(1, 3)
    data.plot(SALARY_YEARS, SALARY, "o", color="black", label="the five people")
    years = np.linspace(0.0, max(QUERY_YEARS), 50)
    for label, run in runs.items():
        bias, weight = run.points()[-1]
        data.plot(
            years, weight * years + bias, color=COLORS[label], label=f"{label}: w={weight:.2f} b={bias:.2f}"
        )
    bias, weight = problem.minima[0]
    data.plot(years, weight * years + bias, ":", color="#6b7280", label="least squares")
    bias, weight = runs[PER_SAMPLE].points()[-1]
    queries = np.array(QUERY_YEARS)
    data.plot(
        queries,
        weight * queries + bias,
        "D",
        color=COLORS[PER_SAMPLE],
        label="predictions printed by the book",
    )
    for year in QUERY_YEARS:
        offset = (-44 if year == max(QUERY_YEARS) else 6, -10)  # the last one would leave the axes
        data.annotate(
            f"{weight * year + bias:.2f}", (year, weight * year + bias), xytext=offset,
            textcoords="offset points", fontsize=7,
        )  # fmt: skip
    data.set_xlabel("years of experience")
    data.set_ylabel("monthly salary")
    data.set_title("data and fitted linear units", fontsize=10)
    data.set_ylim(0, 1.15 * (weight * max(QUERY_YEARS) + bias))
    data.legend(fontsize=7, loc="upper left")

    draw_contours(surface, problem.function, WINDOW)
    for label, run in runs.items():
        draw_path(surface, np.array(run.points(), dtype=float), WINDOW, COLORS[label], label)
    draw_start_and_minima(surface, problem)
    surface.set_xlabel("bias b (φ0)")
    surface.set_ylabel("weight w (φ1)")
    surface.set_title("paths over the loss surface (raw units: badly conditioned)", fontsize=10)
    surface.legend(fontsize=7, loc="lower right")

    for label, run in runs.items():
        steps_per_pass = SAMPLES // (run.spec.batch_size or SAMPLES)  # full batch: one step a pass
        passes = [r.step / steps_per_pass for r in run.records if r.metrics]
        values = [r.metrics["loss"] for r in run.records if r.metrics]
        losses.plot(passes, values, "-o", markersize=3, color=COLORS[label], label=label)
    losses.axhline(problem.optimum, color="#6b7280", linestyle=":", label="least-squares minimum")
    losses.set_yscale("log")
    losses.set_xlabel("passes over the data")
    losses.set_ylabel("sum of squared errors")
    losses.set_title("loss after each pass", fontsize=10)
    losses.legend(fontsize=7)
    figure.suptitle(f"the salary linear unit: book rate {BOOK_RATE:g} (lab lr {LR:g}), {PASSES} passes")
    return figure


FIGURES = (
    FigureDefinition(
        "salary-linear-unit",
        "salary vs experience: the book's per-sample linear unit (its printed weights) vs batch descent",
        "Han Bingtao, Deep learning from zero, part 2: linear unit and gradient descent (2016)",
        salary_runs,
        draw_salary,
    ),
)
