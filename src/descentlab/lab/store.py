"""The results store: one SQLite database (WAL mode) in the output folder.

Each finished run is written in one transaction (its summary row, its step records and its
instrumentation), so an interrupted comparison keeps every run that finished and a re-run skips them.
The record columns are the fields of :class:`~descentlab.lab.records.StepRecord`; a store made by an
earlier version gains the missing columns when it is opened for writing, and reads as ``None`` in them
when it is only read.

Comparisons are named: each keeps its settings, chosen rates, sweep table and run ids under
``comparison:<name>`` in the ``meta`` table, so one folder can hold many without mixing them.

A file that is not a store is never written: an empty, truncated or foreign file, or a store lacking a
column of its core tables, is refused with a :class:`StoreError` naming the file and what to do, before
anything touches it. A new store is built under a temporary name and linked into place, so no process
ever sees a half-made one. Reading opens the file read-only; in a folder this process may not write,
a WAL-mode store with no ``-wal`` file (no unfinished writes) is opened immutable, because SQLite
cannot create its ``-shm`` index there.

Claims let several processes fill one store without training a run twice: a process claims a run (in a
write transaction, so two cannot both see it free) before training it, and the claim goes when the run
is saved or the store closed. A claim is live while its owner refreshes it (every
``CLAIM_LEASE_SECONDS / 4`` s, from a thread) and, on the same host, while the owner's process exists:
the claim of a killed process expires at once on its host, and after ``CLAIM_LEASE_SECONDS`` elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from descentlab.atomic import atomic_path
from descentlab.lab.records import JSON_COLUMNS, SCALAR_COLUMNS, InstrumentRecord, RunSummary, StepRecord
from descentlab.lab.runner import RunResult
from descentlab.lab.spec import RunSpec

DATABASE_NAME = "runs.sqlite"
COMPARISON_PREFIX = "comparison:"

CLAIM_LEASE_SECONDS = 60.0
"""A claim not refreshed for this long has expired (its owner hung, or was killed on another host)."""

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
CREATE TABLE IF NOT EXISTS claims (
    run_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    claimed_at REAL NOT NULL,
    heartbeat REAL NOT NULL
);
"""

_RECORD_COLUMNS = (*SCALAR_COLUMNS, *JSON_COLUMNS)

# Columns without which the stored runs cannot be read back; the record columns past (run_id, step)
# may be missing in a store of an earlier version.
_CORE_COLUMNS = {
    "runs": ("run_id", "spec", "problem", "optimizer", "seed", "purpose", "outcome", "summary"),
    "records": ("run_id", "step"),
    "instruments": ("run_id", "step", "kind", "value"),
    "meta": ("key", "value"),
}

_SQLITE_HEADER = b"SQLite format 3\x00"

# What SQLite says -> what the user should do about it (the rest: the file is not a usable store)
_KEPT = "finished runs are kept and a re-run resumes"
_ADVICE = (
    ("disk is full", f"the disk is full; free some space ({_KEPT})"),
    ("disk I/O error", f"the disk failed or is full; free some space or check the disk ({_KEPT})"),
    ("locked", "another process holds it locked; wait for that process or retry"),
    ("readonly", "this process may not write it; check its permissions or choose another --out folder"),
    ("unable to open", "it cannot be opened; check the permissions of the file and its folder"),
)

_HOST = socket.gethostname()

_Method = TypeVar("_Method", bound=Callable[..., Any])


class StoreError(ValueError):
    """The store cannot be opened or read: the message says which file and what to do."""


def _guarded(method: _Method) -> _Method:
    """Turn an SQLite error inside ``method`` into one :class:`StoreError` line with the fix."""

    @functools.wraps(method)
    def guarded(self: RunStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as error:
            raise StoreError(self._explain(error)) from None

    return guarded  # type: ignore[return-value]


class RunStore:
    """The SQLite store of finished runs in ``out_dir``.

    Args:
        out_dir: the results folder (created when writing).
        read_only: open with a connection that refuses writes (reports of folders one may not
            write to); the folder must then hold a store already. SQLite may still fold the finished
            transactions a killed writer left in the ``-wal`` file into the database, as any opener does.

    ``purpose`` separates stand-alone runs (``"run"``), comparison runs (``"compare"``) and
    learning-rate sweep runs (``"sweep"``), which are kept so that a resumed comparison does not
    repeat its sweep.

    Raises:
        StoreError: the file is not a usable store, or SQLite failed (disk full, locked, ...).
    """

    @_guarded
    def __init__(self, out_dir: str | Path, *, read_only: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / DATABASE_NAME
        self.read_only = read_only
        self.owner = secrets.token_hex(8)
        self._heartbeat: _Heartbeat | None = None
        self._connection = self._open_reader() if read_only else self._open_writer()
        try:
            self._columns = self._check_schema()
            if not read_only:
                self._create_missing()
        except BaseException:
            self._connection.close()
            raise

    def _explain(self, error: sqlite3.Error) -> str:
        text = str(error)
        advice = next((advice for key, advice in _ADVICE if key in text), None)
        if advice is None:
            return self._refusal(f"is not a usable descentlab store ({text})")
        return f"{self.path}: {text}: {advice}"

    def _refusal(self, problem: str) -> str:
        elsewhere = "report another folder" if self.read_only else "choose another --out folder"
        return f"{self.path} {problem}; it is left as it is: move it away or {elsewhere}"

    def _open_reader(self) -> sqlite3.Connection:
        """A connection that cannot write, leaving the folder as it was whenever SQLite allows."""
        if not self.path.is_file():
            raise StoreError(f"{str(self.out_dir)!r} holds no results ({DATABASE_NAME} is missing)")
        self._check_file()
        uri = self.path.resolve().as_uri()
        # In order: a connection told not to write, whose -wal and -shm files SQLite removes when the last
        # connection closes (mode=ro leaves them behind); mode=ro, for a folder refusing new files where
        # they exist; immutable where they cannot be made and no -wal holds unfinished writes to read.
        attempts = [f"{uri}?mode=rw", f"{uri}?mode=ro"]
        if not _wal_path(self.path).exists():
            attempts.append(f"{uri}?immutable=1")
        for attempt in attempts[:-1]:
            try:
                return _connect(attempt)
            except sqlite3.OperationalError as error:
                if "unable to open" not in str(error):
                    raise
        return _connect(attempts[-1])

    def _open_writer(self) -> sqlite3.Connection:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            _create_store(self.path)
        self._check_file()
        connection = sqlite3.connect(self.path, timeout=30)
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    def _check_file(self) -> None:
        """Refuse a file SQLite would take for a new database (empty) or read in part (truncated)."""
        problem = _file_problem(self.path)
        if problem is not None:
            raise StoreError(self._refusal(problem))

    def _check_schema(self) -> tuple[str, ...]:
        """Refuse a foreign database or one lacking a core column; return the record columns present."""
        tables = {
            name: {row[1] for row in self._connection.execute(f"PRAGMA table_info({name})")}
            for (name,) in self._connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        required = _CORE_COLUMNS if self.read_only else {"runs": (), "meta": ()}
        missing = sorted(set(required) - set(tables))
        if missing and (tables or self.read_only):
            holds = f"tables {', '.join(sorted(tables))}" if tables else "no tables"
            raise StoreError(self._refusal(f"is not a descentlab store (it holds {holds}, no {missing[0]})"))
        for table, columns in _CORE_COLUMNS.items():
            lacking = [column for column in columns if table in tables and column not in tables[table]]
            if lacking:
                raise StoreError(self._refusal(f"lacks column {lacking[0]} of table {table}"))
        present = tables.get("records", set())
        return tuple(name for name in _RECORD_COLUMNS if name in present or not self.read_only)

    def _create_missing(self) -> None:
        """Create the tables and record columns this version has and the store lacks."""
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.executescript(_SCHEMA)
        present = {row[1] for row in self._connection.execute("PRAGMA table_info(records)")}
        for name in _RECORD_COLUMNS:
            if name not in present:
                kind = "TEXT" if name in JSON_COLUMNS else _COLUMN_TYPES.get(name, "REAL")
                self._connection.execute(f"ALTER TABLE records ADD COLUMN {name} {kind.split()[0]}")
        self._connection.commit()

    def close(self) -> None:
        """Give up this store's claims and close the database connection."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            # best effort: a claim left behind (disk full, say) expires with this process
            with contextlib.suppress(sqlite3.Error), self._connection:
                self._connection.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
        self._connection.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @_guarded
    def completed_run_ids(self) -> set[str]:
        """Ids of every run stored (finished, whether completed or diverged)."""
        return {row[0] for row in self._connection.execute("SELECT run_id FROM runs")}

    @_guarded
    def save(self, result: RunResult, purpose: str = "compare") -> None:
        """Store ``result`` with its records and instrumentation in one transaction."""
        spec = result.spec
        with self._connection:
            self._connection.execute("DELETE FROM runs WHERE run_id = ?", (spec.run_id,))
            self._connection.execute("DELETE FROM records WHERE run_id = ?", (spec.run_id,))
            self._connection.execute("DELETE FROM instruments WHERE run_id = ?", (spec.run_id,))
            self._connection.execute("DELETE FROM claims WHERE run_id = ?", (spec.run_id,))
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

    @_guarded
    def claim(self, run_ids: Iterable[str]) -> str | None:
        """Claim the first of ``run_ids`` neither stored nor claimed live by another owner.

        Returns:
            The run id now claimed by this store, or ``None`` when every one is stored or taken.
        """
        now = time.time()
        with self._write_transaction():
            unavailable = self.completed_run_ids() | {
                run_id
                for run_id, owner, host, pid, heartbeat in self._connection.execute(
                    "SELECT run_id, owner, host, pid, heartbeat FROM claims"
                )
                if owner != self.owner and _claim_is_live(host, pid, heartbeat, now)
            }
            run_id = next((run_id for run_id in run_ids if run_id not in unavailable), None)
            if run_id is not None:
                self._connection.execute(
                    "INSERT OR REPLACE INTO claims (run_id, owner, host, pid, claimed_at, heartbeat)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, self.owner, _HOST, os.getpid(), now, now),
                )
        if run_id is not None and self._heartbeat is None:
            self._heartbeat = _Heartbeat(self.path, self.owner)
        return run_id

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[None]:
        """A transaction holding the write lock from its first read: what it reads stays true."""
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._connection.rollback()
            raise
        self._connection.commit()

    @_guarded
    def set_meta(self, key: str, value: Any) -> None:
        """Keep a JSON value about the folder (e.g. a comparison's settings)."""
        with self._connection:
            self._connection.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    @_guarded
    def get_meta(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default``."""
        row = self._connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    @_guarded
    def comparisons(self) -> dict[str, dict[str, Any]]:
        """Every named comparison of the folder, in the order they were first stored."""
        rows = self._connection.execute(
            "SELECT key, value FROM meta WHERE key LIKE ? ORDER BY rowid", (COMPARISON_PREFIX + "%",)
        ).fetchall()
        return {key.removeprefix(COMPARISON_PREFIX): json.loads(value) for key, value in rows}

    @_guarded
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

    @_guarded
    def records(self, run_id: str) -> list[StepRecord]:
        """The step records of one run, in step order (``None`` in columns an older store lacks)."""
        rows = self._connection.execute(
            f"SELECT {', '.join(self._columns)} FROM records WHERE run_id = ? ORDER BY step", (run_id,)
        ).fetchall()
        return [_record(dict(zip(self._columns, row))) for row in rows]

    @_guarded
    def instruments(self, run_id: str) -> list[InstrumentRecord]:
        """The instrumentation of one run, in step order."""
        rows = self._connection.execute(
            "SELECT step, kind, value FROM instruments WHERE run_id = ? ORDER BY step, rowid", (run_id,)
        ).fetchall()
        return [InstrumentRecord(step, kind, json.loads(value)) for step, kind, value in rows]


def _record(values: dict[str, Any]) -> StepRecord:
    scalars = {name: values[name] for name in SCALAR_COLUMNS if values.get(name) is not None}
    documents = {name: json.loads(values[name]) for name in JSON_COLUMNS if values.get(name) is not None}
    return StepRecord(**scalars, **documents)


def _record_row(record: StepRecord) -> tuple[Any, ...]:
    scalars = tuple(getattr(record, name) for name in SCALAR_COLUMNS)
    documents = tuple(
        None if getattr(record, name) is None else json.dumps(getattr(record, name)) for name in JSON_COLUMNS
    )
    return scalars + documents


def _connect(uri: str) -> sqlite3.Connection:
    """A reading connection to ``uri``, which refuses any write."""
    connection = sqlite3.connect(uri, uri=True)
    try:
        connection.execute("PRAGMA query_only = ON")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()  # SQLite opens lazily
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _wal_path(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


def _create_store(path: Path) -> None:
    """Build an empty store under a temporary name, then publish it (unless someone else did first)."""
    # Never os.replace: a concurrent first open may have made the store and written to it already.
    with contextlib.suppress(FileExistsError), atomic_path(path, replace=False) as temporary:
        try:
            connection = sqlite3.connect(temporary)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(_SCHEMA)
            finally:
                connection.close()
        finally:
            for sidecar in (_wal_path(temporary), temporary.with_name(temporary.name + "-shm")):
                sidecar.unlink(missing_ok=True)


def _unfinished_writes(path: Path) -> bool:
    """Whether the store at ``path`` has a non-empty ``-wal`` file (it may vanish as we look)."""
    try:
        return _wal_path(path).stat().st_size > 0
    except FileNotFoundError:
        return False


def _file_problem(path: Path) -> str | None:
    """Why ``path`` is no SQLite database SQLite could read whole, or ``None``."""
    size = path.stat().st_size
    with path.open("rb") as file:
        header = file.read(100)
    unwritten = _unfinished_writes(path)
    if size == 0 and not unwritten:
        return "is empty (0 bytes)"
    if not header.startswith(_SQLITE_HEADER):
        return "is not an SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # the page count in the header is valid when its change counter matches (SQLite file format 1.3.8);
    # with an unfinished -wal file the main file may lag behind the header until the next checkpoint
    counted = len(header) == 100 and header[92:96] == header[24:28]
    if len(header) < 100 or (counted and not unwritten and size < pages * page_size):
        return f"is truncated ({size} bytes, {pages * page_size} expected)"
    return None


def _claim_is_live(host: str, pid: int, heartbeat: float, now: float) -> bool:
    """A claim is live while refreshed and, on this host, while its owner process exists."""
    if now - heartbeat > CLAIM_LEASE_SECONDS:
        return False
    return host != _HOST or _process_exists(pid)


def _process_exists(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end the process on Windows: trust the lease there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


_REFRESH = "UPDATE claims SET heartbeat = ? WHERE owner = ?"


class _Heartbeat:
    """Refreshes the claims of ``owner`` from a thread with its own connection, while runs train."""

    def __init__(self, path: Path, owner: str) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(path, owner), daemon=True)
        self._thread.start()

    def _beat(self, path: Path, owner: str) -> None:
        connection = sqlite3.connect(path, timeout=CLAIM_LEASE_SECONDS / 4)
        try:
            while not self._stopped.wait(CLAIM_LEASE_SECONDS / 4):
                # a missed beat only risks a run trained twice after the lease, never a lost run
                with contextlib.suppress(sqlite3.Error), connection:
                    connection.execute(
                        "UPDATE claims SET heartbeat = ? WHERE owner = ?", (time.time(), owner)
                    )
        finally:
            connection.close()

    def stop(self) -> None:
        """End the thread (at once: it is waiting on the event)."""
        self._stopped.set()
        self._thread.join()
