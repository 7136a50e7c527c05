"""Read command options from a TOML or YAML file (``--config FILE``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def load_config(path: str | Path) -> dict[str, Any]:
    """The top-level table of a ``.toml`` or ``.yaml``/``.yml`` file, keys with ``-`` turned to ``_``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            raise ValueError("TOML config files need Python >= 3.11; use YAML instead")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"config file {str(path)!r} is not valid YAML: {error}") from None
    else:
        raise ValueError(f"config file {str(path)!r} must end in .toml, .yaml or .yml")
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a table of options, got {type(data).__name__}")
    return {str(key).replace("-", "_"): value for key, value in data.items()}
