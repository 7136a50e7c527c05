"""Progress of many runs on stderr: a bar on a terminal, a line every few seconds elsewhere (CI, logs)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

LINE_SECONDS = 5.0
"""Seconds between two progress lines when stderr is not a terminal."""


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


class Progress:
    """Counts finished runs of one phase and shows done/total with the elapsed time and an ETA.

    Args:
        total: runs in the phase.
        description: what the phase is (``"sweep"``, ``"compare"``).
        stream: where to write (stderr by default).
    """

    def __init__(self, total: int, description: str, stream: TextIO | None = None) -> None:
        self.total, self.description = total, description
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.started = self.last_line = time.monotonic()
        interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = (
            tqdm(total=total, desc=description, unit="run", file=self.stream, leave=False)
            if interactive and total
            else None
        )

    def line(self, now: float | None = None) -> str:
        """The progress line: ``sweep: 12/40 runs · 3 s elapsed · about 7 s left``."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        text = f"{self.description}: {self.done}/{self.total} runs · {_duration(elapsed)} elapsed"
        if 0 < self.done < self.total and (elapsed >= 10 or self.done >= 0.05 * self.total):
            text += f" · about {_duration(elapsed / self.done * (self.total - self.done))} left"
        return text

    def update(self, count: int = 1) -> None:
        """``count`` more runs finished."""
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = time.monotonic()
        if now - self.last_line >= LINE_SECONDS or self.done == self.total:
            self.last_line = now
            print(self.line(now), file=self.stream, flush=True)

    def close(self) -> None:
        """Remove the bar (a terminal keeps no stale bar)."""
        if self._bar is not None:
            self._bar.close()
