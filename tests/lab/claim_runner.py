"""A runner that logs who trained which run, for the tests of processes sharing one results folder.

Module-level so worker processes can unpickle it; the log is ``$CLAIM_LOG``, one line per run started:
``<$CLAIM_OWNER> <run_id>``, appended with ``O_APPEND`` (one small write, so lines never interleave).
"""

from __future__ import annotations

import os
import signal
import time

from descentlab.lab import run_spec
from descentlab.lab.runner import RunResult
from descentlab.lab.spec import RunSpec

SECONDS_PER_RUN = 0.2
"""Each run takes at least this long, so two processes really overlap."""


def logging_runner(spec: RunSpec) -> RunResult:
    """Log the run, then train it (slowly). ``$CLAIM_KILL_AT=N``: SIGKILL the process at its N-th run."""
    descriptor = os.open(os.environ["CLAIM_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, f"{os.environ['CLAIM_OWNER']} {spec.run_id}\n".encode())
    finally:
        os.close(descriptor)
    started = _count_started()
    if started == int(os.environ.get("CLAIM_KILL_AT", "0")):
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(SECONDS_PER_RUN)
    return run_spec(spec)


def _count_started() -> int:
    owner = os.environ["CLAIM_OWNER"]
    with open(os.environ["CLAIM_LOG"]) as log:
        return sum(line.split()[0] == owner for line in log)
