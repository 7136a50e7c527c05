"""The report page as data: one tree of dataclasses, built once from the store, rendered by templates.

:func:`descentlab.lab.report.page.build_page` fills a :class:`Page`; the Jinja2 templates in
``templates/`` turn it into HTML (escaping every text). Nothing here holds HTML: a table is rows of
:class:`Cell` values, a figure is an :class:`Image` with its alt text.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Cell:
    """One table cell.

    Attributes:
        text: the value.
        note: a muted remark after the value (``(1 seed)``, ``[low, high]``).
        warning: a red remark after the value, explained by ``warning_title`` (its tooltip).
        bad: draw the value itself in red (diverged runs).
        swatch: a colour square before the value (the configuration's colour in the plots).
        label: a configuration-name cell, which may wrap.
        colspan, rowspan: for header cells spanning columns or rows.
    """

    text: str = ""
    note: str = ""
    warning: str = ""
    warning_title: str = ""
    bad: bool = False
    swatch: str | None = None
    label: bool = False
    colspan: int = 1
    rowspan: int = 1


@dataclass
class Row:
    """A table row; ``mark`` is ``"winner"``, ``"tied"`` or empty."""

    cells: list[Cell]
    mark: str = ""


@dataclass
class Table:
    """A table: header rows (of header cells) and body rows; ``css_class`` names it for the tests."""

    head: list[list[Cell]]
    rows: list[Row]
    css_class: str = ""


@dataclass
class Image:
    """A figure as a PNG data URI, with the alt text that says what it shows."""

    uri: str
    alt: str


@dataclass
class Analysis:
    """The library's analysis tools on one configuration's end point (one click away on the page).

    Attributes:
        label: the configuration analysed.
        facts: one line per result (top Hessian eigenvalues, LR range test suggestions, cost).
        figures: landscape with the trajectory, Hessian spectral density, LR range test curve.
        skipped: why no analysis was made (too many parameters, every seed diverged, ...), else empty.
    """

    label: str
    facts: list[str] = field(default_factory=list)
    figures: list[Image] = field(default_factory=list)
    skipped: str = ""


@dataclass
class Why:
    """Why a configuration did what it did: step sizes over steps, and the analysis of the best one."""

    figures: list[Image]
    rule: str
    analyses: list[Analysis] = field(default_factory=list)


@dataclass
class ProblemCard:
    """One problem of one part: verdict, warnings, figures, the configuration table, the why."""

    anchor: str
    name: str
    subtitle: str
    verdict: str
    warnings: list[str]
    figures: list[Image]
    table: Table
    why: Why | None = None


@dataclass
class ProfileCard:
    """Time to target and performance profiles of a group of problems."""

    anchor: str
    title: str
    sentence: str
    skipped: str
    figure: Image | None
    tables: list[Table]


@dataclass
class FigureCard:
    """A textbook figure made in the folder by ``descentlab figure NAME``.

    ``image`` is ``None`` when its PNG went missing (the card then says so).
    """

    name: str
    source: str
    summary: str
    command: str
    seconds: float
    made_at: str
    png: str
    svg: str
    image: Image | None


@dataclass
class Part:
    """One comparison (or the stand-alone runs): its settings line, problem cards and profile cards."""

    title: str
    settings: str
    cards: list[ProblemCard]
    profiles: list[ProfileCard] = field(default_factory=list)


@dataclass
class SummaryBlock:
    """One entry of the summary card: a title, its headline verdict and one sentence per problem."""

    title: str
    verdict: str
    sentences: list[str] = field(default_factory=list)


@dataclass
class Page:
    """The whole report page."""

    subtitle: str
    summary: list[SummaryBlock]
    parts: list[Part]
    figures: list[FigureCard]
    notes: list[str]
    footer: str
