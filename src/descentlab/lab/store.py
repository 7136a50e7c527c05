"""The results store: one SQLite database (WAL mode) in the output folder.

Each finished run is written in one transaction (its summary row, its step records and its
instrumentation), so an interrupted comparison keeps every run that finished and a re-run skips them.
The record columns are the fields of :class:`~descentlab.lab.records.StepRecord`; a store made by an
earlier version gains the missing columns when it is opened for writing.

Comparisons are named: each keeps its settings, chosen rates, sweep table and run ids under
``comparison:<name>`` in the ``meta`` table, so one folder can hold many without mixing them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from descentlab.lab.records import JSON_COLUMNS, SCALAR_COLUMNS, InstrumentRecord, RunSummary, StepRecord
from descentlab.lab.runner import RunResult
from descentlab.lab.spec import RunSpec

DATABASE_NAME = "runs.sqlite"
COMPARISON_PREFIX = "comparison:"

_COLUMN_TYPES = {"step": "INTEGER NOT NULL", "loss_evaluations": "INTEGER", "gradient_evaluations": "INTEGER"}

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    problem TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    seed INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    outcome TEXT NOT NULL,
    summary TEXT NOT NULL,
    finished_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS records (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    {", ".join(f"{name} {_COLUMN_TYPES.get(name, 'REAL')}" for name in SCALAR_COLUMNS)},
    {", ".join(f"{name} TEXT" for name in JSON_COLUMNS)},
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS instruments (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_RECORD_COLUMNS = (*SCALAR_COLUMNS, *JSON_COLUMNS)


class StoreError(ValueError):
    """The store cannot be opened or read: the message says which file and what to do."""


class RunStore:
    """The SQLite store of finished runs in ``out_dir``.

    Args:
        out_dir: the results folder (created when writing).
        read_only: open without writing anything (reports of folders one may not write to);
            the folder must then hold a store already.

    ``purpose`` separates stand-alone runs (``"run"``), comparison runs (``"compare"``) and
    learning-rate sweep runs (``"sweep"``), which are kept so that a resumed comparison does not
    repeat its sweep.
    """

    def __init__(self, out_dir: str | Path, *, read_only: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / DATABASE_NAME
        self.read_only = read_only
        try:
            if read_only:
                if not self.path.is_file():
                    raise StoreError(f"{str(self.out_dir)!r} holds no results ({DATABASE_NAME} is missing)")
                self._connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
                self._check_tables()
            else:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                self._connection = sqlite3.connect(self.path, timeout=30)
                self._connection.execute("PRAGMA journal_mode=WAL")
                self._connection.execute("PRAGMA foreign_keys=ON")
                self._connection.executescript(_SCHEMA)
                self._add_missing_columns()
                self._connection.commit()
        except sqlite3.DatabaseError as error:
            raise StoreError(
                f"{self.path} is not a usable descentlab store ({error}); "
                "move it away or choose another --out folder"
            ) from None

    def _check_tables(self) -> None:
        names = {row[0] for row in self._connection.execute("SELECT name FROM sqlite_master")}
        missing = {"runs", "records", "meta"} - names
        if missing:
            raise StoreError(f"{self.path} is not a descentlab store (no table {', '.join(sorted(missing))})")

    def _add_missing_columns(self) -> None:
        present = {row[1] for row in self._connection.execute("PRAGMA table_info(records)")}
        for name in _RECORD_COLUMNS:
            if name not in present:
                kind = "TEXT" if name in JSON_COLUMNS else _COLUMN_TYPES.get(name, "REAL")
                self._connection.execute(f"ALTER TABLE records ADD COLUMN {name} {kind.split()[0]}")

    def close(self) -> None:
        """Close the database connection."""
        self._connection.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def completed_run_ids(self) -> set[str]:
        """Ids of every run stored (finished, whether completed or diverged)."""
        return {row[0] for row in self._connection.execute("SELECT run_id FROM runs")}

    def save(self, result: RunResult, purpose: str = "compare") -> None:
        """Store ``result`` with its records and instrumentation in one transaction."""
        spec = result.spec
        with self._connection:
            self._connection.execute("DELETE FROM runs WHERE run_id = ?", (spec.run_id,))
            self._connection.execute("DELETE FROM records WHERE run_id = ?", (spec.run_id,))
            self._connection.execute("DELETE FROM instruments WHERE run_id = ?", (spec.run_id,))
            self._connection.execute(
                "INSERT INTO runs (run_id, spec, problem, optimizer, seed, purpose, outcome, summary)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec.run_id,
                    spec.canonical_json(),
                    spec.problem,
                    spec.optimizer,
                    spec.seed,
                    purpose,
                    result.outcome,
                    json.dumps(result.summary.to_dict()),
                ),
            )
            self._connection.executemany(
                f"INSERT INTO records (run_id, {', '.join(_RECORD_COLUMNS)})"
                f" VALUES (?, {', '.join('?' for _ in _RECORD_COLUMNS)})",
                [(spec.run_id, *_record_row(record)) for record in result.records],
            )
            self._connection.executemany(
                "INSERT INTO instruments (run_id, step, kind, value) VALUES (?, ?, ?, ?)",
                [(spec.run_id, i.step, i.kind, json.dumps(i.value)) for i in result.instruments],
            )

    def set_meta(self, key: str, value: Any) -> None:
        """Keep a JSON value about the folder (e.g. a comparison's settings)."""
        with self._connection:
            self._connection.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def get_meta(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default``."""
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def comparisons(self) -> dict[str, dict[str, Any]]:
        """Every named comparison of the folder, in the order they were first stored."""
        rows = self._connection.execute(
            "SELECT key, value FROM meta WHERE key LIKE ? ORDER BY rowid", (COMPARISON_PREFIX + "%",)
        ).fetchall()
        return {key.removeprefix(COMPARISON_PREFIX): json.loads(value) for key, value in rows}

    def runs(self, purpose: str | None = "compare") -> list[dict[str, Any]]:
        """Stored runs as dicts (``run_id, spec, problem, optimizer, seed, purpose, outcome, summary``)."""
        query = "SELECT run_id, spec, problem, optimizer, seed, purpose, outcome, summary FROM runs"
        parameters: tuple[Any, ...] = ()
        if purpose is not None:
            query += " WHERE purpose = ?"
            parameters = (purpose,)
        rows = self._connection.execute(query + " ORDER BY problem, optimizer, seed", parameters).fetchall()
        return [
            {
                "run_id": row[0],
                "spec": RunSpec.from_dict(json.loads(row[1])),
                "problem": row[2],
                "optimizer": row[3],
                "seed": row[4],
                "purpose": row[5],
                "outcome": row[6],
                "summary": RunSummary.from_dict(json.loads(row[7])),
            }
            for row in rows
        ]

    def records(self, run_id: str) -> list[StepRecord]:
        """The step records of one run, in step order."""
        rows = self._connection.execute(
            f"SELECT {', '.join(_RECORD_COLUMNS)} FROM records WHERE run_id = ? ORDER BY step", (run_id,)
        ).fetchall()
        scalars = len(SCALAR_COLUMNS)
        return [
            StepRecord(
                **{name: value for name, value in zip(SCALAR_COLUMNS, row[:scalars]) if value is not None},
                **{
                    name: None if value is None else json.loads(value)
                    for name, value in zip(JSON_COLUMNS, row[scalars:])
                },
            )
            for row in rows
        ]

    def instruments(self, run_id: str) -> list[InstrumentRecord]:
        """The instrumentation of one run, in step order."""
        rows = self._connection.execute(
            "SELECT step, kind, value FROM instruments WHERE run_id = ? ORDER BY step, rowid", (run_id,)
        ).fetchall()
        return [InstrumentRecord(step, kind, json.loads(value)) for step, kind, value in rows]


def _record_row(record: StepRecord) -> tuple[Any, ...]:
    scalars = tuple(getattr(record, name) for name in SCALAR_COLUMNS)
    documents = tuple(
        None if getattr(record, name) is None else json.dumps(getattr(record, name)) for name in JSON_COLUMNS
    )
    return scalars + documents
