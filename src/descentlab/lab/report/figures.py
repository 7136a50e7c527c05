"""The report's part for the textbook figures made in the folder (``descentlab figure NAME``)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from descentlab.lab.store import RunStore

FIGURES_META_KEY = "figures"
"""Meta-table key holding ``{figure name: what was made}``, written by :mod:`descentlab.figures`."""


def figures_section(out_dir: str | Path) -> str:
    """One card per figure of the folder: what it shows, the command, its time, the PNG, the files.

    Empty when no figure was made in ``out_dir``. The PNG is embedded, so the page stays self-contained;
    a figure whose file went missing says so instead of showing a broken image.
    """
    out_dir = Path(out_dir)
    with RunStore(out_dir, read_only=True) as store:
        made = store.get_meta(FIGURES_META_KEY, {})
    if not made:
        return ""
    cards = [_card(out_dir, entry) for entry in made.values()]
    return f"<h2 class='section'>textbook figures</h2>{''.join(cards)}"


def _card(out_dir: Path, entry: dict) -> str:
    png = out_dir / entry["png"]
    if png.is_file():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        image = f"<img src='data:image/png;base64,{data}' alt='{html.escape(entry['name'])}'>"
    else:
        image = f"<p class='warn'>{html.escape(entry['png'])} is missing: run the command again.</p>"
    name, source = html.escape(entry["name"]), html.escape(entry["source"])
    command, made_at = html.escape(entry["command"]), html.escape(entry["made_at"])
    return (
        f"<section class='card' id='figure-{name}'><h2>{name}<small>{source}</small></h2>"
        f"<p>{html.escape(entry['summary'])}</p>"
        f"<p class='settings'><code>{command}</code> · made in {entry['seconds']:.2f} s on {made_at} · "
        f"<a href='{html.escape(entry['png'])}'>PNG</a> · <a href='{html.escape(entry['svg'])}'>SVG</a></p>"
        f"<div class='figures'>{image}</div></section>"
    )
