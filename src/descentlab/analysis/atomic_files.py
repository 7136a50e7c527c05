"""Write result files atomically: a temporary file in the same folder, then ``os.replace``.

A reader never sees a half-written figure or JSON file, and an interrupted run leaves the old file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def _replace_atomically(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        os.chmod(temporary, 0o644)  # mkstemp makes the file private (0600); results are meant to be shared
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    return path


def save_figure(figure: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib ``figure`` to ``path`` atomically (format from the suffix); returns the path."""
    suffix = Path(path).suffix.lstrip(".")
    if not suffix:
        raise ValueError(f"figure path {str(path)!r} needs a suffix such as .png, .pdf or .svg")
    return _replace_atomically(
        Path(path), lambda temporary: figure.savefig(temporary, dpi=dpi, format=suffix)
    )


def write_json(data: Any, path: str | os.PathLike) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically; returns the path."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text)

    return _replace_atomically(Path(path), write)
