"""The default explorer page, built once for the whole folder (the size and browser tests read it)."""

from __future__ import annotations

import time

import pytest

from descentlab.explore import build_explorer, write_explorer


@pytest.fixture(scope="session")
def default_page(tmp_path_factory):
    """``descentlab explore --problem gabor`` with every default: (explorer, page path, seconds)."""
    started = time.perf_counter()
    explorer = build_explorer("gabor")
    path = write_explorer(tmp_path_factory.mktemp("explore") / "explore-gabor.html", explorer)
    return explorer, path, time.perf_counter() - started
