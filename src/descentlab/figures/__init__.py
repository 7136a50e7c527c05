"""The textbook figures, one command each: ``descentlab figure NAME``.

Each figure module declares :class:`~descentlab.figures.base.FigureDefinition` entries (the lab runs it
needs and a draw function over their stored records); this registry lists them in the order of
``descentlab figure --list``. Runs go through the lab (:mod:`descentlab.lab`), so they are stored in the
results folder and skipped when a figure is made again.

Example::

    from descentlab.figures import get_figure, make_figure
    result = make_figure(get_figure("optimizers-bowl"), "results")   # results/figures/optimizers-bowl.png
"""

from __future__ import annotations

from descentlab.figures import (
    adam_vs_normalized,
    bowl,
    gabor,
    init_activations,
    line_search,
    overfitting,
    random_search,
    salary,
    schedules,
    sgd_vs_gd,
)
from descentlab.figures.base import FigureDefinition, FigureResult, make_figure

FIGURES: dict[str, FigureDefinition] = {
    definition.name: definition
    for module in (
        bowl,
        gabor,
        sgd_vs_gd,
        adam_vs_normalized,
        line_search,
        schedules,
        init_activations,
        salary,
        overfitting,
        random_search,
    )
    for definition in module.FIGURES
}
"""Every figure by name, in listing order."""


def get_figure(name: str) -> FigureDefinition:
    """The figure called ``name``; an unknown name lists the known ones."""
    try:
        return FIGURES[name]
    except KeyError:
        raise ValueError(
            f"unknown figure {name!r}; choose one of {', '.join(FIGURES)} (see `descentlab figure --list`)"
        ) from None


__all__ = ["FIGURES", "FigureDefinition", "FigureResult", "get_figure", "make_figure"]
