"""plot() draws the schedules' values and saves atomically."""

import pytest
from matplotlib.figure import Figure

from descentlab.schedules import Cosine, Exponential, Plateau, Warmup, plot


def test_plot_draws_each_schedule_with_its_values(tmp_path):
    schedules = {"warm-up + cosine": Warmup("linear", 10, then=Cosine(90)), "exponential": Exponential(50)}
    path = tmp_path / "figures" / "schedules.png"
    figure = plot(schedules, range(0, 100, 5), title="lr", ylabel="multiplier", path=path)
    assert isinstance(figure, Figure)
    lines = figure.axes[0].get_lines()
    assert [line.get_label() for line in lines] == list(schedules)
    for line, schedule in zip(lines, schedules.values()):
        assert list(line.get_xdata()) == list(range(0, 100, 5))
        assert list(line.get_ydata()) == [schedule(t) for t in range(0, 100, 5)]
    assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in path.parent.iterdir()] == ["schedules.png"]  # no temporary file left behind


def test_plot_accepts_one_schedule_or_a_list_and_log_axis(tmp_path):
    figure = plot(Exponential(10), 30, log_y=True)
    assert figure.axes[0].get_yscale() == "log"
    assert len(plot([Cosine(10), Cosine(20)], 30).axes[0].get_lines()) == 2
    plot(Cosine(10), 20, path=tmp_path / "cosine.svg")
    assert (tmp_path / "cosine.svg").read_text().lstrip().startswith("<?xml")


def test_plot_leaves_metric_state_alone():
    plateau = Plateau(patience=0)
    plateau.report(1.0, 0)
    plot(plateau, 10)
    assert plateau.state.best == 1.0 and plateau.state.bad_reports == 0


def test_plot_errors():
    with pytest.raises(ValueError, match="at least one schedule"):
        plot([], 10)
    with pytest.raises(TypeError, match="must be a descentlab Schedule"):
        plot({"bad": 0.1}, 10)
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got 0"):
        plot(Cosine(10), 0)
    with pytest.raises(ValueError, match="needs a suffix"):
        plot(Cosine(10), 10, path="figure")
