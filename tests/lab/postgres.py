"""A real, throw-away PostgreSQL server for the tests (Debian's postgresql package: initdb + pg_ctl).

The server lives in a temporary folder, listens on a free port of 127.0.0.1 only (its Unix socket in
the same folder), trusts local connections, and runs as an unprivileged user: PostgreSQL refuses to run
as root, which the tests are under CI, so there it runs as ``nobody``.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

UNPRIVILEGED_USER = "nobody"
TIMEOUT_SECONDS = 60
"""Bound on each initdb / pg_ctl call: a server that is not up by then will not come up."""


def _version(folder: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", folder))


def server_binaries() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: on PATH, else Debian's newest ``/usr/lib/postgresql/N/bin``."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    complete = [Path(f) for f in folders if (Path(f) / "initdb").exists() and (Path(f) / "pg_ctl").exists()]
    return complete[0] if complete else None


def require_server_binaries() -> Path:
    """The binaries' folder; skip (fail under CI, whose .ci/run installs them) when they are missing."""
    folder = server_binaries()
    if folder is None:
        message = (
            "PostgreSQL's server binaries initdb and pg_ctl are neither on PATH nor in "
            "/usr/lib/postgresql/*/bin, so the tests against a real PostgreSQL server cannot start one: "
            "apt-get install postgresql (.ci/run does)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return folder


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """A running server: connect as ``postgres`` without a password on ``127.0.0.1:port``."""

    port: int

    def url(self, database: str) -> str:
        """The ``postgresql://`` URL of ``database`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; return its URL."""
        import psycopg

        dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=10"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_server_user() -> dict:
    """``subprocess`` arguments that run a command as the unprivileged user when this process is root."""
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        pytest.skip(f"running as root and there is no user {UNPRIVILEGED_USER!r} to run PostgreSQL as")
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a fresh server in a temporary folder; stop it and delete the folder afterwards."""
    binaries = require_server_binaries()
    identity = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="descentlab-postgres-"))
    if identity:
        os.chown(folder, identity["user"], identity["group"])
    data, log = folder / "data", folder / "server.log"
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(folder)}

    def call(*arguments: str) -> None:
        subprocess.run(
            [str(binaries / arguments[0]), *arguments[1:]],
            cwd=folder,
            env=environment,
            check=True,
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
            **identity,
        )

    port = _free_port()
    try:
        call("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C")
        # fsync off: a test server that dies loses nothing anyone needs, and commits get much faster
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
        wait = ("-w", "-t", str(TIMEOUT_SECONDS))
        call("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, *wait, "start")
    except subprocess.SubprocessError as error:
        detail = log.read_text() if log.exists() else getattr(error, "stderr", b"").decode(errors="replace")
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"the test PostgreSQL server did not start ({error}):\n{detail}") from None
    try:
        yield PostgresServer(port)
    finally:
        try:
            call("pg_ctl", "-D", str(data), "-m", "immediate", *wait, "stop")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
