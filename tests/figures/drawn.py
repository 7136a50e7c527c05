"""Read back what a figure drew: the data of its lines and histograms, its panels by title."""

import numpy as np


def drawn_line(axes, label):
    """The (n, 2) data of the one line labelled ``label`` in ``axes``."""
    (line,) = [line for line in axes.lines if line.get_label() == label]
    return np.asarray(line.get_xydata(), dtype=float)


def panel(figure, title):
    """The one visible axes of ``figure`` titled ``title``."""
    (axes,) = [axes for axes in figure.axes if axes.get_visible() and axes.get_title() == title]
    return axes


def drawn_histogram(figure, label):
    """``(heights, edges)`` of the one histogram (``axes.stairs``) labelled ``label`` in ``figure``."""
    (patch,) = [patch for axes in figure.axes for patch in axes.patches if patch.get_label() == label]
    heights, edges, _ = patch.get_data()
    return np.asarray(heights, dtype=float), np.asarray(edges, dtype=float)
