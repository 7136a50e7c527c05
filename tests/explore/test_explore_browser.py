"""The explorer page in real headless Chromium, offline: sliders, the optimizer choice and the starts
redraw the path from the precomputed data; no console errors, no request leaves the page."""

from __future__ import annotations

import pytest

from explore.pages import decoded_path, page_json, path_index
from lab.browser import chromium, require_browser


def _drawn(driver) -> tuple[str, str]:
    return driver.execute_script(
        "return [document.getElementById('path').getAttribute('d'),"
        " document.getElementById('loss-curve').getAttribute('d')]"
    )


def _set(driver, element_id: str, value: int, event: str = "input") -> None:
    """What a user's drag does: a new value, then the event the page listens to."""
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        " e.dispatchEvent(new Event(arguments[2]));",
        element_id,
        str(value),
        event,
    )


def _points(d: str) -> int:
    return d.count("L") + 1 if d.startswith("M") else 0


def _stored_points(data, optimizer, indices, start) -> int:
    return len(decoded_path(data, path_index(data, optimizer, indices, start))[0])


@pytest.fixture
def browser_page(default_page):
    require_browser()
    return default_page[1], page_json(default_page[1])


def test_sliders_redraw_the_path_offline(browser_page, tmp_path):
    page, data = browser_page
    sgd, adam = data["optimizers"][0], data["optimizers"][-1]
    with chromium(1400, 1000, offline=True) as driver:
        driver.get(page.resolve().as_uri())
        opening = [s["default"] for s in sgd["sliders"]]
        path, loss = _drawn(driver)
        assert _points(path) == _stored_points(data, "SGD", opening, 0)

        _set(driver, "slider-lr", 0)  # the smallest rate
        moved, moved_loss = _drawn(driver)
        assert moved != path and moved_loss != loss
        assert _points(moved) == _stored_points(data, "SGD", [0], 0)

        _set(driver, "optimizer", data["optimizers"].index(adam), "change")
        labels = driver.execute_script(
            "return Array.from(document.querySelectorAll('#sliders label'))"
            ".map(l => l.firstChild.textContent.trim())"
        )
        assert labels == ["learning rate", "β1", "β2"]
        before = _drawn(driver)[0]
        _set(driver, "slider-betas0", 0)  # beta1 = 0: no momentum
        after = _drawn(driver)[0]
        assert after != before
        indices = [adam["sliders"][0]["default"], 0, adam["sliders"][2]["default"]]
        assert _points(after) == _stored_points(data, "Adam", indices, 0)

        driver.find_elements("css selector", "#starts rect")[2].click()
        assert driver.execute_script("return document.getElementById('start').value") == "2"
        x, y = data["starts"][2]
        assert driver.find_element("id", "start-value").text == f"({x:g}, {y:g})"
        assert _drawn(driver)[0] != after

        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(name.startswith("data:") for name in resources), resources
        policy = driver.execute_script(
            "return document.querySelector('meta[http-equiv=Content-Security-Policy]').content"
        )
        assert "default-src 'none'" in policy
        problems = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
        assert problems == []
        # and the policy holds: a request the page tried would be refused before it left
        blocked = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "document.addEventListener('securitypolicyviolation', e => done(e.blockedURI), {once: true});"
            "const image = new Image(); image.src = 'https://example.com/pixel.png';"
            "setTimeout(() => done(null), 5000);"
        )
        assert blocked == "https://example.com/pixel.png"


def test_layout_at_800_and_1400_px(browser_page, tmp_path):
    page, _ = browser_page
    with chromium(800, 1000, offline=True) as driver:
        driver.get(page.resolve().as_uri())
        for width in (800, 1400):
            driver.set_window_size(width, 1000)
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(width, min(int(height) + 120, 8000))
            screenshot = tmp_path / f"explore-{width}.png"
            driver.save_screenshot(str(screenshot))
            print(f"screenshot: {screenshot}")
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, width
            # the surface keeps a readable size; at 1400 px the loss plot sits beside it, at 800 below
            boxes = driver.execute_script(
                "return ['surface', 'loss'].map(id => document.getElementById(id).getBoundingClientRect())"
                ".map(r => [r.left, r.top, r.width])"
            )
            (surface_left, surface_top, surface_width), (loss_left, loss_top, _) = boxes
            assert surface_width >= (560 if width == 800 else 500), width
            assert (loss_left > surface_left) if width == 1400 else (loss_top > surface_top), width
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
