"""Load what a report shows from the store: sections (each comparison, then stand-alone runs), per
problem, per configuration. Runs are grouped by their full configuration (everything but the seed);
only seeds are replicates, so unlike runs are never merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from descentlab.lab.labels import configuration_label
from descentlab.lab.report.colors import CANONICAL_ORDER
from descentlab.lab.report.figures import FIGURES_META_KEY
from descentlab.lab.store import RunStore
from descentlab.problems.base import Problem
from descentlab.problems.registry import get_problem


@dataclass
class ConfigurationRuns:
    """The runs of one configuration (one per seed) and how its learning rate was chosen.

    Attributes:
        configuration_id: the id shared by its runs (:attr:`RunSpec.configuration_id`).
        label: its readable name.
        optimizer: registry name of its optimizer.
        runs: stored runs (dicts of :meth:`RunStore.runs` plus ``records``), seed order.
        swept: whether ``lr`` came from a sweep; ``edge`` is ``"low"``/``"high"`` when the choice sat at
            an edge of the bounded grid; ``sweep`` maps each tried rate to its validation metric.
        tuning: for a configuration chosen by ``descentlab tune``, its study's facts (trials, pruned,
            budget, cost, steps trained, space); ``None`` otherwise.
    """

    configuration_id: str
    label: str
    optimizer: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    swept: bool = False
    edge: str | None = None
    sweep: dict[str, float | None] = field(default_factory=dict)
    tuning: dict[str, Any] | None = None

    @property
    def lr(self) -> float | None:
        """The learning rate the runs used (``None``: the optimizer's default)."""
        return self.runs[0]["spec"].hyperparameter_dict.get("lr") if self.runs else None


@dataclass
class ProblemRuns:
    """The configurations run on one problem (``problem`` is ``None`` when it is not registered)."""

    name: str
    problem: Problem | None
    configurations: list[ConfigurationRuns] = field(default_factory=list)

    @property
    def runs(self) -> dict[str, list[dict[str, Any]]]:
        """``{label: runs}`` in display order."""
        return {c.label: c.runs for c in self.configurations}


@dataclass
class Section:
    """One comparison (``kind="comparison"``, with its stored settings) or the stand-alone runs."""

    title: str
    kind: str
    settings: dict[str, Any]
    problems: list[ProblemRuns]


@dataclass
class ReportData:
    """Everything the report renders: the sections, and the textbook figures made in the folder
    (``{name: what was made}``, from the store's meta table; see :mod:`descentlab.figures`)."""

    sections: list[Section]
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)


def _problem(name: str) -> Problem | None:
    try:
        return get_problem(name)
    except ValueError:
        return None  # a problem registered by another process: tables only


def _order_key(configuration: ConfigurationRuns) -> tuple[int, str]:
    rank = {name: index for index, name in enumerate(CANONICAL_ORDER)}
    return (rank.get(configuration.optimizer, len(rank)), configuration.label)


def _group(
    runs: list[dict[str, Any]], described: dict[str, dict[str, Any]], problem_order: list[str]
) -> list[ProblemRuns]:
    """Group ``runs`` by problem and configuration; ``described`` adds sweep facts by configuration id."""
    problems: dict[str, ProblemRuns] = {}
    configurations: dict[tuple[str, str], ConfigurationRuns] = {}
    for run in runs:
        spec = run["spec"]
        key = (run["problem"], spec.configuration_id)
        if run["problem"] not in problems:
            problems[run["problem"]] = ProblemRuns(run["problem"], _problem(run["problem"]))
        if key not in configurations:
            facts = described.get(spec.configuration_id, {})
            configurations[key] = ConfigurationRuns(
                spec.configuration_id,
                configuration_label(spec),
                spec.optimizer,
                swept=bool(facts.get("swept")),
                edge=facts.get("edge"),
                sweep=facts.get("sweep") or {},
                tuning=facts.get("tuning"),
            )
            problems[run["problem"]].configurations.append(configurations[key])
        configurations[key].runs.append(run)
    for problem_runs in problems.values():
        problem_runs.configurations.sort(key=_order_key)
        _disambiguate(problem_runs.configurations)
        for configuration in problem_runs.configurations:
            configuration.runs.sort(key=lambda run: run["seed"])
    order = {name: index for index, name in enumerate(problem_order)}
    return sorted(problems.values(), key=lambda p: (order.get(p.name, len(order)), p.name))


def _disambiguate(configurations: list[ConfigurationRuns]) -> None:
    """Configurations that differ only where a label does not look (data, instrumentation) get ids."""
    counts: dict[str, int] = {}
    for configuration in configurations:
        counts[configuration.label] = counts.get(configuration.label, 0) + 1
    for configuration in configurations:
        if counts[configuration.label] > 1:
            configuration.label += f" [{configuration.configuration_id[:6]}]"


def load_report_data(out_dir: str | Path) -> ReportData:
    """Read every comparison of ``out_dir`` and its stand-alone runs (never sweep or tuning trials).

    Reads the store without writing to it, so a folder one may only read still reports.
    """
    with RunStore(out_dir, read_only=True) as store:
        everything = {
            run["run_id"]: run for run in store.runs(purpose=None) if run["purpose"] not in ("sweep", "tune")
        }
        for run in everything.values():
            run["records"] = store.records(run["run_id"])
        comparisons = store.comparisons()
        figures = store.get_meta(FIGURES_META_KEY, {})
    sections, compared = [], set()
    for name, meta in comparisons.items():
        compared.update(meta.get("run_ids", []))
        described = {c["configuration_id"]: c for c in meta.get("configurations", [])}
        wanted = [everything[run_id] for run_id in meta.get("run_ids", []) if run_id in everything]
        if wanted:
            problems = _group(wanted, described, meta.get("problems", []))
            sections.append(Section(f"comparison {name}", "comparison", meta, problems))
    standalone = [
        run for run in everything.values() if run["purpose"] == "run" and run["run_id"] not in compared
    ]
    if standalone:
        sections.append(Section("stand-alone runs", "runs", {}, _group(standalone, {}, [])))
    return ReportData(sections, figures)
