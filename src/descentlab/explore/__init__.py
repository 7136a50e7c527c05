"""``descentlab explore``: one self-contained HTML page to learn how optimizers move on a 2-D surface.

Pick an optimizer, move the sliders (learning rate, momentum or beta1, beta2, the start) and the path
over the contours changes at once, with its loss curve beside it. Every path is computed ahead of time
by the optimizer classes of :mod:`descentlab.optim` over a grid of slider values
(:mod:`~descentlab.explore.grid`, :mod:`~descentlab.explore.paths`); the page
(:mod:`~descentlab.explore.page`) only looks them up, so it needs no server and no network::

    from descentlab.explore import build_explorer, write_explorer

    write_explorer("explore-gabor.html", build_explorer("gabor"))
"""

from descentlab.explore.page import DEFAULT_OPTIMIZERS, Explorer, build_explorer, render_page, write_explorer
from descentlab.explore.paths import compute_paths, explorable_problems

__all__ = [
    "DEFAULT_OPTIMIZERS",
    "Explorer",
    "build_explorer",
    "compute_paths",
    "explorable_problems",
    "render_page",
    "write_explorer",
]
