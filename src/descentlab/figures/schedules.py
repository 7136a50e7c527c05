"""Every learning-rate schedule of :mod:`descentlab.schedules`, each over one run of the lab.

The runs train SGD on the noisy bowl (gradient noise makes the validation loss level off, so the
performance schedule has a plateau to react to); each panel draws the learning rate the optimizer
actually used at every step (the step records' ``lr``), not the schedule function, and the last panel
the validation loss of every run. Shapes follow Géron, *Hands-On Machine Learning* (3rd ed. 2022),
ch. 11 (power, exponential, piecewise constant, performance scheduling, 1cycle), plus the cosine
with linear warm-up and warmup-stable-decay (WSD) schedules.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from descentlab.figures.base import FigureDefinition, Runs
from descentlab.figures.panels import panel_grid
from descentlab.lab.spec import RunSpec

PROBLEM = "noisy-bowl"
PEAK_LR = 0.1
STEPS = 300
WARMUP_STEPS = 30

SCHEDULES = {
    "power": {"name": "power"},
    "exponential": {"name": "exponential"},
    "piecewise constant": {"name": "piecewise"},
    "performance (plateau)": {"name": "plateau"},
    "1cycle": {"name": "onecycle"},
    f"cosine, {WARMUP_STEPS}-step warm-up": {"name": "cosine", "warmup": WARMUP_STEPS},
    "warmup-stable-decay": {"name": "wsd"},
}
"""Panel title -> the lab's schedule spec (defaults of :mod:`descentlab.lab.schedules`)."""


def schedule_runs() -> dict[str, RunSpec]:
    """One SGD run per schedule, same seed, same peak rate."""
    return {
        title: RunSpec.create(PROBLEM, "sgd", {"lr": PEAK_LR}, schedule=schedule, steps=STEPS)
        for title, schedule in SCHEDULES.items()
    }


def draw_schedules(runs: Runs) -> Figure:
    """A learning-rate panel per schedule and a last panel with every run's validation loss."""
    figure, cells = panel_grid(len(runs) + 1, columns=4, size=(3.6, 2.7))
    for axes, (title, run) in zip(cells, runs.items()):
        steps, rates = run.series("lr")
        axes.plot(steps, rates, color="#2563eb", linewidth=1.5, label="lr")
        if run.spec.schedule_dict["name"] == "plateau":  # the only schedule that listens to evaluations
            evaluated = [r.step for r in run.records if r.metrics]
            axes.plot(evaluated, [rates[steps.index(s)] for s in evaluated], "|", color="#6b7280")
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("step")
        axes.set_ylabel("learning rate")
        axes.set_ylim(bottom=0)
    loss_axes = cells[-1]
    for title, run in runs.items():
        points = [(r.step, r.metrics["loss"]) for r in run.records if r.metrics]
        loss_axes.plot(*zip(*points), linewidth=1.0, label=title)
    loss_axes.set_yscale("log")
    loss_axes.set_title("validation loss", fontsize=10)
    loss_axes.set_xlabel("step")
    loss_axes.set_ylabel("f(x, y)")
    loss_axes.legend(fontsize=6, loc="upper right")
    figure.suptitle(f"learning-rate schedules: SGD, peak lr {PEAK_LR:g}, {STEPS} steps on {PROBLEM}")
    return figure


FIGURES = (
    FigureDefinition(
        "schedules",
        "every learning-rate schedule (power, exponential, piecewise, plateau, 1cycle, cosine, WSD), "
        "one run each",
        "Géron, Hands-On Machine Learning (3rd ed. 2022), ch. 11, learning-rate scheduling",
        schedule_runs,
        draw_schedules,
    ),
)
