"""The results store: one SQLite database (WAL mode) in the output folder.

Each finished run is written in one transaction (its summary row and all its step records), so an
interrupted comparison keeps every run that finished and a re-run skips them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from descentlab.lab.runner import RunResult
from descentlab.lab.spec import RunSpec

DATABASE_NAME = "runs.sqlite"

_SCHEMA = """
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
    step INTEGER NOT NULL,
    loss REAL, lr REAL, grad_norm REAL, update_norm REAL,
    seconds REAL, optimizer_seconds REAL, x REAL, y REAL,
    metrics TEXT,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_RECORD_COLUMNS = ("step", "loss", "lr", "grad_norm", "update_norm", "seconds", "optimizer_seconds", "x", "y")


class RunStore:
    """The SQLite store of finished runs in ``out_dir`` (created if missing).

    ``purpose`` separates the runs a report shows (``"compare"``) from learning-rate sweep runs
    (``"sweep"``), which are kept so that a resumed comparison does not repeat its sweep.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / DATABASE_NAME
        self._connection = sqlite3.connect(self.path, timeout=30)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA foreign_keys=ON")
        self._connection.executescript(_SCHEMA)
        self._connection.commit()

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
        """Store ``result`` and its records in one transaction (replacing an earlier copy)."""
        spec = result.spec
        with self._connection:
            self._connection.execute("DELETE FROM runs WHERE run_id = ?", (spec.run_id,))
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
                    json.dumps(result.summary),
                ),
            )
            self._connection.executemany(
                f"INSERT INTO records (run_id, {', '.join(_RECORD_COLUMNS)}, metrics)"
                f" VALUES (?, {', '.join('?' for _ in _RECORD_COLUMNS)}, ?)",
                [
                    (
                        spec.run_id,
                        *(record[column] for column in _RECORD_COLUMNS),
                        None if record["metrics"] is None else json.dumps(record["metrics"]),
                    )
                    for record in result.records
                ],
            )

    def set_meta(self, key: str, value: Any) -> None:
        """Keep a JSON value about the comparison (e.g. the chosen learning rates)."""
        with self._connection:
            self._connection.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def get_meta(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default``."""
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def runs(self, purpose: str | None = "compare") -> list[dict[str, Any]]:
        """Stored runs as dicts (``run_id, spec, problem, optimizer, seed, outcome, summary``)."""
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
                "summary": json.loads(row[7]),
            }
            for row in rows
        ]

    def records(self, run_id: str) -> list[dict[str, Any]]:
        """The step records of one run, in step order."""
        rows = self._connection.execute(
            f"SELECT {', '.join(_RECORD_COLUMNS)}, metrics FROM records WHERE run_id = ? ORDER BY step",
            (run_id,),
        ).fetchall()
        return [
            {
                **dict(zip(_RECORD_COLUMNS, row[:-1])),
                "metrics": None if row[-1] is None else json.loads(row[-1]),
            }
            for row in rows
        ]
