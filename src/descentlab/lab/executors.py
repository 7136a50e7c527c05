"""Where a comparison's runs train: local worker processes (the default) or Ray tasks.

``descentlab compare --executor ray [--address HOST:PORT]`` hands every spec to Ray as one task and
stores each result in this process as it arrives, exactly as the process pool's results are stored
(:func:`~descentlab.lab.comparison.run_comparison` is the only writer of the store either way). With no
address a local Ray instance starts with one CPU per job, listening on the loopback interface only,
and stops when the comparison ends. An address names a running cluster: ``HOST:PORT`` of one this
machine joined (``ray start --address=...``), or ``ray://HOST:10001`` through Ray Client; its nodes
need descentlab installed, since tasks import it there.

Ray is an optional extra: ``pip install 'descentlab[ray]'``.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from descentlab.lab.comparison import PoolFactory
from descentlab.lab.fields import SettingError

EXECUTORS = ("processes", "ray")
"""The choices of ``--executor``."""

_initialized = False
"""Whether this (Ray worker) process ran the comparison's initializer."""


def _train(runner: Callable[[Any], Any], initializer: Callable[..., None], initargs: tuple, spec: Any) -> Any:
    """One Ray task: the worker's initializer on its first task (as a pool's process runs it), then
    ``runner(spec)``."""
    global _initialized
    if not _initialized:
        initializer(*initargs)
        _initialized = True
    return runner(spec)


def _import_ray(local: bool) -> Any:
    """Ray, imported so that a local instance takes the loopback address as its node's.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` when imported: off, a node's address is the loopback
    one and every Ray server binds there (by default they bind the machine's network address, to be
    reachable by other nodes). A private instance sends no usage statistics either, unless the user
    asked for them.
    """
    if local:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise SettingError(
            "--executor ray needs Ray, an optional extra: pip install 'descentlab[ray]'"
        ) from None
    return ray


class RayPool:
    """The part of ``multiprocessing.Pool`` a comparison uses, on Ray: each spec is one task.

    Args:
        processes: CPUs of the local instance started when there is no ``address`` (ignored with one:
            the cluster's size decides).
        initializer, initargs: run once in each Ray worker process before its first task.
        address: the cluster to join (see the module's docstring); ``None`` starts a local instance.
    """

    def __init__(
        self, processes: int, initializer: Callable[..., None], initargs: tuple, *, address: str | None = None
    ) -> None:
        ray = _import_ray(local=address is None)
        self._ray = ray
        self._initializer, self._initargs = initializer, initargs
        self._pending: list[Any] = []
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            try:
                ray.init(**_init_arguments(processes, address))
            except (ConnectionError, RuntimeError, ValueError) as error:
                where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
                reason = " ".join(str(error).split())
                raise SettingError(f"cannot start or reach {where} ({reason}); check --address") from None
        # one CPU per task, as one process per job: torch in each task runs on one thread
        self._task = ray.remote(num_cpus=1)(_train)

    def apply_async(
        self,
        runner: Callable[[Any], Any],
        args: tuple,
        callback: Callable[[Any], None],
        error_callback: Callable[[BaseException], None],
    ) -> None:
        """Submit one spec as a task; ``callback`` gets its result (``error_callback`` its error), as in
        ``multiprocessing.Pool.apply_async``, from a thread that waits for the task."""
        reference = self._task.remote(runner, self._initializer, self._initargs, *args)
        self._pending.append(reference)

        def wait() -> None:
            try:
                (done,), _ = self._ray.wait([reference], num_returns=1)
                result = self._ray.get(done)
            except BaseException as error:
                error_callback(error)
            else:
                callback(result)

        threading.Thread(target=wait, daemon=True).start()

    def terminate(self) -> None:
        """Cancel the tasks not yet finished; stop the local instance this pool started."""
        for reference in self._pending:
            self._ray.cancel(reference, force=True)
        self._pending = []
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()

    def join(self) -> None:
        """Nothing to wait for: :meth:`terminate` already stopped what this pool started."""


def _init_arguments(processes: int, address: str | None) -> dict[str, Any]:
    """``ray.init`` arguments: join ``address``, or start a private instance (see :func:`_import_ray`)."""
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address:
        return {"address": address, **quiet}
    return {
        "num_cpus": processes,
        # its workers import what this process can, as a process pool's children do
        "runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}},
        **quiet,
    }


def pool_factory(executor: str, address: str | None = None) -> PoolFactory | None:
    """The :data:`~descentlab.lab.comparison.PoolFactory` of ``--executor`` (``None``: local processes).

    Raises:
        SettingError: an unknown executor, or an address without Ray.
    """
    if executor not in EXECUTORS:
        raise SettingError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if executor == "processes":
        if address is not None:
            raise SettingError(f"--address {address} needs --executor ray; add it or drop --address")
        return None
    _import_ray(local=address is None)  # say that Ray is missing before any run trains
    return functools.partial(RayPool, address=address)
