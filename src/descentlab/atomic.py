"""Write files so that a reader sees the old content or the new, never half of either.

One policy for every file descentlab writes (checkpoints, figures, reports, result JSON):

1. the data goes to a temporary file ``.<name>.<random>-<pid>-<host>.tmp`` in the target's own folder (so
   the final rename never crosses a file system);
2. the file is flushed and ``os.fsync``-ed, so the rename cannot reach the disk before the data;
3. ``os.replace`` moves it onto the target in one step (or, for a file that must not be overwritten, a
   hard link publishes it only where the target does not exist yet: ``replace=False``);
4. the folder is ``fsync``-ed too, so the rename itself survives a crash (skipped silently where the
   operating system cannot open a folder, e.g. Windows);
5. the file ends up with permissions ``0o666 & ~umask``, like a file made by ``open(path, "w")``;
6. on any error, ``KeyboardInterrupt`` included, the temporary file is removed and the old target, if any,
   is left exactly as it was;
7. a writer killed outright (``SIGKILL``, power loss) cannot clean up, so the next write of the same target
   removes the temporary files that dead processes of this host left for it. The process id and a hash of
   the host name in the temporary's name tell whose it is: a live process's temporary is never touched
   (processes in separate pid namespaces that share a host name and a folder would defeat this). POSIX
   only: Windows has no harmless "is this process alive" probe in the standard library.

Writers that produce bytes or text call :func:`write_bytes` / :func:`write_text`. Writers that need a file
object (``torch.save``, ``figure.savefig(file, format=...)``) use :func:`atomic_open`; writers that insist
on a path use :func:`atomic_path` (``replace=False`` creates a file that concurrent creators race for, such
as the lab's SQLite store: the first one wins, the others get ``FileExistsError``). Matplotlib figures have
:func:`save_figure`::

    with atomic_open("run.pt") as file:
        torch.save(state, file)
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "atomic_path", "save_figure", "write_bytes", "write_text"]

# Creating the temporary file with mode 0o666 lets the kernel apply the umask (and any default ACL) itself:
# no need to read the umask, which in Python means changing it, a race with other threads creating files.
_CREATE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0)
)
_MODES = ("wb", "w")
# Computed once: a fork keeps the host, and os.getpid() is asked at each write, so a forked writer names its
# temporary with its own pid.
_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _target(path: str | os.PathLike, parents: bool) -> Path:
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ValueError(f"path must name a file, got {str(path)!r}")
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise FileNotFoundError(
            f"folder {path.parent} for {path.name} does not exist; create it first or pass parents=True"
        )
    return path


def _temporary_pattern(path: Path) -> re.Pattern[str]:
    """Names of this host's temporaries for ``path``; group 1 is the writer's process id."""
    return re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8}}-([0-9]+)-{_HOST}\.tmp")


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 checks existence and delivers nothing
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete the temporaries for ``path`` that killed processes of this host left behind."""
    if os.name != "posix":
        return
    pattern = _temporary_pattern(path)
    with os.scandir(path.parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and int(match[1]) != os.getpid() and not _process_is_alive(int(match[1])):
                Path(entry.path).unlink(missing_ok=True)  # another writer may be removing it too


def _create_temporary(path: Path) -> tuple[int, Path]:
    _remove_stale_temporaries(path)
    for _ in range(100):
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}-{os.getpid()}-{_HOST}.tmp")
        try:
            return os.open(temporary, _CREATE_FLAGS, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}: 100 names were taken")


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # Windows cannot open a folder; its rename is as durable as it gets
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems (e.g. certain network mounts) refuse fsync on a folder
    finally:
        os.close(descriptor)


def _link_new(temporary: Path, path: Path) -> None:
    """Publish ``temporary`` as ``path`` only if ``path`` does not exist (``FileExistsError`` otherwise)."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError:
        # A file system without hard links (FAT, some network mounts): an exclusive copy still never
        # clobbers, though a reader may see the copy half made for a moment.
        with temporary.open("rb") as source, path.open("xb") as target:
            try:
                shutil.copyfileobj(source, target)
                target.flush()
                os.fsync(target.fileno())
            except BaseException:
                path.unlink(missing_ok=True)  # ours: created exclusively just above
                raise
    temporary.unlink()


@contextlib.contextmanager
def _replacing(path: Path, replace: bool = True) -> Iterator[tuple[int, Path]]:
    """Yield ``(descriptor, temporary)``; on clean exit move the temporary onto ``path``, else delete it."""
    descriptor, temporary = _create_temporary(path)
    try:
        yield descriptor, temporary
        (os.replace if replace else _link_new)(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "wb", *, encoding: str = "utf-8", parents: bool = False
) -> Iterator[IO[Any]]:
    """Yield a file object whose content replaces ``path`` atomically when the ``with`` block ends.

    ``mode`` is ``"wb"`` (bytes) or ``"w"`` (text in ``encoding``, newlines written as given). If the block
    raises, ``path`` is untouched and the temporary file is gone. ``parents=True`` creates missing folders;
    otherwise a missing folder is a ``FileNotFoundError``. The file is closed on exit; do not close it.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    path = _target(path, parents)
    with _replacing(path) as (descriptor, _):
        text_options = {"encoding": encoding, "newline": ""} if mode == "w" else {}
        with open(descriptor, mode, **text_options) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, parents: bool = False, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; what the block writes there replaces ``path`` atomically.

    For writers that only accept a file name. The temporary file exists (empty) when the block starts; the
    writer may overwrite it (it keeps ``0o666 & ~umask``) or replace it (then the writer's file keeps its
    own permissions). Otherwise the same guarantees and ``parents`` as :func:`atomic_open`.

    ``replace=False`` never overwrites: the file is published (hard-linked) only if ``path`` does not exist
    when the block ends, and otherwise ``FileExistsError`` is raised, ``path`` is left as it is and the
    temporary is removed. Of concurrent creators exactly one wins.
    """
    path = _target(path, parents)
    with _replacing(path, replace) as (descriptor, temporary):
        os.close(descriptor)
        yield temporary
        # The writer closed its own handle; reopen for writing because Windows refuses fsync on read-only.
        with open(temporary, "r+b") as file:
            os.fsync(file.fileno())


def write_bytes(path: str | os.PathLike, data: bytes, *, parents: bool = False) -> Path:
    """Replace ``path`` atomically by ``data``; returns ``path`` as a :class:`~pathlib.Path`."""
    with atomic_open(path, "wb", parents=parents) as file:
        file.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8", parents: bool = False) -> Path:
    """Replace ``path`` atomically by ``text`` (no newline translation); returns ``path`` as a Path."""
    with atomic_open(path, "w", encoding=encoding, parents=parents) as file:
        file.write(text)
    return Path(path)


def save_figure(
    figure: Any, path: str | os.PathLike, *, dpi: float | None = None, parents: bool = False, **options: Any
) -> Path:
    """Save a matplotlib ``figure`` to ``path`` atomically, in the format its suffix names; returns the path.

    ``dpi`` and ``options`` go to ``figure.savefig`` (``dpi=None`` keeps matplotlib's setting).
    """
    path = Path(path)
    image_format = path.suffix.lstrip(".").lower()
    if not image_format:
        raise ValueError(f"figure path {str(path)!r} needs a suffix that names the format (.png, .svg, .pdf)")
    with atomic_open(path, "wb", parents=parents) as file:
        figure.savefig(file, format=image_format, dpi=dpi, **options)
    return path
