"""Wall time of the tuning issue's target command, ruleset by ruleset, and what each ruleset concluded.

Run from the repository root (minutes; nothing else should run on the machine)::

    .venv/bin/python benchmarks/tune_time.py      # -> benchmarks/results/tune_time.md

The target of the tuning issue: ``descentlab tune --optimizers SGD,Momentum,Adam --problems
digits-mlp,mnist1d-mlp --ruleset small`` finishes on 2 cores in under 20 minutes. The script runs it
(and the ``lr-only`` baseline on the same problems) into fresh temporary folders, times each, and copies
the report's per-problem verdict lines and the profile scores from ``report.json``, so the two rulesets'
conclusions sit side by side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from descentlab.atomic import write_text

sys.path.insert(0, str(Path(__file__).parent))
from demo_time import _machine

RESULTS = Path(__file__).parent / "results" / "tune_time.md"
COMMAND = ["tune", "--optimizers", "SGD,Momentum,Adam", "--problems", "digits-mlp,mnist1d-mlp"]


def _run(ruleset: str, folder: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "descentlab", *COMMAND, "--ruleset", ruleset, "--out", folder]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{finished.stderr[-3000:]}")
    return wall, finished.stdout + finished.stderr


def _conclusions(folder: str) -> list[str]:
    """Per problem, each tuned configuration's test metric (mean and interval); then the profile scores."""
    report = json.loads((Path(folder) / "report.json").read_text())
    lines = []
    for part in report["parts"]:
        for problem, rows in part["problems"].items():
            for row in rows:
                estimate = row["headline"] or {}
                lines.append(
                    f"{problem}: {row['label']}: test {estimate.get('mean', float('nan')):.4f} "
                    f"[{estimate.get('low', float('nan')):.4f}, {estimate.get('high', float('nan')):.4f}]"
                )
    for group in report["profiles"]:
        for score in group["scores"]:
            if score["target"] == "strict" and score["cost"] == "steps":
                lines.append(
                    f"profile score (strict target, steps) {score['solver']}: {score['score']:.3f} "
                    f"[{score['low']:.3f}, {score['high']:.3f}]"
                )
    return lines


def main() -> int:
    """Run both rulesets once and write the results table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"markdown file (default {RESULTS})")
    parser.add_argument("--rulesets", default="small,lr-only", help="comma-separated (default small,lr-only)")
    args = parser.parse_args()
    rows = [f"# `descentlab {' '.join(COMMAND)}`", "", f"Machine: {_machine()}.", ""]
    for ruleset in args.rulesets.split(","):
        with tempfile.TemporaryDirectory(prefix=f"descentlab-tune-{ruleset}-") as folder:
            wall, log = _run(ruleset, folder)
            rows += [f"## --ruleset {ruleset}: {wall / 60:.1f} min wall", ""]
            rows += [f"- {line}" for line in _conclusions(folder)]
            rows += ["", "Last lines printed:", "", "```", *log.strip().splitlines()[-8:], "```", ""]
        print(f"{ruleset}: {wall:.0f} s", flush=True)
    write_text(args.out, "\n".join(rows) + "\n", parents=True)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
