"""The report's part for the textbook figures made in the folder (``descentlab figure NAME``)."""

from __future__ import annotations

import base64
from pathlib import Path

from descentlab.lab.report.model import FigureCard, Image
from descentlab.lab.store import RunStore

FIGURES_META_KEY = "figures"
"""Meta-table key holding ``{figure name: what was made}``, written by :mod:`descentlab.figures`."""


def figure_cards(out_dir: str | Path, made: dict[str, dict] | None = None) -> list[FigureCard]:
    """One card per figure of the folder: what it shows, the command, its time, the PNG, the files.

    ``made`` is the store's record of them (read from ``out_dir``'s store when ``None``). Empty when no
    figure was made. The PNG is embedded, so the page stays self-contained; a figure whose file went
    missing has no image (its card says so instead of showing a broken one).
    """
    out_dir = Path(out_dir)
    if made is None:
        with RunStore(out_dir, read_only=True) as store:
            made = store.get_meta(FIGURES_META_KEY, {})
    return [_card(out_dir, entry) for entry in made.values()]


def figures_section(out_dir: str | Path) -> str:
    """The HTML of :func:`figure_cards` (empty when no figure was made), as the page renders it."""
    from descentlab.lab.report.render import render_figure_cards

    return render_figure_cards(figure_cards(out_dir))


def _card(out_dir: Path, entry: dict) -> FigureCard:
    png = out_dir / entry["png"]
    image = None
    if png.is_file():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        image = Image(f"data:image/png;base64,{data}", entry["name"])
    return FigureCard(
        name=entry["name"],
        source=entry["source"],
        summary=entry["summary"],
        command=entry["command"],
        seconds=float(entry["seconds"]),
        made_at=entry["made_at"],
        png=entry["png"],
        svg=entry["svg"],
        image=image,
    )
