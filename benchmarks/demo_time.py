"""Wall time of the default comparison (what ``make demo`` runs), phase by phase, and what it produced.

Run from the repository root (it takes a few minutes; nothing else should run on the machine)::

    .venv/bin/python benchmarks/demo_time.py              # -> benchmarks/results/demo_time.md

The target of the lab issue is "under 3 minutes on 2 cores". The script runs ``descentlab compare``
with no arguments into a fresh temporary folder, reads the progress lines it prints (one per finished
phase) and the store it wrote, and reports: wall time of the sweep, its growth rounds, the seeded runs
and the report; configurations and runs; chosen learning rates at an edge of the grid; and the verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from descentlab.atomic import write_text

sys.path.insert(0, str(Path(__file__).parent))
from step_speed import machine_description

RESULTS = Path(__file__).parent / "results" / "demo_time.md"


def _machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{machine_description()}; load {load:.2f} at start"


def _phases(log: str) -> list[tuple[str, int, float]]:
    """``(phase, runs, seconds)`` from the final progress line of each phase."""
    phases = []
    pattern = re.compile(r"^(\w+): (\d+)/(\d+) runs · (?:(\d+) min )?(\d+) s elapsed$")
    for line in log.splitlines():
        match = pattern.match(line.strip())
        if match and match.group(2) == match.group(3):
            minutes = int(match.group(4) or 0)
            phases.append((match.group(1), int(match.group(3)), 60 * minutes + int(match.group(5))))
    return phases


def main() -> int:
    """Run the default comparison once and write the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"markdown file (default {RESULTS})")
    args = parser.parse_args()
    machine = _machine()
    with tempfile.TemporaryDirectory(prefix="descentlab-demo-") as folder:
        command = [sys.executable, "-m", "descentlab", "compare", "--out", folder]
        started = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        if finished.returncode != 0:
            print(finished.stderr, file=sys.stderr)
            return finished.returncode
        report_started = time.perf_counter()
        report = [sys.executable, "-m", "descentlab", "report", folder]
        subprocess.run(report, capture_output=True, check=True)
        report_seconds = time.perf_counter() - report_started
        connection = sqlite3.connect(Path(folder) / "runs.sqlite")
        query = "SELECT value FROM meta WHERE key = 'comparison:default'"
        meta = json.loads(connection.execute(query).fetchone()[0])
        counts = dict(connection.execute("SELECT purpose, COUNT(*) FROM runs GROUP BY purpose").fetchall())
        connection.close()
        page = (Path(folder) / "report.html").read_text()
    configurations = meta["configurations"]
    edges = [c for c in configurations if c["edge"]]
    verdicts = re.findall(r"<li>(On [^<]*)</li>", page)
    lines = [
        "# Default comparison (`make demo`): wall time",
        "",
        f"Machine: {machine}. Command: `descentlab compare` (no arguments), fresh folder.",
        "",
        f"- total wall time: **{wall:.0f} s** (target: under 180 s)",
        *(f"- {phase}: {runs} runs in {seconds:.0f} s" for phase, runs, seconds in _phases(finished.stderr)),
        f"- report alone (re-rendered from the store): {report_seconds:.0f} s",
        f"- configurations: {len(configurations)}; seeded runs: {counts.get('compare', 0)}; "
        f"sweep runs: {counts.get('sweep', 0)}",
        f"- chosen learning rates at an edge of the bounded grid: {len(edges)} of {len(configurations)}",
        f"- verdicts naming a winner: {sum('ends best' in v for v in verdicts)} of {len(verdicts)}",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, "\n".join(lines), parents=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
