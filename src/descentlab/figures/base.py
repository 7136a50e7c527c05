"""What a textbook figure is, and how one is made: declared runs, trained through the lab, then drawn.

A :class:`FigureDefinition` names the lab runs it needs (``{panel label: RunSpec}``) and a draw function
that turns their stored records into a matplotlib ``Figure``; a figure whose runs a lab procedure picks
as it goes (the trials of a tuning study) gives that procedure instead. :func:`make_figure` trains only
the runs the folder's store lacks (the store skips what is done, as for ``descentlab compare``), reads every
run back from the store, draws, writes ``figures/NAME.png`` and ``figures/NAME.svg``, and keeps what
it made under the ``figures`` key of the store's meta table, where the report finds it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from descentlab.atomic import save_figure
from descentlab.lab.records import InstrumentRecord, RunSummary, StepRecord
from descentlab.lab.report.figures import FIGURES_META_KEY
from descentlab.lab.runner import run_spec
from descentlab.lab.spec import RunSpec
from descentlab.lab.store import RunStore

FIGURES_FOLDER = "figures"
"""Sub-folder of the results folder that receives the PNG and SVG files."""

PURPOSE = "figure"
"""Store purpose of a figure's runs: the report's comparison and stand-alone sections leave them out."""

PNG_DPI = 130


@dataclass
class StoredRun:
    """One run of a figure as the store returns it."""

    spec: RunSpec
    outcome: str
    summary: RunSummary
    records: list[StepRecord]
    instruments: list[InstrumentRecord]

    def points(self) -> list[tuple[float, float]]:
        """The recorded iterates ``(x, y)`` of a two-parameter run, start first."""
        return [(r.x, r.y) for r in self.records if r.x is not None and r.y is not None]

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """Steps and values of a step-record field (``"lr"``, ``"loss"``, ...) where it was recorded."""
        pairs = [(r.step, getattr(r, key)) for r in self.records if getattr(r, key) is not None]
        return [step for step, _ in pairs], [value for _, value in pairs]


Runs = dict[str, StoredRun]


@dataclass(frozen=True)
class FigureDefinition:
    """One textbook figure.

    Attributes:
        name: the command-line name (``descentlab figure NAME``).
        summary: one line for ``descentlab figure --list``.
        source: the textbook figure it follows.
        runs: the lab runs to train, ``{panel label: spec}``, in drawing order; ``None`` when
            ``train`` picks them.
        draw: the figure from the stored runs (same labels).
        train: for a figure whose runs a lab procedure picks while it trains them (a tuning study's
            trials): trains them into the results folder, skipping stored ones, and returns
            ``({label: spec}, how many it trained)``.
    """

    name: str
    summary: str
    source: str
    runs: Callable[[], dict[str, RunSpec]] | None
    draw: Callable[[Runs], Figure]
    train: Callable[[Path], tuple[dict[str, RunSpec], int]] | None = None


@dataclass
class FigureResult:
    """What :func:`make_figure` made: files, runs trained and skipped, seconds, and the figure itself."""

    name: str
    png: Path
    svg: Path
    trained: int
    skipped: int
    seconds: float
    figure: Figure


def train_missing(store: RunStore, specs: list[RunSpec]) -> int:
    """Train and store every spec the store does not hold yet; returns how many were trained."""
    done = store.completed_run_ids()
    missing = list({spec.run_id: spec for spec in specs if spec.run_id not in done}.values())
    for spec in missing:
        store.save(run_spec(spec), purpose=PURPOSE)
    return len(missing)


def train_figure_runs(definition: FigureDefinition, out_dir: Path) -> tuple[dict[str, RunSpec], int]:
    """The figure's runs, trained into ``out_dir`` where missing, and how many were trained now."""
    if definition.train is not None:
        return definition.train(out_dir)
    specs = definition.runs()
    with RunStore(out_dir) as store:
        return specs, train_missing(store, list(specs.values()))


def load_runs(store: RunStore, specs: dict[str, RunSpec]) -> Runs:
    """The stored runs of ``specs``, keyed by the same labels."""
    stored = {run["run_id"]: run for run in store.runs(purpose=None)}
    runs = {}
    for label, spec in specs.items():
        run = stored[spec.run_id]
        runs[label] = StoredRun(
            spec, run["outcome"], run["summary"], store.records(spec.run_id), store.instruments(spec.run_id)
        )
    return runs


def make_figure(definition: FigureDefinition, out_dir: str | Path, *, dpi: int = PNG_DPI) -> FigureResult:
    """Train what ``definition`` needs into ``out_dir``'s store, draw it and write its PNG and SVG.

    ``dpi`` sets the PNG's resolution (the SVG has none): the default suits a report; 60 gives a PNG of
    about a quarter the pixels and bytes, small enough for a README.
    """
    if not isinstance(dpi, int) or isinstance(dpi, bool) or not 20 <= dpi <= 600:
        raise ValueError(f"dpi must be a whole number from 20 to 600, not {dpi!r}")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    specs, trained = train_figure_runs(definition, out_dir)
    with RunStore(out_dir) as store:
        runs = load_runs(store, specs)
        figure = definition.draw(runs)
        stem = out_dir / FIGURES_FOLDER / definition.name
        png = save_figure(
            figure,
            stem.with_suffix(".png"),
            dpi=dpi,
            parents=True,
            facecolor="white",
            pil_kwargs={"optimize": True},
        )
        svg = save_figure(figure, stem.with_suffix(".svg"), parents=True, facecolor="white")
        seconds = time.perf_counter() - started
        made = dict(store.get_meta(FIGURES_META_KEY, {}))
        made[definition.name] = _description(definition, specs, png, svg, seconds, out_dir)
        store.set_meta(FIGURES_META_KEY, made)
    return FigureResult(definition.name, png, svg, trained, len(specs) - trained, seconds, figure)


def _description(
    definition: FigureDefinition,
    specs: dict[str, RunSpec],
    png: Path,
    svg: Path,
    seconds: float,
    out_dir: Path,
) -> dict[str, Any]:
    return {
        "name": definition.name,
        "summary": definition.summary,
        "source": definition.source,
        "command": f"descentlab figure {definition.name} --out {out_dir}",
        "run_ids": {label: spec.run_id for label, spec in specs.items()},
        "png": str(png.relative_to(out_dir)),
        "svg": str(svg.relative_to(out_dir)),
        "seconds": round(seconds, 3),
        "made_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
