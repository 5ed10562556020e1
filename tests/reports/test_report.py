"""``report``: every promised file, a table true to the summaries, a page with working links."""

from __future__ import annotations

import csv
import html
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from resnetlab.cli import main
from resnetlab.errors import ResnetlabError
from resnetlab.reports import report
from resnetlab.reports.plots import lr_drops
from resnetlab.reports.reading import read_run
from tests.builders import fake_checkpoint, fake_run, read_json

OVERVIEW = ["figures/error_curves.png", "figures/depth_vs_error.png", "figures/params_vs_accuracy.png",
            "figures/time_vs_accuracy.png"]
PER_RUN = ["error_curves.png", "loss.png", "epochs.png", "lr.png"]
PER_RUN_WITH_CHECKPOINT = [*PER_RUN, "confusion.png", "predictions.png"]


class _Links(HTMLParser):
    """Every src/href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("src", "href") and value is not None:
                self.links.append(value)
                if tag == "img":
                    self.images.append(value)


def page_links(index: Path) -> _Links:
    parser = _Links()
    parser.feed(index.read_text())
    return parser


def assert_png(path: Path) -> None:
    assert path.is_file(), f"missing {path}"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 150


def test_report_writes_every_promised_file(two_fake_runs: list[Path], tmp_path: Path) -> None:
    index = report(two_fake_runs, tmp_path / "report", checkpoints=False)
    out = tmp_path / "report"
    assert index == out / "index.html" and index.is_file()
    for name in ["results.md", "results.csv"]:
        assert (out / name).stat().st_size > 0
    for name in OVERVIEW:
        assert_png(out / name)
    for folder in ["01-resnet20", "02-plain56"]:
        for name in PER_RUN:
            assert_png(out / "runs" / folder / name)
    # Without checkpoints the page says why the confusion matrix is absent instead of failing.
    assert "Confusion matrix and sample predictions skipped" in index.read_text()


def test_table_lists_both_runs_with_figures_from_their_summaries(two_fake_runs: list[Path], tmp_path: Path) -> None:
    report(two_fake_runs, tmp_path / "report", checkpoints=False)
    with (tmp_path / "report" / "results.csv").open() as f:
        rows = {row["run"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"resnet20", "plain56"}
    for folder in two_fake_runs:
        summary = read_json(folder / "summary.json")
        row = rows[folder.name]
        assert row["model"] == summary["model"]
        assert int(row["params"]) == summary["params"]
        assert float(row["test_error_pct"]) == pytest.approx(100 * (1 - summary["final"]["test_acc"]))
        assert float(row["train_error_pct"]) == pytest.approx(100 * (1 - summary["final"]["train_acc"]))
        assert float(row["train_seconds"]) == summary["train_seconds"]
        assert int(row["epochs"]) == summary["epochs"]
        assert row["recipe"].startswith(f"{summary['recipe']} (")  # the recipe with its changes
    assert rows["resnet20"]["layers"] == "20" and rows["plain56"]["layers"] == "56"
    # a run that is not the paper's model as defined says so
    assert rows["resnet20"]["model_options"] == "zero_init_residual=True" and rows["plain56"]["model_options"] == ""
    assert rows["resnet20"]["paper_error_pct"] == "8.75" and rows["plain56"]["paper_error_pct"] == ""
    markdown = (tmp_path / "report" / "results.md").read_text()
    # resnet20: 0.27M parameters, 8.75% test error, 10 minutes; plain56: 0.86M, 13.83%, 30m 50s
    assert ("| resnet20 | resnet20 | zero_init_residual=True | 20 | 0.27M | 3.00 | 8.75 | 8.75 | 10m 00s | 6 | 600 | "
            "paper (model_options {zero_init_residual: true}, epochs 6) |") in markdown
    assert "| plain56 | plain56 | - | 56 | 0.86M | 12.00 | 13.83 | - | 30m 50s | 6 | 600 | paper (epochs 6) |" in markdown


def test_html_references_only_files_that_exist_and_shows_every_figure(two_fake_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    index = report(two_fake_runs, out, checkpoints=False)
    links = page_links(index)
    local = [link for link in links.links if not link.startswith("#")]
    assert local, "the page links nothing"
    for link in local:
        assert "://" not in link and not link.startswith("/"), f"not a relative link: {link}"
        assert (out / link).is_file(), f"the page references {link}, which does not exist"
    written = {p.relative_to(out).as_posix() for p in out.rglob("*.png")}
    assert set(links.images) == written  # every figure written is on the page
    anchors = {link[1:] for link in links.links if link.startswith("#")}
    for anchor in anchors:
        assert f'id="{anchor}"' in index.read_text()


def test_page_names_the_commands_that_produced_the_runs(two_fake_runs: list[Path], tmp_path: Path) -> None:
    page = report(two_fake_runs, tmp_path / "report", checkpoints=False).read_text()
    for folder in two_fake_runs:
        assert html.escape(read_json(folder / "summary.json")["command"]) in page


def test_unfinished_run_and_missing_checkpoint_are_named_not_fatal(tmp_path: Path) -> None:
    running = fake_run(tmp_path / "running", "resnet56", finished=False)
    page = report([running], tmp_path / "report").read_text()
    assert "Unfinished run" in page
    assert "no checkpoint in" in page
    with (tmp_path / "report" / "results.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] == "unfinished" and row["params"] == ""
    assert float(row["test_error_pct"]) == pytest.approx(10.0)  # last metrics.csv row (final 0.9)


def test_confusion_matrix_from_the_checkpoint_or_a_note_saying_what_is_missing(
        tiny_image_folder: Path, tmp_path: Path) -> None:
    run = fake_run(tmp_path / "runs" / "resnet20", "resnet20", dataset="folder")
    fake_checkpoint(run, tiny_image_folder)
    out = tmp_path / "report"
    page = report([run], out, samples=10, device="cpu").read_text()
    assert_png(out / "runs" / "01-resnet20" / "confusion.png")
    assert_png(out / "runs" / "01-resnet20" / "predictions.png")
    assert "last.pt: " in page and "correct on 36 test images" in page  # all 3 x 12 test images
    with (out / "results.csv").open() as f:
        assert next(csv.DictReader(f))["paper_error_pct"] == ""  # the paper's CIFAR-10 figure is not comparable

    fake_checkpoint(run, tmp_path / "moved-away")  # the data is not on this machine any more
    page = report([run], tmp_path / "report2", device="cpu").read_text()
    assert "Confusion matrix and sample predictions not shown: image folder" in page
    assert not (tmp_path / "report2" / "runs" / "01-resnet20" / "confusion.png").exists()
    assert_png(tmp_path / "report2" / "runs" / "01-resnet20" / "error_curves.png")  # the rest still renders


def test_lr_drops_are_found_where_the_rate_falls(tmp_path: Path) -> None:
    run = read_run(fake_run(tmp_path / "r", "resnet20", epochs=8, iters_per_epoch=100))
    # lr 0.1 for epochs 1-4, 0.01 for 5-6, 0.001 for 7-8: drops after iteration 400 and 600
    assert lr_drops(run) == [400.0, 600.0]


def test_report_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResnetlabError, match="not a run folder"):
        report([tmp_path / "empty"], tmp_path / "report")
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "report")]) == 2
    assert "resnetlab: error:" in capsys.readouterr().err


def test_report_command_line(two_fake_runs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", *map(str, two_fake_runs), "--out", str(tmp_path / "r"), "--no-checkpoints"]) == 0
    assert str(tmp_path / "r" / "index.html") in capsys.readouterr().out


def test_report_of_real_runs_shows_confusion_matrix_matching_the_summary(tiny_trained_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    page = report(tiny_trained_runs, out, samples=12, device="cpu").read_text()
    for i, folder in enumerate(tiny_trained_runs, 1):
        for name in PER_RUN_WITH_CHECKPOINT:
            assert_png(out / "runs" / f"{i:02d}-{folder.name}" / name)
        summary = json.loads((folder / "summary.json").read_text())
        # The confusion matrix comes from last.pt on the test split: its accuracy is final.test_acc.
        assert f"last.pt: {100 * summary['final']['test_acc']:.2f}% correct on 36 test images" in page  # 3 classes x 12
    assert "not shown" not in page


def test_a_folder_of_the_users_files_is_refused_and_overwrite_replaces_only_the_reports(two_fake_runs: list[Path],
                                                                                      tmp_path: Path) -> None:
    site = tmp_path / "mysite"
    site.mkdir()
    (site / "index.html").write_text("<p>my own page</p>\n")
    (site / "notes.txt").write_text("my own notes\n")
    with pytest.raises(ResnetlabError, match=r"mysite holds files that resnetlab report did not write \(index.html, notes.txt\)"):
        report(two_fake_runs, site, checkpoints=False)
    assert (site / "index.html").read_text() == "<p>my own page</p>\n"
    report(two_fake_runs, site, checkpoints=False, overwrite=True)
    assert "resnetlab report" in (site / "index.html").read_text() and (site / "notes.txt").read_text() == "my own notes\n"
    report(two_fake_runs, site, checkpoints=False)  # a report of ours is written over without asking (a sweep's, again)
