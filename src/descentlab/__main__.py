"""Allow ``python -m descentlab``."""

from descentlab.cli import main

raise SystemExit(main())
