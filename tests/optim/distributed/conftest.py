"""Puts this folder on ``sys.path``: spawned worker processes inherit it and import workers by name."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
