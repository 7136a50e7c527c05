"""Open a report in real headless Chromium (selenium + Debian's chromium/chromedriver)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# Every element of a card must fit in it, except inside a scrolling box (tables scroll in their card):
# there the box itself must fit. Returns one line per offender.
_OVERFLOW_SCRIPT = """
const problems = [];
const root = document.documentElement;
if (root.scrollWidth > window.innerWidth + 1) {
  problems.push(`page scrolls sideways: ${root.scrollWidth} > ${window.innerWidth}`);
}
for (const card of document.querySelectorAll('section.card')) {
  const box = card.getBoundingClientRect();
  for (const element of card.querySelectorAll('*')) {
    const scroller = element.parentElement.closest('div.scroll');
    if (scroller && card.contains(scroller)) continue;
    const rect = element.getBoundingClientRect();
    if (rect.width === 0 && rect.height === 0) continue;
    if (rect.left < box.left - 1 || rect.right > box.right + 1) {
      problems.push(`${card.id || 'card'}: <${element.tagName.toLowerCase()} class=${element.className}> `
        + `spans ${Math.round(rect.left)}..${Math.round(rect.right)}, card ${Math.round(box.left)}..`
        + `${Math.round(box.right)}`);
    }
  }
}
return problems;
"""

# The smallest rendered scale of any figure: rendered width / natural width.
_SCALE_SCRIPT = """
return Array.from(document.images).filter(i => i.getBoundingClientRect().width > 0)
  .map(i => [i.alt, i.getBoundingClientRect().width / i.naturalWidth]);
"""


def require_browser() -> None:
    """Skip when chromium is missing, except under CI where a missing browser is a failure."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    if missing:
        message = f"headless browser missing: {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900, offline: bool = False) -> Iterator[Any]:
    """A headless Chromium driver with its own throw-away profile; ``offline`` cuts off the network
    (DevTools' network emulation) before any page loads."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="descentlab-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        if offline:
            driver.execute_cdp_cmd("Network.enable", {})
            conditions = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
            driver.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _viewport(driver, width: int, height: int) -> None:
    """Make the page's viewport (not the window) ``width`` x ``height`` CSS pixels."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def open_in_browser(page: Path, screenshot: Path, widths: tuple[int, ...] = (1280,)) -> dict:
    """Load ``page`` from disk and look at it at each viewport width (every ``<details>`` opened).

    Returns the console messages, image states, title, and per width: the page height, the elements
    wider than their card, each figure's rendered scale, and a full-page screenshot written next to
    ``screenshot`` (``NAME-WIDTH.png``).
    """
    with chromium() as driver:
        driver.get(page.resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images)"
            ".map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt]);"
        )
        closed = driver.execute_script("return document.querySelectorAll('details:not([open])').length")
        driver.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        seen = {}
        for width in widths:
            _viewport(driver, width, 900)
            height = int(driver.execute_script("return document.documentElement.scrollHeight"))
            _viewport(driver, width, min(height, 16000))
            path = screenshot.with_name(f"{screenshot.stem}-{width}.png")
            driver.save_screenshot(str(path))
            seen[width] = {
                "height": height,
                "overflow": driver.execute_script(_OVERFLOW_SCRIPT),
                "scales": driver.execute_script(_SCALE_SCRIPT),
                "screenshot": path,
            }
        console = driver.get_log("browser")
        title = driver.title
    return {"console": console, "images": images, "title": title, "closed_details": closed, "widths": seen}
