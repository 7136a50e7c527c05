"""descentlab.atomic: whole files or nothing, fsync before rename, permissions from the umask."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from descentlab.atomic import atomic_open, atomic_path, save_figure, write_bytes, write_text


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    original = os.umask(0o022)
    os.umask(original)
    yield lambda mask: os.umask(mask)
    os.umask(original)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_permissions_follow_the_umask_for_every_writer(tmp_path, umask, mask, expected):
    umask(mask)
    (tmp_path / "old.txt").write_text("old")
    os.chmod(tmp_path / "old.txt", 0o600)  # the replaced file's own bits must not leak into the new one
    paths = [write_text(tmp_path / "old.txt", "x"), write_bytes(tmp_path / "b.bin", b"x")]
    with atomic_path(tmp_path / "p.txt") as temporary:
        temporary.write_text("x")
    with atomic_open(tmp_path / "o.bin") as file:
        file.write(b"x")
    with atomic_path(tmp_path / "new.db", replace=False) as temporary:
        temporary.write_bytes(b"x")
    paths += [tmp_path / name for name in ("p.txt", "o.bin", "new.db")]
    paths.append(save_figure(Figure(), tmp_path / "f.png"))
    assert [mode_of(path) for path in paths] == [expected] * 6


def test_content_is_replaced_whole(tmp_path):
    target = tmp_path / "data.txt"
    write_text(target, "a long first version\n" * 100)
    write_text(target, "short\r\nno newline translation")
    assert target.read_bytes() == b"short\r\nno newline translation"
    write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert [path.name for path in tmp_path.iterdir()] == ["data.txt"]


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_writer_failing_midway_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    target = tmp_path / "state.bin"
    write_bytes(target, b"old content")
    with pytest.raises(type(error)), atomic_open(target) as file:
        file.write(b"half of the new")
        raise error
    with pytest.raises(type(error)), atomic_path(target) as temporary:
        temporary.write_bytes(b"half of the new")
        raise error
    assert target.read_bytes() == b"old content"
    assert [path.name for path in tmp_path.iterdir()] == ["state.bin"]


def test_a_failing_figure_keeps_the_old_figure(tmp_path):
    class BrokenFigure:
        def savefig(self, file, **options):
            file.write(b"half a picture")
            raise RuntimeError("renderer crashed")

    target = save_figure(Figure(), tmp_path / "plot.svg")
    original = target.read_bytes()
    assert original.lstrip().startswith(b"<?xml")  # the format comes from the suffix
    with pytest.raises(RuntimeError, match="renderer crashed"):
        save_figure(BrokenFigure(), target)
    assert target.read_bytes() == original
    assert [path.name for path in tmp_path.iterdir()] == ["plot.svg"]


def test_file_and_folder_are_fsynced_around_the_rename(tmp_path, file_events):
    write_text(tmp_path / "a.txt", "a")
    with atomic_path(tmp_path / "b.txt") as temporary:
        temporary.write_text("b")
    folder = ["fsync folder"] if os.name == "posix" else []
    assert file_events == [
        "fsync file",
        "replace onto a.txt",
        *folder,
        "fsync file",
        "replace onto b.txt",
        *folder,
    ]


def test_a_file_made_only_if_absent_is_fsynced_then_linked_then_the_folder_fsynced(tmp_path, file_events):
    with atomic_path(tmp_path / "store.db", replace=False) as temporary:
        temporary.write_bytes(b"first")
    folder = ["fsync folder"] if os.name == "posix" else []
    assert file_events == ["fsync file", "link onto store.db", *folder]
    assert [path.name for path in tmp_path.iterdir()] == ["store.db"]


def test_a_file_made_only_if_absent_never_overwrites(tmp_path):
    target = write_bytes(tmp_path / "store.db", b"theirs")
    with pytest.raises(FileExistsError), atomic_path(target, replace=False) as temporary:
        temporary.write_bytes(b"ours")
    assert target.read_bytes() == b"theirs"
    assert [path.name for path in tmp_path.iterdir()] == ["store.db"]


def no_hard_links(source, target, **options):
    raise PermissionError(1, "this file system has no hard links", str(target))


def test_without_hard_links_a_file_made_only_if_absent_is_copied_exclusively(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "link", no_hard_links)
    with atomic_path(tmp_path / "a.db", replace=False) as temporary:
        temporary.write_bytes(b"made")
    assert (tmp_path / "a.db").read_bytes() == b"made"
    with pytest.raises(FileExistsError), atomic_path(tmp_path / "a.db", replace=False) as temporary:
        temporary.write_bytes(b"second")
    assert (tmp_path / "a.db").read_bytes() == b"made"
    assert [path.name for path in tmp_path.iterdir()] == ["a.db"]


def test_without_hard_links_a_failed_copy_leaves_no_half_file(tmp_path, monkeypatch):
    def full_disk(source, target, *args):
        target.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "link", no_hard_links)
    monkeypatch.setattr(shutil, "copyfileobj", full_disk)
    with (
        pytest.raises(OSError, match="No space left"),
        atomic_path(tmp_path / "a.db", replace=False) as temporary,
    ):
        temporary.write_bytes(b"made")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_opened_is_not_an_error(tmp_path, monkeypatch):
    real_open = os.open

    def open_no_folders(path, flags, *args):
        if os.path.isdir(path):
            raise PermissionError(13, "folders cannot be opened here", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", open_no_folders)
    assert write_text(tmp_path / "a.txt", "a").read_text() == "a"


def test_missing_folders_are_an_error_unless_parents(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it first or pass parents=True"):
        write_text(tmp_path / "missing" / "a.txt", "a")
    assert not (tmp_path / "missing").exists()
    assert write_text(tmp_path / "made" / "deep" / "a.txt", "a", parents=True).read_text() == "a"


def test_bad_arguments_name_the_value(tmp_path):
    with (
        pytest.raises(ValueError, match=r"mode must be .*got 'ab'"),
        atomic_open(tmp_path / "a", "ab"),
    ):
        pass
    with pytest.raises(ValueError, match="needs a suffix"):
        save_figure(Figure(), tmp_path / "plot")
    with pytest.raises(ValueError, match="path must name a file"):
        write_text(tmp_path / "..", "a")
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # reaped, so the pid names no process (until the system reuses it, which takes a while)
    return process.pid


@pytest.mark.skipif(os.name != "posix", reason="stale temporaries are only detected on POSIX")
def test_the_next_write_removes_temporaries_of_dead_writers_only(tmp_path):
    target = tmp_path / "state.bin"
    with atomic_path(target) as temporary:
        name_format = temporary.name.replace(f"-{os.getpid()}-", "-{pid}-")  # the real naming scheme
    dead, live = _dead_pid(), os.getppid()
    kept = [
        name_format.format(pid=live),  # a writer still running (here: our parent process)
        name_format.format(pid=os.getpid()),  # another thread of this process may be writing it
        name_format.format(pid=dead).replace("state.bin", "other.bin"),  # another target's
        name_format.format(pid=dead).replace(".tmp", "x.tmp"),  # not our naming scheme
        ".state.bin.0123abcd.tmp",  # the scheme before pids, whose writer cannot be told
    ]
    removed = name_format.format(pid=dead)
    for name in [*kept, removed]:
        (tmp_path / name).write_bytes(b"half a file")
    write_bytes(target, b"new")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([*kept, "state.bin"])
