"""The analysis tools' result files: figures and JSON, written with :mod:`descentlab.atomic`.

Both create missing folders, since the CLI writes to ``--out`` stems the user names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from descentlab import atomic


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib ``figure`` to ``path`` atomically (format from the suffix); returns the path."""
    return atomic.save_figure(figure, path, dpi=dpi, parents=True)


def write_json(data: Any, path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON with sorted keys to ``path`` atomically; returns the path."""
    return atomic.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", parents=True)
