"""The ``made`` fixture: each figure test module makes its ``FIGURE`` once, into a fresh folder."""

import pytest

from descentlab.figures import get_figure, make_figure


@pytest.fixture(scope="module")
def made(request, tmp_path_factory):
    """``make_figure`` of the module's ``FIGURE`` into a fresh folder: (result, folder)."""
    folder = tmp_path_factory.mktemp(request.module.FIGURE)
    return make_figure(get_figure(request.module.FIGURE), folder), folder
