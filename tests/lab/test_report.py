import csv
import json
import re

import pytest

from descentlab.lab import run_comparison, write_report
from descentlab.lab.report.atomic_file import write_text_atomic
from lab.browser import open_in_browser, require_browser


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    from lab.tiny_problems import register_tiny_problems, unregister_tiny_problems

    register_tiny_problems()
    folder = tmp_path_factory.mktemp("report")
    run_comparison(
        folder,
        ["sgd", "adam", "adamw"],
        ["tiny-bowl", "tiny-logreg", "tiny-blowup"],
        [0, 1],
        lr_grid=(0.01, 0.1, 1.0),
    )
    page = write_report(folder)
    unregister_tiny_problems()
    return folder, page


def test_page_is_self_contained(report_dir):
    folder, page = report_dir
    text = page.read_text()
    assert page == folder / "report.html"
    assert "<script" not in text and not re.search(r"(src|href)=['\"]https?:", text)
    # contours + curves + sweep for the two 2-D problems, curves + sweep for the learning problem
    assert len(re.findall(r"<img[^>]* src='data:image/png;base64,", text)) == 3 + 3 + 2
    for name in ("tiny-bowl", "tiny-logreg", "tiny-blowup", "SGD", "Adam", "AdamW", "<h2>Summary</h2>"):
        assert name in text
    assert "On tiny-blowup every optimizer diverged." in text
    assert not [path for path in folder.iterdir() if path.name.endswith(".tmp")]


def test_data_files_match_the_store(report_dir):
    folder, _ = report_dir
    with open(folder / "runs.csv", newline="") as handle:
        runs = list(csv.DictReader(handle))
    assert len(runs) == 3 * 3 * 2
    assert {row["outcome"] for row in runs if row["problem"] == "tiny-blowup"} == {"diverged"}
    document = json.loads((folder / "report.json").read_text())
    assert set(document["problems"]) == {"tiny-bowl", "tiny-logreg", "tiny-blowup"}
    chosen = document["comparison"]["chosen_lr"]
    for row in runs:
        assert float(row["lr"]) == chosen[row["problem"]][row["optimizer"]]
    with open(folder / "records.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert {row["run_id"] for row in records} == {row["run_id"] for row in runs}
    assert "val_accuracy" in records[0]


def test_table_means_are_computed_from_the_runs(report_dir):
    folder, _ = report_dir
    document = json.loads((folder / "report.json").read_text())
    for row in document["problems"]["tiny-logreg"]:
        finals = [
            run["summary"]["final_metric"]
            for run in document["runs"]
            if run["spec"]["problem"] == "tiny-logreg" and run["spec"]["optimizer"] == row["optimizer"]
        ]
        assert row["final"][0] == pytest.approx(sum(finals) / len(finals))


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "page.html"
    write_text_atomic(target, "old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and [path.name for path in tmp_path.iterdir()] == ["page.html"]


def test_page_renders_in_headless_chromium(report_dir):
    require_browser()
    folder, page = report_dir
    screenshot = folder / "screenshot.png"
    seen = open_in_browser(page, screenshot)
    assert seen["title"] == "descentlab report"
    assert seen["console"] == []
    assert len(seen["images"]) == 8
    assert all(complete and width > 0 and height > 0 for complete, width, height, _ in seen["images"])
    assert screenshot.stat().st_size > 10_000 and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
