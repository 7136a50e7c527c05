import csv
import json
import re

import pytest

from descentlab.atomic import write_text as write_text_atomic
from descentlab.lab import RunStore, run_comparison, run_spec, write_report
from descentlab.lab.report.data import load_report_data
from descentlab.lab.spec import RunSpec
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
        name="first",
    )
    page = write_report(folder)
    unregister_tiny_problems()
    return folder, page


def test_page_is_self_contained(report_dir):
    folder, page = report_dir
    text = page.read_text()
    assert page == folder / "report.html"
    assert "<script" not in text and not re.search(r"(src|href)=['\"]https?:", text)
    # contours + curves + sweep for the two 2-D problems, curves + sweep for the learning problem, and the
    # performance profiles of the comparison (it spans several problems)
    assert len(re.findall(r"<img[^>]* src='data:image/png;base64,", text)) == 3 + 3 + 2 + 1
    for name in (
        "tiny-bowl",
        "tiny-logreg",
        "tiny-blowup",
        "SGD lr=",
        "Adam lr=",
        "AdamW lr=",
        "comparison first",
    ):
        assert name in text
    assert "On tiny-blowup every configuration diverged." in text
    assert not [path for path in folder.iterdir() if path.name.endswith(".tmp")]


def test_identical_seeds_are_said_to_be_identical_not_a_spread(report_dir):
    _, page = report_dir
    text = page.read_text()
    # the tiny bowl starts at one point for every seed and is full batch: both seeds are the same run
    assert "identical on 2 seeds" in text and "± 0 " not in text


def test_data_files_match_the_store(report_dir):
    folder, _ = report_dir
    with open(folder / "runs.csv", newline="") as handle:
        runs = list(csv.DictReader(handle))
    assert len(runs) == 3 * 3 * 2
    assert {row["outcome"] for row in runs if row["problem"] == "tiny-blowup"} == {"diverged"}
    document = json.loads((folder / "report.json").read_text())
    (part,) = document["parts"]
    assert set(part["problems"]) == {"tiny-bowl", "tiny-logreg", "tiny-blowup"}
    chosen = {(c["problem"], c["optimizer"]): c["lr"] for c in part["settings"]["configurations"]}
    for row in runs:
        assert float(row["lr"]) == chosen[row["problem"], row["optimizer"]]
        assert row["label"].startswith({"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[row["optimizer"]])
    with open(folder / "records.csv", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert {row["run_id"] for row in records} == {row["run_id"] for row in runs}
    assert "val_accuracy" in records[0] and "gradient_evaluations" in records[0]


def test_table_means_are_computed_from_the_runs(report_dir):
    folder, _ = report_dir
    document = json.loads((folder / "report.json").read_text())
    (part,) = document["parts"]
    for row in part["problems"]["tiny-logreg"]:
        finals = [
            run["summary"]["final_metric"]
            for run in document["runs"]
            if run["configuration_id"] == row["configuration_id"]
        ]
        assert len(finals) == 2 and row["headline"]["mean"] == pytest.approx(sum(finals) / 2)


def test_unlike_runs_are_never_merged(tmp_path):
    for lr in (0.1, 0.3):
        for seed in (0, 1):
            result = run_spec(RunSpec.create("tiny-logreg", "sgd", {"lr": lr}, seed=seed, steps=5))
            with RunStore(tmp_path) as store:
                store.save(result, purpose="run")
    data = load_report_data(tmp_path)
    (section,) = data.sections
    (problem,) = section.problems
    assert sorted(c.label for c in problem.configurations) == ["SGD lr=0.1 · 5 steps", "SGD lr=0.3 · 5 steps"]
    assert all(sorted(run["seed"] for run in c.runs) == [0, 1] for c in problem.configurations)


def test_two_comparisons_in_one_folder_stay_apart(tmp_path):
    run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0], settings={"lr": 0.1}, name="a")
    run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0], settings={"lr": 0.2, "steps": 5}, name="b")
    data = load_report_data(tmp_path)
    assert [s.title for s in data.sections] == ["comparison a", "comparison b"]
    labels = [[c.label for p in s.problems for c in p.configurations] for s in data.sections]
    assert labels == [["SGD lr=0.1"], ["SGD lr=0.2 · 5 steps"]]


def test_a_tie_is_reported_as_a_tie(tmp_path):
    # clipping at 1e6 never acts on the bowl: two configurations with bit-identical results
    run_comparison(
        tmp_path, ["sgd"], ["tiny-bowl"], [0, 1], settings={"lr": 0.1}, vary=[("clip_value", ["1e6", "1e7"])]
    )
    text = write_report(tmp_path).read_text()
    assert "On tiny-bowl, tie: SGD lr=0.1 · clip_value=1e+06, SGD lr=0.1 · clip_value=1e+07" in text
    assert "ends best" not in text


def test_a_clear_winner_is_named(tmp_path):
    run_comparison(tmp_path, ["sgd"], ["tiny-bowl"], [0, 1], vary=[("lr", ["0.001", "0.3"])])
    text = write_report(tmp_path).read_text()
    assert (
        "On tiny-bowl, SGD lr=0.3 ends best" in text and "beats the runner-up on all 2 common seeds" in text
    )


def test_one_stochastic_seed_decides_nothing(tmp_path):
    run_comparison(tmp_path, ["sgd"], ["tiny-logreg"], [0], vary=[("lr", ["0.001", "1"])])
    text = write_report(tmp_path).read_text()
    assert "On tiny-logreg, tie: " in text and "one seed only" in text


def test_report_renders_a_store_whose_problems_are_not_registered(tmp_path):
    from lab.tiny_problems import register_tiny_problems, unregister_tiny_problems

    run_comparison(tmp_path, ["sgd"], ["tiny-logreg"], [0], settings={"lr": 0.1, "steps": 3})
    unregister_tiny_problems()
    try:
        text = write_report(tmp_path).read_text()
    finally:
        register_tiny_problems()
    assert "problem not registered" in text and "SGD lr=0.1 · 3 steps" in text


def test_learning_problems_report_test_beside_validation(tmp_path):
    run_comparison(tmp_path, ["adam"], ["digits-logreg"], [0], settings={"lr": 0.01, "steps": 20})
    text = write_report(tmp_path).read_text()
    assert "test accuracy ↑" in text and "validation accuracy" in text and "train accuracy" in text


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
    assert len(seen["images"]) == 3 + 3 + 2 + 1  # the same images as the HTML holds, the profile included
    assert all(complete and width > 0 and height > 0 for complete, width, height, _ in seen["images"])
    assert screenshot.stat().st_size > 10_000 and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
