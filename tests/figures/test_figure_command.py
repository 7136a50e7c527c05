"""``descentlab figure``: listing, making, skipping stored runs, the report section; visible clipping."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from descentlab.cli import main
from descentlab.figures import FIGURES, FigureDefinition, make_figure
from descentlab.lab.report.plots import window_exits


def test_list_names_every_figure(capsys):
    assert main(["figure", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(FIGURES)
    assert listed[:2] == ["optimizers-bowl", "momentum-nesterov"]


def test_unknown_name_is_one_line_naming_the_known_ones(capsys):
    assert main(["figure", "optimizers-bowel"]) == 2
    error = capsys.readouterr().err
    assert "unknown figure 'optimizers-bowel'" in error and "optimizers-bowl" in error


def test_make_then_remake_skips_the_stored_runs_and_the_report_shows_the_figure(tmp_path, capsys):
    assert main(["figure", "line-search", "--out", str(tmp_path)]) == 0
    first = capsys.readouterr()
    assert "1 runs trained, 0 already stored" in first.err
    png, svg, report = first.out.split()
    assert report.endswith("report.html")
    assert png.endswith("figures/line-search.png") and svg.endswith("figures/line-search.svg")
    assert main(["figure", "line-search", "--out", str(tmp_path)]) == 0
    assert "0 runs trained, 1 already stored" in capsys.readouterr().err
    page = (tmp_path / "report.html").read_text()
    assert "id='figure-line-search'" in page and "data:image/png;base64," in page
    assert "descentlab figure line-search --out" in page
    assert "stand-alone runs" not in page  # a figure's runs show in its own section only


def test_dpi_scales_the_png_and_bad_values_are_one_line(tmp_path, capsys):
    from PIL import Image

    sizes = {}
    for dpi in (60, 120):
        assert main(["figure", "line-search", "--out", str(tmp_path), "--dpi", str(dpi)]) == 0
        png = capsys.readouterr().out.split()[0]
        with Image.open(png) as image:
            sizes[dpi] = image.size
    assert sizes[120] == pytest.approx((2 * sizes[60][0], 2 * sizes[60][1]), abs=2)
    assert main(["figure", "line-search", "--out", str(tmp_path), "--dpi", "5"]) == 2
    assert "dpi must be a whole number from 20 to 600, not 5" in capsys.readouterr().err


def test_window_exits_are_on_the_boundary_once_per_departure():
    bounds = ((-10.0, 10.0), (-4.0, 4.0))
    inside = np.array([[0.0, 0.0], [5.0, 1.0], [-3.0, -2.0]])
    assert len(window_exits(inside, bounds)) == 0
    out_and_back = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 2.0], [0.0, -8.0], [0.0, 0.0]])
    exits = window_exits(out_and_back, bounds)
    np.testing.assert_allclose(exits, [[10.0, 0.0], [0.0, -4.0]])
    corner = window_exits(np.array([[8.0, 3.0], [12.0, 5.0]]), bounds)
    np.testing.assert_allclose(corner, [[10.0, 4.0]])  # both walls at once: the first one hit


def test_draw_path_marks_where_it_leaves(tmp_path):
    from matplotlib.figure import Figure

    from descentlab.lab.report.plots import draw_path

    axes = Figure().add_subplot()
    points = np.array([[0.0, 0.0], [20.0, 0.0]])
    assert draw_path(axes, points, ((-10.0, 10.0), (-4.0, 4.0)), "#000000", "SGD")
    labels = [line.get_label() for line in axes.lines]
    assert "SGD (leaves the window)" in labels
    np.testing.assert_allclose(axes.lines[-1].get_xydata(), [[10.0, 0.0]])
    assert not draw_path(axes, points[:1], ((-10.0, 10.0), (-4.0, 4.0)), "#000000", "inside")


@pytest.mark.parametrize("name", [name for name, definition in FIGURES.items() if definition.train is None])
def test_every_figure_declares_lab_runs_with_distinct_ids(name):
    runs = FIGURES[name].runs()
    assert runs and len({spec.run_id for spec in runs.values()}) == len(runs)


def test_readme_figures_exist_and_name_the_command_that_made_them():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    shown = re.findall(r"!\[[^\]]*\]\(docs/figures/([a-z-]+)\.png\)\n\n`descentlab figure ([a-z-]+) ", readme)
    assert len(shown) == 3
    for image, command in shown:
        assert image == command and image in FIGURES
        assert (root / "docs" / "figures" / f"{image}.png").stat().st_size < 200_000
    listed = re.search(r"names all\s+eleven: (.*?)\.\n", readme, re.S).group(1)
    assert re.findall(r"`([a-z-]+)`", listed) == list(FIGURES)


def test_figure_files_are_written_atomically(tmp_path, file_events):
    definition = FigureDefinition("empty", "no runs", "none", runs=dict, draw=lambda runs: Figure())
    result = make_figure(definition, tmp_path)
    assert result.png.read_bytes()[:4] == b"\x89PNG" and result.svg.read_bytes().lstrip()[:5] == b"<?xml"
    assert [event for event in file_events if event.startswith("replace")] == [
        "replace onto empty.png",
        "replace onto empty.svg",
    ]
    assert file_events[file_events.index("replace onto empty.png") - 1] == "fsync file"
