"""benchmarks/loso.py: the leave-one-source-out fit recovers what the IoU depends on, keeps the
render settings never tuned on out of every fit, and a tiny run reports every held-out source."""

from __future__ import annotations

import json

import numpy as np
import pytest

from afss.evaluate.score_quality import spearman
from afss.types import ImageLabels
from tests.project_scripts import load_script


@pytest.fixture(scope="module")
def loso():
    return load_script("benchmarks/loso.py", "loso_benchmark")


def _analysed(loso, rng, dataset, n, weights, groups):
    cues = loso.CONFIDENCE_CUES
    out = []
    for k in range(n):
        x = np.r_[1.0, rng.normal(size=len(cues) - 1)]
        iou = 1 / (1 + np.exp(-x @ weights))
        out.append(loso.Analysed(dataset, dict(groups), ImageLabels(f"{dataset}{k}.png", 8, 8, image_id=k + 1),
                                 x, None, float(iou)))
    return out


def test_fit_recovers_the_weights_of_the_chosen_cues(loso):
    rng = np.random.default_rng(0)
    true = np.zeros(len(loso.CONFIDENCE_CUES))
    true[[0, 1, 3]] = (-0.5, 1.5, -1.0)  # bias, stability, agreement
    images = (_analysed(loso, rng, "synth", 400, true, {"setting": "clean", "family": "tango"})
              + _analysed(loso, rng, "spark", 100, true, {"spacecraft": "soho"}))
    w = loso.fit_calibration(images, ("bias", "stability", "agreement"), l2=0.0)
    assert w[[0, 1, 3]] == pytest.approx(true[[0, 1, 3]], abs=1e-3)  # exact logistic targets: exact weights
    assert not w[[2, 4, 5, 6, 7, 8, 9]].any()  # the cues left out get no weight
    shrunk = loso.fit_calibration(images, ("bias", "stability", "agreement"))  # the default L2 pulls cues to 0
    assert 0 < abs(shrunk[1]) < abs(w[1]) and 0 < abs(shrunk[3]) < abs(w[3])


def test_logistic_fit_weighs_each_set_by_its_share(loso):
    rng = np.random.default_rng(2)
    sets = []
    for slope in (2.0, -1.0):  # two sets that disagree on the cue
        x = np.c_[np.ones(200), rng.normal(size=200)]
        sets.append((x, 1 / (1 + np.exp(-slope * x[:, 1]))))
    alone = loso.logistic_fit(sets[:1], l2=0.0)
    assert loso.logistic_fit(sets, l2=0.0, weights=[1.0, 0.0]) == pytest.approx(alone, abs=1e-6)
    assert loso.logistic_fit(sets, l2=0.0, weights=[2.0, 2.0]) == pytest.approx(loso.logistic_fit(sets, l2=0.0))
    leaning = loso.logistic_fit(sets, l2=0.0, weights=[3.0, 1.0])
    assert alone[1] > leaning[1] > loso.logistic_fit(sets, l2=0.0)[1]  # between the first alone and equal shares


def test_tiny_run_holds_out_every_source(loso, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it renders into runs/bench/loso_data
    out = tmp_path / "loso.json"
    fitted_on, fit = [], loso.fit_calibration
    monkeypatch.setattr(loso, "fit_calibration", lambda images, cues: fitted_on.append(images) or fit(images, cues))
    assert loso.main(["--n", "6", "--spark", "none", "--confidences", "8 cues (shipped set),agreement only",
                      "--refines", "vote", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    held = {(r["axis"], r["source"]) for r in result["rows"]}
    assert {("synth domain", d) for d in ("clean", "earth", "harsh")} <= held
    assert {("never tuned on", s) for s in ("dim", "sensor")} <= held
    for row in result["rows"]:
        assert row["images"] >= 1 and 0.0 <= row["confidences"]["agreement only"]["raw_ap"] <= 1.0
        assert set(row["refined"]["vote"]["cuts"]) == {"score >= 0.6", "top 50%", "auto"}
    assert result["summary"]["refines"]["vote"]["sources"] == len(result["rows"])
    assert "| never tuned on: sensor |" in (tmp_path / "loso.md").read_text()
    # the perfect confidence's ceiling: 30 % kept, counted in the summary and shown in the table
    assert result["auto_keep"] == [0.3, 0.5]  # the bound the auto column used
    for row in result["rows"]:
        vote = row["refined"]["vote"]
        assert vote["perfect"]["kept"] == pytest.approx(0.3, abs=1 / row["images"] + 1e-9)
    perfect = sum(loso._reachable(r["refined"]["vote"], "perfect") for r in result["rows"])
    assert result["summary"]["refines"]["vote"]["bar_reachable_by_a_perfect_confidence"] == perfect
    assert "a perfect confidence's 30 %" in (tmp_path / "loso.md").read_text()
    # the settings never tuned on are in no fit, and no fit holds the source it is judged on
    assert fitted_on and not any(im.groups.get("setting") in ("dim", "sensor") for fold in fitted_on for im in fold)
    assert not any(im.groups.get("setting") == "clean" for im in fitted_on[0])  # the first fold holds out clean


def test_options_are_chosen_without_the_source_they_are_judged_on(tmp_path, monkeypatch):
    """benchmarks/loso_options.py: a grid of photometric options; each held-out source gets the
    combination best on the others (ties to the defaults); the grid must hold the defaults."""
    options = load_script("benchmarks/loso_options.py", "loso_options_benchmark")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "opts.json"
    assert options.main(["--n", "5", "--spark", "none", "--grid", "group_frac=0.04,0.08", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["default"] == "group_frac=0.04"
    assert {r["source"] for r in result["rows"]} >= {"clean", "earth", "harsh", "dim", "sensor"}
    for row in result["rows"]:
        assert row["chosen"] in ("group_frac=0.04", "group_frac=0.08") and 0.0 <= row["ap_chosen"] <= 1.0
    composed = result["composed"]["afss synth, tuned domains (by domain)"]
    assert composed["images"] == 15 and 0.0 <= composed["ap_default"] <= 1.0
    with pytest.raises(SystemExit, match="must hold the defaults"):
        options.main(["--n", "5", "--spark", "none", "--grid", "group_frac=0.05", "--out", str(out)])


def test_the_auto_cuts_bound_is_chosen_without_the_held_out_source(loso):
    """Each held-out source gets the upper bound that meets the bar on most *other* sources (ties to the
    larger bound), and is judged with it; a source that alone favours a bound cannot choose it."""
    def row(name, ap, grid):
        return {"axis": "synth domain", "source": name,
                "refined": {"vote": {"ap": ap, "auto_grid": {u: {"kept": k, "ap_kept": a} for u, (k, a) in grid.items()}}}}

    good_at_half = {"0.5": (0.5, 0.5), "0.8": (0.8, 0.35)}  # raw 0.3: +20 kept at 0.5, +5 at 0.8
    rows = [row("a", 0.3, good_at_half), row("b", 0.3, good_at_half), row("d", 0.3, good_at_half),
            row("c", 0.3, {"0.5": (0.5, 0.32), "0.8": (0.8, 0.45)})]  # c alone prefers 0.8
    result = loso._loso_auto_keep(rows, "vote")
    assert {k[-1]: v["u"] for k, v in result["per_source"].items()} == {"a": "0.5", "b": "0.5", "d": "0.5", "c": "0.5"}
    assert [v["met"] for v in result["per_source"].values()] == [True, True, True, False]
    assert result["met"] == 3 and result["met_by_u"] == {"0.5": 3, "0.8": 1}
    pair = loso._loso_auto_keep(rows[:1] + rows[3:], "vote")  # a and c: each takes the bound the other meets with
    assert [v["u"] for v in pair["per_source"].values()] == ["0.8", "0.5"]


def test_a_perfect_confidence_keeps_the_labels_closest_to_the_truth(loso):
    """The ceiling no confidence can pass: the 30 % of highest true IoU, whatever the labels' scores."""
    from afss.types import Instance, LabelSet

    truth = [ImageLabels(f"{k}.png", 100, 100, image_id=k + 1, instances=(Instance((0.0, 0.0, 40.0, 40.0)),))
             for k in range(10)]
    held = [loso.Analysed("spark", {"spacecraft": "x"}, t, None, None, 0.0) for t in truth]
    # label k covers the truth's top rows 0..4k+4: its IoU grows with k; scores run the other way
    labels = LabelSet(images=tuple(
        t.replace(instances=(Instance((0.0, 0.0, 40.0, 4.0 * k + 4), score=1.0 - 0.05 * k),)) for k, t in enumerate(truth)),
        categories={1: "spacecraft"}, image_root="/")
    best = loso._perfect(held, labels)
    assert best["kept"] == 0.3
    # kept: IoU 0.8, 0.9, 1.0 -> AP at thresholds 0.50..0.80 all three, 0.85/0.90 two, 0.95 one
    assert best["ap_kept"] == pytest.approx((7 * 1.0 + 2 * (2 / 3) + 1 / 3) / 10, abs=0.02)
    worst, _ = loso.filter_labels(labels, keep_top=0.3)  # the labels' own (reversed) scores keep IoU 0.1-0.3
    names = {im.file_name for im in worst.images if im.instances}
    assert loso._ap(held, worst, names) == 0.0


def test_cue_design_ranks_each_named_cue_against_the_iou(tmp_path):
    """benchmarks/cue_design.py: Spearman of each named cue (and of the score) with the top-1 IoU,
    per design set and group; a cue the labels lack is one clear line."""
    from afss.synth import render_dataset

    design = load_script("benchmarks/cue_design.py", "cue_design_benchmark")
    render_dataset(tmp_path / "scenes", n=12, size=256, domain="clean", seed=0)
    out = tmp_path / "cues.json"
    assert design.main(["--gt", str(tmp_path / "scenes" / "gt.json"), "--cues", "stability,solidity",
                        "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["sets"][str(tmp_path / "scenes" / "gt.json")]
    assert 8 <= entry["images"] <= 12 and set(entry["cues"]) == {"stability", "solidity"}
    assert all(-1.0 <= v <= 1.0 for v in (entry["score"], *entry["cues"].values()))
    assert sum(g["images"] for g in entry["groups"].values()) == entry["images"]  # grouped by family
    with pytest.raises(SystemExit, match="no cue sharpness; they have"):
        design.main(["--gt", str(tmp_path / "scenes" / "gt.json"), "--cues", "sharpness", "--out", str(out)])
    # a cue that never varies ranks nothing (None, not NaN: the JSON stays JSON); --subset keeps one subset
    gt = json.loads((tmp_path / "scenes" / "gt.json").read_text())
    for k, im in enumerate(gt["images"]):
        im.setdefault("afss_meta", {})["subset"] = "dev" if k < 3 else "report"
    (tmp_path / "subsets.json").write_text(json.dumps(gt))
    (tmp_path / "images").symlink_to(tmp_path / "scenes" / "images")
    assert design.main(["--gt", str(tmp_path / "scenes" / "gt.json"), "--gt", str(tmp_path / "subsets.json"),
                        "--subset", "dev", "--cues", "earth", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["sets"][str(tmp_path / "scenes" / "gt.json")]["cues"]["earth"] is None  # clean: no Earth
    assert result["sets"][str(tmp_path / "subsets.json")]["images"] <= 3  # the dev subset alone


@pytest.fixture(scope="module")
def fit_objective():
    return load_script("benchmarks/fit_objective.py", "fit_objective_benchmark")


def test_a_fit_for_the_ranking_within_groups_ignores_what_only_tells_groups_apart(loso, fit_objective):
    """Within each group the IoU follows stability; between groups it follows agreement, which is constant
    inside a group. A fit to the IoU leans on agreement; the pairwise fit within groups does not, ranks
    each group by stability, and its calibrated score still sits at the IoU's level."""
    rng = np.random.default_rng(1)
    cues = loso.CONFIDENCE_CUES
    stab, agree = cues.index("stability"), cues.index("agreement")
    images = []
    for g in range(6):
        for k in range(60):
            x = np.zeros(len(cues))
            x[0], x[stab], x[agree] = 1.0, rng.normal(), g - 2.5 + 0.05 * rng.normal()
            iou = 1 / (1 + np.exp(-(0.8 * x[stab] + 0.9 * (g - 2.5))))
            images.append(loso.Analysed("spark", {"spacecraft": f"craft{g}"},
                                        ImageLabels(f"{g}_{k}.png", 8, 8, image_id=len(images) + 1), x, None, float(iou)))
    cues8 = fit_objective.CUES
    pointwise = loso.fit_calibration(images, cues8)
    within = fit_objective.fit_within(images)
    assert pointwise[agree] > 0.5  # the IoU fit uses the cue that tells the groups apart
    assert abs(within[agree]) < 0.25 * pointwise[agree] and within[stab] > 0.3
    score = 1 / (1 + np.exp(-np.array([im.features for im in images]) @ within))
    for g in range(6):  # each group ranked by stability
        inside = slice(60 * g, 60 * (g + 1))
        assert spearman(score[inside], np.array([im.features[stab] for im in images[inside]])) > 0.99
    assert score.mean() == pytest.approx(np.mean([im.iou for im in images]), abs=0.05)  # calibrated to the IoU


def test_fit_objective_tiny_run_reports_every_source(fit_objective, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "fit.json"
    assert fit_objective.main(["--n", "6", "--spark", "none", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert {r["source"] for r in result["rows"]} >= {"clean", "earth", "harsh", "dim", "sensor"}
    for row in result["rows"]:
        assert set(row["objectives"]) == set(fit_objective.OBJECTIVES)
        for res in row["objectives"].values():
            assert 0.0 <= res["raw_ap"] <= 1.0 and 0.0 <= res["auto"]["kept"] <= 1.0
    summary = result["summary"]
    assert summary["IoU (shipped)"]["worst_raw_ap_delta"] == 0.0
    assert all(s["sources"] == len(result["rows"]) for s in summary.values())
    assert "| fitted for |" in (tmp_path / "fit.md").read_text()


@pytest.fixture(scope="module")
def interaction_fit():
    return load_script("benchmarks/interaction_fit.py", "interaction_fit_benchmark")


def test_an_interaction_model_ranks_what_a_linear_one_cannot(loso, interaction_fit):
    """The IoU follows size where stability is high and the reverse where it is low: the linear fit sees
    nothing to rank by, the size-products model ranks almost perfectly."""
    rng = np.random.default_rng(2)
    cues = loso.CONFIDENCE_CUES
    size, stab = cues.index("log(area_frac)"), cues.index("stability")
    images = []
    for ds in ("synth", "spark"):
        for k in range(300):
            x = np.r_[1.0, rng.normal(size=len(cues) - 1)]
            iou = 1 / (1 + np.exp(-2.0 * x[size] * x[stab]))
            groups = {"setting": "clean", "family": "tango"} if ds == "synth" else {"spacecraft": "soho"}
            images.append(loso.Analysed(ds, groups, ImageLabels(f"{ds}{k}.png", 8, 8, image_id=len(images) + 1),
                                        x, None, float(iou)))
    truth = np.array([im.iou for im in images])
    linear = loso.fit_calibration(images, interaction_fit.CUES)
    assert abs(spearman(np.array([im.features for im in images]) @ linear, truth)) < 0.2
    expand, w = interaction_fit.fit_expanded(images, "size")
    assert spearman(np.array([expand(im.features) for im in images]) @ w, truth) > 0.9
    assert len(expand(images[0].features)) == 1 + 7 + 7  # bias, the seven cues, size times each


def test_interaction_rule_refuses_a_model_that_loses_a_source(interaction_fit):
    def row(source, base_bar, new_bar, new_ap=0.3, new_sp=0.9):
        cell = lambda bar, ap, sp: {"spearman": sp, "raw_ap": ap, "auto": {"bar": bar}}
        return {"source": source, "objectives": {
            "IoU (shipped)": cell(base_bar, 0.3, 0.5),
            "8 cues + all products": cell(new_bar, new_ap, new_sp),
            "8 cues + size products": cell(True, 0.3, 0.9)}}
    rows = [row(f"s{k}", k < 12, k < 15) for k in range(20)]
    verdict = interaction_fit._verdict(rows)
    assert verdict["8 cues + all products"]["passes"] and verdict["8 cues + size products"]["passes"]
    rows[0] = row("s0", True, False)  # still 14 met, but one the shipped fit met is lost
    assert not interaction_fit._verdict(rows)["8 cues + all products"]["passes"]
    rows = [row(f"s{k}", k < 12, True, new_ap=0.28 if k == 3 else 0.3) for k in range(20)]  # 2 AP lost on s3
    assert not interaction_fit._verdict(rows)["8 cues + all products"]["passes"]
