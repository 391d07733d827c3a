"""`build_report`: a run folder -> one self-contained HTML page (see `afss.report`)."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from afss.errors import AfssError
from afss.evaluate.report import percent
from afss.io.atomic import write_text_atomic
from afss.io.outputs import check_output_path
from afss.report import figures
from afss.report.gallery import disagreement_cards, dropped_cards
from afss.report.html import Cell, card_grid, esc, img, page, section, table
from afss.report.run_folder import (
    FILTERED_POOL_FILE,
    POOL_SAMPLE_FILE,
    TEACHER_POOL_FILE,
    RunFolder,
    Stage,
    dumps,
)
from afss.student.train import read_results_columns
from afss.types import LabelSet

__all__ = ["MAX_CARDS", "build_report"]

log = logging.getLogger(__name__)

MAX_CARDS = 24
"""Cards per gallery: enough to see the pattern, few enough to keep the page small."""

METRICS = (("ap", "AP"), ("ap50", "AP50"), ("ap75", "AP75"))
IOU_TYPES = ("segm", "bbox")
PROTOCOLS = (("coco", "COCO (all predictions, maxDets 100)"), ("paper", "paper (top-1 prediction, one target)"))


def build_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 max_cards: int = MAX_CARDS) -> Path:
    """Write the report of the run folder ``run_dir`` as one HTML file and return its path.

    The page holds the AP table per stage, precision–recall curves, the teacher–student
    disagreement gallery, the images round 1's confidence filter dropped, score against IoU, the
    training curves, the config and the timings; images inline, no script, no network. Files of the
    layout that are absent are listed on the page (a run without ground truth has no AP, curves or
    IoU, and says so).

    Args:
        run_dir: the folder `afss run --out` wrote (layout in `afss.report.run_folder`).
        out: the HTML file (default ``run_dir/report.html``), written atomically.
        max_cards: at most this many cards per gallery.

    Raises:
        AfssError: ``run_dir`` is not a run folder, or ``out`` cannot be written.

    Example:
        >>> build_report("runs/demo")  # doctest: +SKIP
        PosixPath('runs/demo/report.html')
    """
    t0 = time.perf_counter()
    run = RunFolder.open(run_dir)
    out = Path(out) if out is not None else run.root / "report.html"
    check_output_path(out, flag="--out", example="report.html", suffixes=(".html", ".htm"))
    text = _Page(run, max_cards).render()
    write_text_atomic(out, text)
    log.debug("report: %d stages, %.0f KB, %.1f s -> %s", len(run.stages), len(text) / 1024,
             time.perf_counter() - t0, out)
    return out


class _Page:
    """The page of one run, section by section; notes about absent files collected on the way."""

    def __init__(self, run: RunFolder, max_cards: int) -> None:
        self.run = run
        self.max_cards = max_cards
        self.notes: list[str] = []
        self.titles = {s.name: s.title for s in run.stages}
        self.gt = run.labels("data/val_gt.json") if run.has_gt else None

    def predictions(self, stage: Stage) -> LabelSet | None:
        return self.run.labels(stage.predictions.relative_to(self.run.root))

    # -- sections ------------------------------------------------------------------------------

    def render(self) -> str:
        parts = [("ap", "AP per stage", self.ap_section), ("pr", "Precision–recall", self.pr_section),
                 ("disagreement", "Teacher vs student", self.disagreement_section),
                 ("dropped", "Dropped by the filter", self.dropped_section),
                 ("scores", "Score vs quality", self.score_section), ("training", "Training", self.training_section),
                 ("run", "Config and timings", self.run_section)]
        bodies = [section(i, title, fn()) for i, title, fn in parts]
        record = self.run.record
        versions = record.get("versions") if isinstance(record.get("versions"), dict) else {}
        subtitle = " · ".join(x for x in (
            str(self.run.root.resolve()), f"afss {versions['afss']}" if "afss" in versions else "",
            "made " + datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")) if x)
        return page(f"afss report: {self.run.root.resolve().name}", subtitle,
                    [(i, title) for i, title, _ in parts], [self.notices(), *bodies])

    def notices(self) -> str:
        out = []
        if not self.run.has_gt:
            out.append('<div class="notice" id="no-gt"><b>No ground truth was given</b> (data/val_gt.json is not '
                       "in the run folder): no AP, no precision–recall curves and no IoU on this page. Shown instead: the "
                       "final student beside its teacher on a sample of the pool, the filter's decision on each "
                       "image, and the training curves.</div>")
        missing = [*self.run.missing, *((n, "") for n in self.notes)]
        problems = self.run.problems
        if missing or problems:
            items = [f"<li><code>{esc(p)}</code>{': ' + esc(why) if why else ''}</li>" for p, why in missing]
            items += [f"<li>unreadable: {esc(p)}</li>" for p in problems]
            out.append(f'<div class="notice" id="missing"><b>Not in the run folder</b> (the page shows what is '
                       f"there):<ul>{''.join(items)}</ul></div>")
        return "\n".join(out)

    def _metrics(self, stage: Stage) -> tuple[dict[tuple[str, str], dict[str, Any]], bool] | None:
        """``{(protocol, iou_type): row}`` of the ``all`` category from metrics/<stage>.json, or
        computed here when that file is absent; the flag says it was computed."""
        data = self.run.json(stage.metrics.relative_to(self.run.root))
        computed = False
        if not isinstance(data, dict):
            pred = self.predictions(stage)
            if pred is None or self.gt is None:
                return None
            from afss.evaluate import evaluate

            try:
                data = evaluate(self.gt, pred).to_json()
            except AfssError as e:
                self.run.problems.append(f"{stage.name}: not scored: {e}")
                return None
            computed = True
            self.notes.append(f"metrics/{stage.name}.json: absent; the report scored {stage.predictions.name} itself")
        rows = data.get("rows") if isinstance(data.get("rows"), list) else []
        found = {(r.get("protocol"), r.get("iou_type")): r for r in rows
                 if isinstance(r, dict) and r.get("category") == "all"}
        return found, computed

    def ap_section(self) -> str:
        if not self.run.has_gt:
            return "<p>No ground truth: nothing to score.</p>"
        scored = [(s, m) for s in self.run.stages if (m := self._metrics(s)) is not None]
        if not scored:
            return "<p>No stage could be scored (no metrics files and no predictions).</p>"
        head = ["stage", "protocol"] + [f"{t} {label}" for t in IOU_TYPES for _, label in METRICS] + \
               ["images", "gt", "pred"]
        group = ('<tr><th class="text" colspan="2"></th>' + "".join(
            f'<th colspan="{len(METRICS)}">{t} (masks)</th>' if t == "segm" else
            f'<th colspan="{len(METRICS)}">{t} (boxes)</th>' for t in IOU_TYPES) + '<th colspan="3">counts</th></tr>')
        rows, classes = [], []
        for protocol, _ in PROTOCOLS:
            block = [(s, m) for s, (m, _c) in scored if any(p == protocol for p, _ in m)]
            best = {}
            for t in IOU_TYPES:
                for key, _ in METRICS:
                    values = [r[key] for s, m in block if not s.upper_bound
                              and (r := m.get((protocol, t))) and r.get(key) is not None]
                    best[(t, key)] = max(values) if values else None
            for s, m in block:
                computed = dict(scored)[s][1]
                row: list[object] = [Cell(s.title + (" *" if computed else ""), attrs={"data-stage": s.name}),
                                     protocol]
                counts = None
                for t in IOU_TYPES:
                    r = m.get((protocol, t))
                    counts = counts or r
                    for key, _ in METRICS:
                        value = None if r is None else r.get(key)
                        is_best = value is not None and value == best[(t, key)] and not s.upper_bound
                        row.append(Cell(percent(value), cls="best" if is_best else "",
                                        attrs={"data-stage": s.name, "data-metric": f"{protocol}-{t}-{key}"}))
                row += [(counts or {}).get(k, "-") for k in ("num_images", "num_gt", "num_pred")]
                rows.append(row)
                classes.append("upper" if s.upper_bound else "")
        lead = (f"AP in percent against data/val_gt.json ({len(self.gt)} images); an "
                "image a stage left without a label (the filter "
                "dropped it, or nothing was found) counts as a miss; bold: the best of the method's stages (the "
                "supervised upper bound, in grey, trains on ground truth and is only a reference).")
        if any(c for _s, (_m, c) in scored):
            lead += " * scored by the report (no metrics file)."
        legend = "Protocols: " + "; ".join(label for _, label in PROTOCOLS) + "."
        return (f'<p class="lead">{esc(lead)}</p>' + table(head, rows, table_id="ap-table", row_classes=classes,
                                                             head_rows=[group]) + f"<p>{esc(legend)}</p>")

    def pr_section(self) -> str:
        if self.gt is None:
            return "<p>No ground truth: no precision–recall curves.</p>"
        from afss.evaluate.curves import pr_curves

        out = []
        for iou_type in IOU_TYPES:
            curves = {}
            for s in self.run.stages:
                pred = self.predictions(s)
                if pred is None:
                    continue
                try:
                    curves[s.name] = pr_curves(self.gt, pred, iou_type=iou_type)
                except AfssError as e:
                    out.append(f"<p>{esc(s.title)}, {iou_type}: {esc(e)}</p>")
            if curves:
                out.append(f"<h3>{iou_type}</h3>" + img(figures.pr_figure(curves, self.titles), "image/png",
                                                        f"{iou_type} precision-recall curves", cls="figure"))
        lead = ("COCO's interpolated precision at 101 recall points (area all, 100 detections per image); the "
                "legend gives the mean of each curve, which is the AP50 (left) and the AP (right) of the table.")
        return f'<p class="lead">{esc(lead)}</p>' + ("\n".join(out) or "<p>No stage has predictions.</p>")

    def disagreement_section(self) -> str:
        teacher_stage = self.run.stage("teacher")
        teacher = self.predictions(teacher_stage) if teacher_stage is not None else None
        student_stage, student = None, None
        for s in reversed(self.run.students()):
            student = self.predictions(s)
            if student is not None:
                student_stage = s
                break
        if teacher is None and student is None and not self.run.has_gt:
            return self._pool_disagreement()
        if teacher is None or student is None:
            what = "the teacher's val labels" if teacher is None else "a student's val predictions"
            return f"<p>Not available: {esc(what)} are not in the run folder.</p>"
        cards, total = disagreement_cards(teacher, student, self.gt, limit=self.max_cards)
        lead = (f"The val images sorted by how much the teacher's top-1 label and the {student_stage.title}'s "
                "top-1 prediction disagree (1 − their mask IoU; 1 where only one labels the image), most first; "
                f"{len(cards)} of {total} shown.")
        return (f'<p class="lead">{esc(lead)}</p>' + _legend(self.gt is not None)
                + card_grid(cards, grid_id="disagreement-cards"))

    def _pool_pair(self) -> tuple[LabelSet, LabelSet] | None:
        """``(teacher, student)`` labels of the pool sample a run without ground truth writes."""
        student = self.run.labels(POOL_SAMPLE_FILE)
        teacher = self.run.labels(TEACHER_POOL_FILE)
        if student is None or teacher is None:
            return None
        return teacher, student

    def _pool_disagreement(self) -> str:
        pair = self._pool_pair()
        if pair is None:
            return (f"<p>Not available: no ground truth, and {esc(POOL_SAMPLE_FILE)} (the final student's labels "
                    f"on a sample of the pool) or {esc(TEACHER_POOL_FILE)} is not in the run folder.</p>")
        teacher, student = pair
        cards, total = disagreement_cards(teacher, student, filtered=self.run.labels(FILTERED_POOL_FILE),
                                          limit=self.max_cards)
        lead = (f"No ground truth, so judge by eye: {total} pool images, spread through the pool, labelled by the "
                "teacher (red; what round 1 trained on if the filter kept it) and by the final student (blue), sorted "
                "by how much their top-1 labels disagree (1 − mask IoU), most first; each card says what the "
                f"confidence filter decided. {len(cards)} of {total} shown.")
        return (f'<p class="lead">{esc(lead)}</p>' + _legend(False)
                + card_grid(cards, grid_id="disagreement-cards"))

    def dropped_section(self) -> str:
        refined = self.run.labels("distill/round-1/refined.json")
        if refined is None:
            return "<p>Not available: distill/round-1/refined.json is not in the run folder.</p>"
        labels = self.run.labels("distill/round-1/labels.json")
        cards, total = dropped_cards(refined, labels, limit=self.max_cards)
        summary = _filter_line(self.run.json("distill/round-1/refined.summary.json"))
        lead = (f"The pool images round 1's confidence filter left without a label, with the reason it gives and "
                f"the teacher's label; the best-scoring (nearly kept) first. {summary} {len(cards)} of {total} shown.")
        if not cards:
            return f'<p class="lead">{esc(lead)}</p><p>The filter dropped no image.</p>'
        return f'<p class="lead">{esc(lead)}</p>' + card_grid(cards, grid_id="dropped-cards")

    def score_section(self) -> str:
        from afss.evaluate.score_quality import score_iou_pairs, score_plot, score_quality

        preds = {s.name: p for s in self.run.stages if (p := self.predictions(s)) is not None}
        if not preds and self.gt is None and (pair := self._pool_pair()) is not None:
            teacher, student = pair  # the pool sample: the teacher's labels of those images, the student's
            names = {im.file_name for im in student.images}
            preds = {"teacher": teacher.replace(images=tuple(im for im in teacher.images if im.file_name in names)),
                     "student (pool sample)": student}
            self.titles.setdefault("teacher", "teacher, pool sample")
            self.titles.setdefault("student (pool sample)", "final student, pool sample")
        if not preds:
            return "<p>No stage has predictions.</p>"
        pairs = {}
        rows = []
        for name, pred in preds.items():
            if self.gt is not None:
                pairs[name] = score_iou_pairs(self.gt, pred)
                q = score_quality(self.gt, pred)
                rows.append([Cell(self.titles[name], attrs={"data-stage": name}), q.n,
                             Cell("-" if math.isnan(q.spearman) else f"{q.spearman:.2f}",
                                  attrs={"data-stage": name, "data-metric": "spearman"}),
                             "-" if math.isnan(q.mean_iou_top_half) else f"{q.mean_iou_top_half:.2f}",
                             "-" if math.isnan(q.mean_iou_bottom_half) else f"{q.mean_iou_bottom_half:.2f}"])
            else:
                scores = [max(i.score for i in im.instances) for im in pred.images if im.instances]
                pairs[name] = np.column_stack([scores, np.full(len(scores), np.nan)]).reshape(-1, 2)
        out = []
        if rows:
            out.append(table(["stage", "images", "Spearman(score, IoU)", "mean IoU, better-scoring half",
                              "mean IoU, the rest"], rows, table_id="score-table"))
            lead = ("Does the confidence track label quality? Per stage, each val image's top-1 score against its IoU "
                    "with the ground truth: Spearman's rank correlation (1: the score ranks labels perfectly), and "
                    "histograms of the scores of good (IoU >= 0.5) and bad labels.")
        else:
            lead = "No ground truth, so no IoU: the histograms show the top-1 scores alone."
        out.append(img(figures.score_histograms(pairs, self.titles), "image/png", "score histograms", cls="figure"))
        if self.gt is not None:
            from afss.evaluate.preview import MAX_PREDICTION_SETS

            shown = dict(list(preds.items())[-MAX_PREDICTION_SETS:])
            rgb = score_plot(self.gt, {self.titles[n]: p for n, p in shown.items()}, size_px=420)
            out.append(img(_png(rgb), "image/png", "score against IoU", cls="figure"))
        return f'<p class="lead">{esc(lead)}</p>' + "\n".join(out)

    def training_section(self) -> str:
        runs: dict[str, dict[str, list[float]]] = {}
        styles: dict[str, str] = {}
        folders = [(f"student, round {k}", f"student-round-{k}", f"distill/round-{k}/train") for k in self.run.rounds()]
        if (self.run.root / "upper_bound" / "train").is_dir() or self.run.stage("upper-bound") is not None:
            folders.append(("upper bound (supervised)", "upper-bound", "upper_bound/train"))
        for label, stage, folder in folders:
            path = self.run.root / folder / "results.csv"
            if not path.is_file():
                if (self.run.root / folder).is_dir() or stage == "upper-bound":
                    self.notes.append(f"{folder}/results.csv: absent; no training curve for {label}")
                continue
            columns = read_results_columns(path)
            if columns:
                runs[label], styles[label] = columns, stage
        out = [self._distill_table()]
        if runs:
            out.append(img(figures.training_figure(runs, styles), "image/png", "training curves", cls="figure"))
        else:
            out.append("<p>No training curves: no results.csv in distill/round-K/train/ or upper_bound/train/.</p>")
        return "\n".join(x for x in out if x)

    def _distill_table(self) -> str:
        record = self.run.json("distill/distill.json")
        rounds = record.get("rounds") if isinstance(record, dict) and isinstance(record.get("rounds"), list) else []
        if not rounds:
            if self.run.rounds():
                self.notes.append("distill/distill.json: absent or without rounds; no per-round record")
            return ""
        rows = []
        for r in rounds:
            if not isinstance(r, dict):
                continue
            k = r.get("round")
            summary = _filter_line(self.run.json(f"distill/round-{k}/refined.summary.json"))
            train = self.run.json(f"distill/round-{k}/train/train.json")
            metrics = train.get("metrics", {}) if isinstance(train, dict) else {}
            agreement, quality = r.get("agreement"), r.get("quality")
            rows.append([f"{k} (chosen)" if r.get("chosen") and len(rounds) > 1 else k,
                         f"{r.get('kept', '-')}/{r.get('images', '-')}", Cell(summary or "-", cls="text"),
                         Cell(_trained_line(train), cls="text"),
                         "-" if agreement is None else f"{agreement:.3f}",
                         "-" if quality is None else f"{quality:.4f}",
                         percent(metrics.get("metrics/mAP50-95(M)")), percent(metrics.get("metrics/mAP50(M)")),
                         r.get("seconds", "-")])
        return ("<h3>Distillation rounds (distill/distill.json)</h3>" + table(
            ["round", "kept / pool", Cell("filter", cls="text"), Cell("trained with", cls="text"),
             "agreement with previous round", "label-free quality",
             "val mask mAP50-95, % (its own split of the pseudo-labels)", "val mask mAP50, %", "seconds"], rows,
            table_id="rounds-table"))

    def run_section(self) -> str:
        record = self.run.record
        out = []
        stages = record.get("stages")
        if isinstance(stages, dict) and stages:
            total = sum(float(v.get("seconds") or 0) for v in stages.values() if isinstance(v, dict))
            rows = []
            for name, v in stages.items():
                v = v if isinstance(v, dict) else {}
                seconds = v.get("seconds")
                share = f"{100 * float(seconds) / total:.0f}%" if isinstance(seconds, (int, float)) and total else "-"
                rows.append([name, "yes" if v.get("done") else "no", "-" if seconds is None else seconds, share])
            rows.append([Cell("total", cls="text"), "", round(total, 2), ""])
            out.append("<h3>Stages (run.json)</h3>" + table(["stage", "done", "seconds", "share"], rows,
                                                             table_id="timings-table"))
        versions, models = record.get("versions"), record.get("models")
        if isinstance(versions, dict) and versions:
            out.append("<h3>Versions</h3>" + table(["package", "version"], list(versions.items())))
        if isinstance(models, dict) and models:
            rows = [[role, Cell(value if isinstance(value, str) else dumps(value, indent=None), cls="text")]
                    for role, value in models.items()]
            out.append("<h3>Models</h3>" + table(["role", Cell("model", cls="text")], rows, table_id="models-table"))
        config = self.run.root / "config.yaml"
        if config.is_file():
            try:
                text = config.read_text(encoding="utf-8", errors="replace")
                out.append(f"<h3>config.yaml</h3><pre id=\"config\">{esc(text)}</pre>")
            except OSError as e:
                self.run.problems.append(f"config.yaml: cannot read ({e.strerror or e})")
        elif isinstance(record.get("config"), dict):
            out.append(f"<h3>Config (run.json; config.yaml is absent)</h3><pre id=\"config\">"
                       f"{esc(dumps(record['config']))}</pre>")
        return "\n".join(out) or "<p>Neither run.json nor config.yaml is in the run folder.</p>"


def _legend(with_gt: bool) -> str:
    items = ([("#00ff00", "ground truth")] if with_gt else []) + [("#ff4040", "teacher top-1"),
                                                                ("#40a0ff", "student top-1")]
    return '<p class="legend">' + "".join(f'<span style="background:{c}"></span>{esc(t)}' for c, t in items) + "</p>"


def _trained_line(train: Any) -> str:
    """``"box, 10 epochs (start agrees 0.79)"``: the recipe a round's student trained with, from its train.json."""
    if not isinstance(train, dict):
        return "-"
    config = train.get("config") if isinstance(train.get("config"), dict) else {}
    recipe, epochs, agreement = train.get("recipe") or config.get("recipe"), config.get("epochs"), train.get("start_agreement")
    line = f"{recipe or '-'}, {epochs} epoch{'' if epochs == 1 else 's'}" if epochs else str(recipe or "-")
    return line + (f" (start agrees {agreement:.2f})" if isinstance(agreement, (int, float)) else "")


def _filter_line(summary: Any) -> str:
    """The refine summary's filter line (`FilterSummary.line`), from its JSON."""
    from afss.refine.filtering import FilterSummary

    f = summary.get("filter") if isinstance(summary, Mapping) else None
    if not isinstance(f, Mapping):
        return ""
    try:
        min_score = f.get("min_score")
        line = FilterSummary(
            images_in=f["images_in"], kept=f["kept"], dropped=f["dropped"], instances_in=f["instances_in"],
            instances_kept=f["instances_kept"], min_score=math.inf if min_score is None else float(min_score),
            top1=f["top1"], min_area_px=f["min_area_px"], score_field=f.get("score_field", "score"),
            mode=f.get("mode", "min_score"), keep_top=f.get("keep_top"), auto_keep=f.get("auto_keep")).line()
        fixed = f.get("mode", "min_score") == "min_score" and min_score is not None  # line() names only other cuts
        return (f"Filter {f.get('score_field', 'score')} >= {min_score:g}: " if fixed else "Filter: ") + line + "."
    except (KeyError, TypeError, ValueError):
        return ""


def _png(rgb: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
