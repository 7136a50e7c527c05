"""Turn the page model into HTML with the Jinja2 templates shipped in ``templates/`` (package data).

Autoescaping is on: every text of the model is escaped, so a label with ``<`` or ``'`` cannot break
the page.
"""

from __future__ import annotations

from functools import cache

import jinja2

from descentlab.lab.report.model import FigureCard, Page


@cache
def environment() -> jinja2.Environment:
    """The templates' environment (built once; the loader reads the installed package's files)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("descentlab.lab.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render_page_html(page: Page) -> str:
    """The report page as one self-contained HTML document."""
    return environment().get_template("report.html.j2").render(page=page)


def render_figure_cards(cards: list[FigureCard]) -> str:
    """The textbook-figure part of the page alone (empty without cards)."""
    return environment().get_template("figures.html.j2").render(cards=cards).strip()
