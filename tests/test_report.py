"""`afss report`: the HTML page of a run folder, its numbers against the metrics files, its galleries,
a run without ground truth, missing files, bad folders; and the page opened in headless Chromium."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_fixture import POOL_IMAGES, build_run, build_run_without_ground_truth, without_ground_truth

from afss.cli import main
from afss.errors import AfssError
from afss.report import build_report
from afss.report.browser import check_page, find_chromium


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """The tiny run folder, built once per test session (about 40 s: two one-epoch trainings)."""
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("the student extra (ultralytics) is not installed: the fixture run trains a student")
    return build_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="session")
def run_no_gt(run_dir, tmp_path_factory) -> Path:
    return without_ground_truth(run_dir, tmp_path_factory.mktemp("report_no_gt") / "run")


@pytest.fixture(scope="session")
def run_real_no_gt(tmp_path_factory) -> Path:
    """A run made with ``eval.source: null`` (no val images at all), as a user without masks makes it."""
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("the student extra (ultralytics) is not installed: the fixture run trains a student")
    return build_run_without_ground_truth(tmp_path_factory.mktemp("report_real_no_gt") / "run")


def _browser_or_skip() -> None:
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("playwright not installed: pip install playwright (or the project's test extra)")
    try:
        find_chromium()
    except AfssError as e:
        pytest.skip(f"chromium not installed: {e}")


class _Page(HTMLParser):
    """What the tests read from a page: cells with ``data-metric``, cards per gallery with their
    numbers, image sources, element ids."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], str] = {}
        self.row_classes: dict[str, set[str]] = {}
        self.cards: dict[str, list[dict[str, str]]] = {}
        self.images: list[str] = []
        self.alts: list[str] = []
        self.ids: set[str] = set()
        self._cell: tuple[str, str] | None = None
        self._grid: str | None = None
        self._depth = 0
        self._row_class = ""
        self._table = ""
        self._dt: str | None = None
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "tr":
            self._row_class = a.get("class", "")
        if tag == "table":
            self._table = a.get("id", "")
        if tag == "td" and "data-metric" in a:
            self._cell = (a["data-stage"], a["data-metric"])
            if self._table == "ap-table":
                self.row_classes.setdefault(a["data-stage"], set()).add(self._row_class)
        if tag == "img":
            self.images.append(a.get("src", ""))
            self.alts.append(a.get("alt", ""))
        if tag == "div" and a.get("class") == "cards":
            self._grid, self._depth = a["id"], 0
            self.cards[self._grid] = []
        elif tag == "div" and self._grid is not None:
            self._depth += 1
            if a.get("class") == "card":
                self.cards[self._grid].append({})
        if tag in ("dt", "dd") and self._grid is not None:
            self._in = "reason" if a.get("class") == "reason" else tag

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None
        if tag == "div" and self._grid is not None:
            self._depth -= 1
            if self._depth < 0:
                self._grid = None
        if tag in ("dt", "dd"):
            self._in = None

    def handle_data(self, data):
        if self._cell is not None:
            self.cells[self._cell] = data
        if self._grid is not None and self._in is not None:
            card = self.cards[self._grid][-1]
            if self._in == "dt":
                self._dt = data
            elif self._in == "reason":
                card["reason"] = data
            elif self._dt is not None:
                card[self._dt] = data


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


@pytest.fixture(scope="session")
def page(run_dir, tmp_path_factory) -> tuple[Path, str]:
    out = build_report(run_dir, tmp_path_factory.mktemp("page") / "report.html")
    return out, out.read_text(encoding="utf-8")


def test_the_ap_table_shows_every_stage_with_the_numbers_of_its_metrics_file(run_dir, page):
    parsed = _Page(page[1])
    order = json.loads((run_dir / "run.json").read_text())["order"]
    assert "upper-bound" in order and any(s.startswith("student-round-") for s in order)
    checked = 0
    for stage in order:
        rows = json.loads((run_dir / "metrics" / f"{stage}.json").read_text())["rows"]
        for row in (r for r in rows if r["category"] == "all"):
            for key in ("ap", "ap50", "ap75"):
                cell = parsed.cells[(stage, f"{row['protocol']}-{row['iou_type']}-{key}")]
                assert cell == _pct(row[key]), (stage, row["protocol"], row["iou_type"], key)
                checked += 1
    assert checked == len(order) * 2 * 2 * 3  # coco and paper, segm and bbox, AP AP50 AP75
    assert parsed.row_classes["upper-bound"] == {"upper"}  # the supervised reference is marked apart
    assert parsed.row_classes["teacher"] == {""}
    assert "ap-table" in parsed.ids and "no-gt" not in parsed.ids
    val = json.loads((run_dir / "data" / "val_gt.json").read_text())["images"]
    assert f"against data/val_gt.json ({len(val)} images)" in page[1]  # what the AP is over


def test_the_galleries_hold_one_card_per_image_in_order_with_the_filters_reasons(run_dir, page):
    parsed = _Page(page[1])
    val = json.loads((run_dir / "data" / "val_gt.json").read_text())["images"]
    cards = parsed.cards["disagreement-cards"]
    assert len(cards) == len(val)
    values = [float(c["disagreement"]) for c in cards]
    assert values == sorted(values, reverse=True) and all(0 <= v <= 1 for v in values)
    assert all("teacher IoU" in c and "student IoU" in c for c in cards)  # with ground truth, IoU on every card
    refined = json.loads((run_dir / "distill" / "round-1" / "refined.json").read_text())
    labelled = {a["image_id"] for a in refined["annotations"]}
    dropped = [im for im in refined["images"] if im["id"] not in labelled]
    assert dropped, "the fixture's filter should drop some pool images"
    got = parsed.cards["dropped-cards"]
    assert len(got) == len(dropped)
    assert sorted(c["reason"] for c in got) == sorted(im["afss_error"] for im in dropped)


def test_the_page_is_self_contained(page):
    path, text = page
    assert not re.search(r"https?://", text)
    assert "<script" not in text and "<link" not in text and "@import" not in text and "url(" not in text
    parsed = _Page(text)
    assert parsed.images and all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
                                 for src in parsed.images)
    assert path.stat().st_size < 3_000_000


def test_a_run_without_ground_truth_shows_labels_disagreements_and_training(run_no_gt, tmp_path):
    text = build_report(run_no_gt, tmp_path / "r.html").read_text()
    parsed = _Page(text)
    assert "no-gt" in parsed.ids and "No ground truth was given" in text
    assert "ap-table" not in parsed.ids and "score-table" not in parsed.ids
    cards = parsed.cards["disagreement-cards"]
    assert len(cards) == 6 and all("teacher IoU" not in c for c in cards)
    assert parsed.cards["dropped-cards"]
    assert "training curves" in text and not re.search(r"https?://", text)


def test_without_ground_truth_the_student_is_set_beside_its_teacher_on_pool_images(run_real_no_gt):
    from afss.io.coco import read_coco

    sample = read_coco(run_real_no_gt / "students" / "pool_sample.json")  # the final student's own labels
    assert len(sample.images) == POOL_IMAGES  # a pool smaller than the sample: all of it
    refined = read_coco(run_real_no_gt / "distill" / "round-1" / "refined.json")
    kept = {im.file_name for im in refined.images if im.instances}
    text = (run_real_no_gt / "report.html").read_text()  # written by the run itself
    parsed = _Page(text)
    cards = parsed.cards["disagreement-cards"]
    assert len(cards) == POOL_IMAGES and all("teacher IoU" not in c for c in cards)
    decisions = [c["filter"] for c in cards]
    assert sum(d == "kept for training" for d in decisions) == len(kept) == POOL_IMAGES // 2  # keep_top 0.5
    assert all(d == "kept for training" or d.startswith("dropped: ") for d in decisions)
    labelled = sum(1 for im in sample.images if im.instances)
    assert sum(c["student score"] != "-" for c in cards) == labelled
    assert "Not available" not in text and "No stage has predictions" not in text
    assert "missing" not in parsed.ids  # no val predictions are expected without ground truth: none listed as absent
    assert "score histograms" in parsed.alts  # the teacher's and the student's scores on the sample


def test_the_page_of_a_run_without_ground_truth_opens_in_chromium(run_real_no_gt):
    _browser_or_skip()
    check = check_page(run_real_no_gt / "report.html")
    assert check.ok and check.images > POOL_IMAGES and not check.has_ap_table


def test_missing_files_are_listed_and_absent_metrics_are_scored_by_the_report(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, symlinks=True)
    (run / "metrics" / "refined.json").unlink()
    (run / "students" / "round-1.json").unlink()
    (run / "distill" / "round-1" / "train" / "results.csv").unlink()
    (run / "config.yaml").write_text("note: <script>alert('x')</script> & more\n")
    text = build_report(run).read_text()  # the default output: RUN/report.html
    parsed = _Page(text)
    assert "missing" in parsed.ids
    for gone in ("students/round-1.json", "distill/round-1/train/results.csv", "metrics/refined.json"):
        assert gone in text, gone
    rows = json.loads((run_dir / "metrics" / "refined.json").read_text())["rows"]
    segm = next(r for r in rows if (r["protocol"], r["iou_type"], r["category"]) == ("coco", "segm", "all"))
    assert parsed.cells[("refined", "coco-segm-ap")] == _pct(segm["ap"])
    student = json.loads((run_dir / "metrics" / "student-round-1.json").read_text())["rows"][0]
    assert parsed.cells[("student-round-1", f"{student['protocol']}-{student['iou_type']}-ap")] == _pct(student["ap"])
    assert "Not available" in text  # its predictions are gone: no disagreement gallery, its metrics file stays
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in text and "<script" not in text


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "nope", "no such folder"),
    (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "is a file"),
    (lambda p: (p / "data").mkdir() or p, "not an afss run folder"),
])
def test_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys, make, message):
    target = make(tmp_path)
    assert main(["-q", "report", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("afss: error: ") and err.count("\n") == 1 and message in err, err
    with pytest.raises(AfssError, match=message):
        build_report(target)


def test_the_report_opens_in_chromium_without_errors_requests_or_broken_images(run_dir, tmp_path, capsys):
    _browser_or_skip()
    out, shot = tmp_path / "report.html", tmp_path / "report.png"
    assert main(["-q", "report", str(run_dir), "--out", str(out), "--screenshot", str(shot)]) == 0
    assert "0 console errors, 0 network requests" in capsys.readouterr().err
    check = check_page(out)
    assert check.console == () and check.requests == ()
    assert check.images == len(_Page(out.read_text()).images) > 10
    assert check.images_failed == 0 and check.has_ap_table and check.ok
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_page_without_ground_truth_opens_in_chromium_too(run_no_gt, tmp_path):
    _browser_or_skip()
    check = check_page(build_report(run_no_gt, tmp_path / "r.html"))
    assert check.ok and check.images > 5 and not check.has_ap_table


def test_the_browser_check_sees_requests_console_errors_and_broken_images(tmp_path):
    """The check above can fail: a page that calls out, logs an error and shows a missing image."""
    _browser_or_skip()
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="http://127.0.0.1:9/x.png"><img src="missing.png">'
                   '<script>console.error("boom")</script></body></html>')
    check = check_page(bad)
    assert "http://127.0.0.1:9/x.png" in check.requests and any(r.endswith("/missing.png") for r in check.requests)
    assert any("boom" in m for m in check.errors)
    assert check.images == 2 and check.images_failed == 2 and not check.has_ap_table and not check.ok


def test_disagreement_is_one_minus_the_top1_iou():
    import numpy as np

    from afss.report.gallery import disagreement
    from afss.types import ImageLabels, Instance

    def square(x0: int, side: int = 10, masked: bool = True) -> Instance:
        mask = np.zeros((32, 32), bool)
        mask[0:side, x0:x0 + side] = True
        inst = Instance.from_mask(mask)
        return inst if masked else inst.replace(rle=None)

    image = ImageLabels("a.png", 32, 32)
    assert disagreement(image, None, None) == 0.0
    assert disagreement(image, square(0), None) == 1.0 and disagreement(image, None, square(0)) == 1.0
    assert disagreement(image, square(0), square(0)) == 0.0
    assert disagreement(image, square(0), square(5)) == pytest.approx(1 - 50 / 150)  # masks overlap by half
    assert disagreement(image, square(0, masked=False), square(5)) == pytest.approx(1 - 50 / 150)  # boxes
    assert disagreement(image, square(0), square(20)) == 1.0


def test_stages_come_from_the_files_when_run_json_has_no_order(tmp_path):
    from afss.report.run_folder import RunFolder

    for name in ("teacher/val_labels.json", "students/round-2.json", "students/round-10.json", "upper_bound/val.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    run = RunFolder.open(tmp_path)
    assert [s.name for s in run.stages] == ["teacher", "student-round-2", "student-round-10", "upper-bound"]
    assert [s.upper_bound for s in run.stages] == [False, False, False, True]
    assert ("run.json", "the run's stages, order, timings, versions and models") in run.missing
    (tmp_path / "run.json").write_text('{"order": ["teacher", "student-round-3", "bogus"]}')
    run = RunFolder.open(tmp_path)
    assert [s.name for s in run.stages] == ["teacher", "student-round-3"]
    assert {p for p, _ in run.missing} == {"run.json"}  # no ground truth: no stage's val predictions are expected
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "val_gt.json").write_text("{}")  # a scored run: each stage's predictions belong there
    run = RunFolder.open(tmp_path)
    assert {p for p, _ in run.missing} == {"run.json", "students/round-3.json"}


def test_the_rounds_table_says_what_each_student_trained_with():
    """The config may say recipe auto and epochs null; the table shows what train.json says trained."""
    from afss.report.build import _trained_line

    record = {"recipe": "ultralytics", "start_agreement": 0.5567, "config": {"recipe": "ultralytics", "epochs": 25}}
    assert _trained_line(record) == "ultralytics, 25 epochs (start agrees 0.56)"
    assert _trained_line({"config": {"recipe": "finetune", "epochs": 5}}) == "finetune, 5 epochs"  # an older record
    assert _trained_line({"config": {"recipe": "box", "epochs": 1}}) == "box, 1 epoch"
    assert _trained_line(None) == "-"


def test_the_rounds_table_shows_each_rounds_label_free_quality_and_the_chosen_one(run_dir, tmp_path):
    """Two judged rounds in distill.json (here the fixture's round, recorded twice): each one's quality,
    and the round whose student is student.pt marked, once."""
    import shutil

    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    record = json.loads((run / "distill" / "distill.json").read_text())
    first = record["rounds"][0]
    record["rounds"] = [{**first, "quality": 0.4321, "chosen": False},
                        {**first, "round": 2, "quality": 0.5678, "chosen": True}]
    (run / "distill" / "distill.json").write_text(json.dumps(record))
    text = build_report(run, tmp_path / "report.html").read_text(encoding="utf-8")
    table = text[text.index('id="rounds-table"'):]
    table = table[:table.index("</table>")]
    assert "0.4321" in table and "0.5678" in table and "label-free quality" in table
    assert table.count("(chosen)") == 1 and "2 (chosen)" in table


def test_a_resumed_trainings_repeated_epoch_is_one_point_of_its_curve(tmp_path):
    """Ultralytics writes the epoch a training resumed from again: the curve went back and forth."""
    from afss.student.train import read_results_columns, read_results_csv

    csv = tmp_path / "results.csv"
    csv.write_text("  epoch, metrics/mAP50-95(M), lr/pg0\n1, 0.10, 0.01\n2, 0.20, 0.01\n2, 0.25, x\n3, 0.30, 0.01\n")
    cols = read_results_columns(csv)
    assert cols["epoch"] == [1.0, 2.0, 3.0]
    assert cols["metrics/mAP50-95(M)"] == [0.10, 0.25, 0.30]  # the later row of epoch 2
    assert cols["lr/pg0"][0] == 0.01 and cols["lr/pg0"][1] != cols["lr/pg0"][1]  # a cell that is no number: NaN
    assert read_results_columns(tmp_path / "absent.csv") == {}
    assert read_results_csv(csv)["metrics/mAP50-95(M)"] == 0.30  # what train.json records: the last epoch
