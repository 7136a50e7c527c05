"""A store that is damaged, foreign, read-only or on a full disk: one line saying what and what to do.

Every case goes through the real command line (``descentlab.cli.main``, which owns the error printing),
and the file the user had is left byte for byte as it was.
"""

import contextlib
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from descentlab import cli
from descentlab.lab import RunStore, run_comparison
from descentlab.lab.store import DATABASE_NAME, StoreError

COMPARE = ["compare", "--optimizers", "sgd", "--problems", "tiny-bowl", "--no-sweep", "--jobs", "1"]


def make_store(folder: Path, seeds=(0, 1)) -> Path:
    """A real WAL-mode store with one run per seed (closed cleanly, so no -wal file is left)."""
    run_comparison(folder, ["sgd"], ["tiny-bowl"], seeds, lr_grid=None)
    return folder / DATABASE_NAME


def main_error(argv, capsys) -> str:
    """Run the command line; it must fail with one error line on stderr (besides progress lines)."""
    capsys.readouterr()
    code = cli.main([str(arg) for arg in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith(("sweep: ", "compare: "))]
    assert code != 0 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("descentlab: error: "), err
    return lines[0]


def _empty(store: Path) -> None:
    store.write_bytes(b"")


def _truncated(store: Path) -> None:
    make_store(store.parent, seeds=range(6))
    data = store.read_bytes()
    store.write_bytes(data[: len(data) // 2])


def _random_bytes(store: Path) -> None:
    store.write_bytes(random.Random(0).randbytes(3 * 4096))


def _foreign_sqlite(store: Path) -> None:
    connection = sqlite3.connect(store)
    connection.executescript("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ada');")
    connection.close()


def _missing_column(store: Path) -> None:
    make_store(store.parent)
    connection = sqlite3.connect(store)
    connection.execute("ALTER TABLE runs DROP COLUMN summary")
    connection.close()


BAD_STORES = {
    "empty": (_empty, "is empty"),
    "truncated": (_truncated, "truncated"),
    "random-bytes": (_random_bytes, "not an SQLite database"),
    "foreign-sqlite": (_foreign_sqlite, "not a descentlab store"),
    "missing-column": (_missing_column, "lacks column summary"),
}


@pytest.mark.parametrize("case", BAD_STORES)
def test_a_bad_store_is_one_line_and_left_untouched(case, tmp_path, capsys):
    make, reason = BAD_STORES[case]
    store = tmp_path / DATABASE_NAME
    make(store)
    before = sorted(os.listdir(tmp_path)), store.read_bytes()
    for argv in ([*COMPARE, "--seeds", "0", "--out", tmp_path], ["report", tmp_path]):
        line = main_error(argv, capsys)
        assert str(store) in line and reason in line and "move it away" in line, line
        assert (sorted(os.listdir(tmp_path)), store.read_bytes()) == before  # nothing written, nothing added


def test_a_bad_store_fails_cleanly_in_a_real_process(tmp_path):
    (tmp_path / DATABASE_NAME).write_bytes(b"")
    finished = subprocess.run(
        [sys.executable, "-m", "descentlab", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 2 and "Traceback" not in finished.stderr
    assert finished.stderr.startswith("descentlab: error: ") and "is empty" in finished.stderr
    assert (tmp_path / DATABASE_NAME).read_bytes() == b""


def test_an_older_store_without_newer_record_columns_still_reports(tmp_path):
    store = make_store(tmp_path)
    connection = sqlite3.connect(store)
    connection.execute("ALTER TABLE records DROP COLUMN update_norm")
    connection.close()
    with RunStore(tmp_path, read_only=True) as reader:
        run = reader.runs()[0]
        assert all(record.update_norm is None for record in reader.records(run["run_id"]))
        assert [record.loss for record in reader.records(run["run_id"])]


def test_concurrent_first_opens_never_see_a_half_made_store(tmp_path):
    """Creating the store is atomic: no opener finds the 0-byte file another one just made."""
    folders, openers = 30, 4
    barrier = threading.Barrier(openers)
    errors = []

    def open_each():
        for index in range(folders):
            try:
                barrier.wait(timeout=60)
                RunStore(tmp_path / str(index)).close()
            except Exception as error:  # any failure is reported below, and none hangs the rest
                errors.append(repr(error))
                barrier.abort()
                return

    threads = [threading.Thread(target=open_each) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert all(RunStore(tmp_path / str(index), read_only=True).runs() == [] for index in range(folders))


def test_a_new_store_is_written_as_every_descentlab_file(tmp_path, file_events):
    """descentlab.atomic's policy: fsynced, published without clobbering, folder fsynced, umask bits."""
    mask = os.umask(0o002)  # SQLite alone would make 0o644
    try:
        RunStore(tmp_path).close()
    finally:
        os.umask(mask)
    folder = ["fsync folder"] if os.name == "posix" else []
    assert file_events[:3] == ["fsync file", f"link onto {DATABASE_NAME}", *folder]
    assert (tmp_path / DATABASE_NAME).stat().st_mode & 0o777 == 0o664
    assert sorted(path.name for path in tmp_path.iterdir()) == [DATABASE_NAME]


# --- read-only folders ----------------------------------------------------------------------------


@contextlib.contextmanager
def read_only_folder(folder: Path):
    """Make ``folder`` refuse new files, for root too: ``chattr +i`` as root, ``chmod`` otherwise."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)]).returncode:
            pytest.skip(
                "running as root and chattr +i is unavailable here: no way to make a folder read-only"
            )
        undo = ["chattr", "-i", str(folder)]
    else:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    try:
        with pytest.raises(OSError):  # prove the folder really is read-only for this process
            (folder / ".probe").write_text("")
        yield folder
    finally:
        subprocess.run(undo, check=True)


def test_a_read_only_folder_still_reports_elsewhere(tmp_path, capsys):
    folder = tmp_path / "results"
    store = make_store(folder)
    before = sorted(os.listdir(folder)), store.read_bytes()
    with read_only_folder(folder):
        with RunStore(folder, read_only=True) as reader:
            assert len(reader.runs()) == 2
        line = main_error(["report", folder], capsys)
        assert "cannot write the report to" in line and "pass --to FOLDER" in line, line
        assert cli.main(["report", str(folder), "--to", str(tmp_path / "elsewhere")]) == 0
        assert (tmp_path / "elsewhere" / "report.html").is_file()
        assert (sorted(os.listdir(folder)), store.read_bytes()) == before


_LEAVE_WAL = """
import os, sys
from lab.tiny_problems import register_tiny_problems
register_tiny_problems()
from descentlab.lab import RunStore, run_spec
from descentlab.lab.spec import RunSpec
store = RunStore(sys.argv[1])
store.save(run_spec(RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1}, steps=5)))
os._exit(0)  # no close: the run lives only in the -wal file, as after a killed writer
"""


def test_a_read_only_folder_with_a_killed_writers_wal_shows_its_runs(tmp_path):
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(
        [sys.executable, "-c", _LEAVE_WAL, str(tmp_path)], env=environment, timeout=120, check=True
    )
    assert (tmp_path / f"{DATABASE_NAME}-wal").stat().st_size > 0
    with read_only_folder(tmp_path), RunStore(tmp_path, read_only=True) as reader:
        assert len(reader.runs(purpose=None)) == 1


# --- full disk ------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "2m"):
    """A real file system of ``size`` mounted on ``folder`` (tmpfs; needs root)."""
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)]).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root): the store-level test covers a full disk")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path, leave: int) -> Path:
    """Write a file into ``folder`` until the disk is full, then give back ``leave`` bytes."""
    ballast = folder / f"ballast-{uuid.uuid4().hex}"
    with contextlib.suppress(OSError), ballast.open("wb") as file:
        while True:
            file.write(b"\0" * 4096)
            file.flush()
    os.truncate(ballast, max(0, ballast.stat().st_size - leave))
    return ballast


def stored(folder: Path) -> dict:
    with RunStore(folder, read_only=True) as store:
        return {run["run_id"]: (run["summary"], store.records(run["run_id"])) for run in store.runs()}


@pytest.mark.parametrize("leave", [0, 64 * 1024], ids=["full-at-open", "full-while-saving"])
def test_a_full_disk_is_one_line_keeps_the_runs_and_the_next_compare_resumes(leave, tmp_path, capsys):
    with small_disk(tmp_path / "disk") as disk:
        out = disk / "runs"
        assert cli.main([*COMPARE, "--seeds", "0,1", "--out", str(out)]) == 0
        before = stored(out)
        ballast = fill(disk, leave)
        line = main_error([*COMPARE, "--seeds", "0,1,2,3,4,5", "--out", out], capsys)
        assert "disk" in line and "full" in line and "free some space" in line, line
        ballast.unlink()
        kept = stored(out)
        assert all(kept[run_id] == value for run_id, value in before.items())
        assert cli.main([*COMPARE, "--seeds", "0,1,2,3,4,5", "--out", str(out)]) == 0
        resumed = capsys.readouterr().err
        assert f"{6 - len(kept)} runs trained, {len(kept)} already stored" in resumed, resumed
        after = stored(out)
        assert len(after) == 6 and all(after[run_id] == value for run_id, value in kept.items())


def test_a_full_database_raises_a_store_error_and_keeps_what_was_stored(tmp_path):
    """The same at the SQLite layer, on any machine: the database may not grow past its pages."""
    make_store(tmp_path)
    before = stored(tmp_path)
    with RunStore(tmp_path) as store:
        pages = store._connection.execute("PRAGMA page_count").fetchone()[0]
        store._connection.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreError, match=r"disk is full.*free some space"):
            save_until_refused(store)
    assert stored(tmp_path) == before


def save_until_refused(store: RunStore) -> None:
    """Save runs of new seeds into the open ``store`` until it refuses."""
    from descentlab.lab import run_spec
    from descentlab.lab.spec import RunSpec

    for seed in range(2, 50):
        store.save(run_spec(RunSpec.create("tiny-bowl", "sgd", {"lr": 0.1}, steps=40, seed=seed)))
