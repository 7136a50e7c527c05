"""Register the tiny problems for every lab test and remove them afterwards."""

from __future__ import annotations

import pytest

from lab.tiny_problems import register_tiny_problems, unregister_tiny_problems


@pytest.fixture(autouse=True)
def tiny_problems():
    """The tiny problems, registered for the duration of one test."""
    register_tiny_problems()
    yield
    unregister_tiny_problems()
