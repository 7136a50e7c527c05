"""Read back what a figure drew: the data of its lines, its panels by title."""

import numpy as np


def drawn_line(axes, label):
    """The (n, 2) data of the one line labelled ``label`` in ``axes``."""
    (line,) = [line for line in axes.lines if line.get_label() == label]
    return np.asarray(line.get_xydata(), dtype=float)


def panel(figure, title):
    """The one visible axes of ``figure`` titled ``title``."""
    (axes,) = [axes for axes in figure.axes if axes.get_visible() and axes.get_title() == title]
    return axes
