"""Progress is visible when stderr is not a terminal: a line every few seconds and one at the end."""

import io

from descentlab.lab import progress as progress_module
from descentlab.lab.progress import Progress


def test_lines_without_a_terminal(monkeypatch):
    clock = iter([0.0, 0.0, 1.0, 6.0, 9.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()  # not a terminal: no bar, plain lines
    progress = Progress(4, "sweep", stream)
    for _ in range(4):
        progress.update()
    lines = stream.getvalue().splitlines()
    # t=0 and t=1: under 5 s since the last line; t=6: a line with an estimate (3 done in 6 s, 1 to go);
    # t=9: only 3 s later, but the phase is done
    assert lines == ["sweep: 3/4 runs · 6 s elapsed · about 2 s left", "sweep: 4/4 runs · 9 s elapsed"]
