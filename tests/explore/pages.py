"""Read an explorer page back: its JSON, and one path decoded from it, as the page's script decodes it."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np


def page_json(page: Path | str) -> dict:
    """The data block of a page: a path to it, or its HTML."""
    text = page.read_text() if isinstance(page, Path) else page
    match = re.search(r'<script id="data" type="application/json">(.*?)</script>', text, re.S)
    assert match, "the page has no data block"
    return json.loads(match.group(1))


def _array(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


def path_index(data: dict, optimizer: str, indices: list[int], start: int) -> int:
    """The path the page draws for ``optimizer`` with slider positions ``indices`` from start ``start``."""
    entry = next(o for o in data["optimizers"] if o["name"] == optimizer)
    setting = 0
    for slider, index in zip(entry["sliders"], indices, strict=True):
        setting = setting * len(slider["values"]) + index
    return entry["first"] + setting * len(data["starts"]) + start


def decoded_path(data: dict, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(n, 2)`` and losses ``(n,)`` of path ``index``, dequantised."""
    offsets = _array(data["offsets"], "<u4")
    begin, end = int(offsets[index]), int(offsets[index + 1])
    steps = _array(data["xy"], "<u2").reshape(-1, 2)[begin:end].astype(float) / 65535
    (x0, x1), (y0, y1) = data["window"]
    points = np.stack([x0 + steps[:, 0] * (x1 - x0), y0 + steps[:, 1] * (y1 - y0)], axis=-1)
    scale = data["loss"]
    losses = scale["low"] + _array(data["losses"], "<u2")[begin:end] / 65535 * (scale["high"] - scale["low"])
    return points, 10.0**losses if scale["log"] else losses


def quantum(data: dict) -> np.ndarray:
    """Half a quantisation step per axis: how far a stored coordinate may be from the true one."""
    return np.array([(high - low) / 65535 / 2 for low, high in data["window"]])
