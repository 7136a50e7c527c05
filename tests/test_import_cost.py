"""Importing descentlab does not import dynamo and inductor (1.2-1.6 s on a 2-core machine), so commands
that build no optimizer (``descentlab optimizers``, ``--help``, reports from finished runs) start without
them. Constructing any ``torch.optim.Optimizer`` imports dynamo (torch's own ``_disable_dynamo``), so a
training process pays it there, as with torch.optim."""

from __future__ import annotations

import subprocess
import sys

MODULES = (
    "descentlab.cli",
    "descentlab.optim",
    "descentlab.lab",
    "descentlab.training",
    "descentlab.analysis",
)


def test_importing_descentlab_does_not_import_the_compiler():
    code = (
        f"import sys, {', '.join(MODULES)}\n"
        "print(sorted(m for m in sys.modules if m.startswith(('torch._dynamo', 'torch._inductor'))))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == "[]"
