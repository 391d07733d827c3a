"""`afss run`: the config (defaults < file < --set, checked key by key), the runner end to end on a
tiny synth config, resuming a killed run, and the ready configs."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from afss.errors import AfssError
from afss.run import RunConfig, default_yaml, load_config, run_pipeline
from afss.run.config import config_from_dict, config_to_dict
from afss.run.runner import check_run_folder

if importlib.util.find_spec("ultralytics") is None:  # not importorskip: afss imports it offline, see student/env.py
    pytest.skip("the student extra is not installed: pip install 'afss[student]'", allow_module_level=True)

CONFIGS = Path(__file__).resolve().parents[1] / "afss" / "configs"

TINY = """\
data: {source: synth, n: 12, size: 96, seed: 3}
eval: {source: synth, n: 6, size: 96, seed: 4}
student: {init: yolo11n-seg.yaml, epochs: 1, imgsz: 64, batch: 4}
distill: {rounds: 2}
report: false
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- the config ---------------------------------------------------------------------------------------

def test_defaults_then_file_then_overrides(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", "student: {epochs: 7}\nrefine: {min_score: auto}\n"),
                      overrides=["student.epochs=3", "teacher.options={k_grow: 2.5}", "eval.iou_types=bbox"])
    assert cfg.student.epochs == 3  # --set beats the file
    assert cfg.student.imgsz == RunConfig().student.imgsz  # untouched keys keep their defaults
    assert cfg.refine.min_score == "auto"
    assert cfg.teacher.options == {"k_grow": 2.5}
    assert cfg.eval.iou_types == ["bbox"]


def test_relative_roots_are_taken_from_the_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    cfg = load_config(write(tmp_path / "sub" / "c.yaml",
                            "data: {source: images, root: ../imgs}\neval: {source: null}\n"))
    assert cfg.data.root == str(tmp_path / "imgs")


@pytest.mark.parametrize(("text", "overrides", "message"), [
    ("student: {epoch: 5}\n", [], r"c\.yaml: unknown key 'student\.epoch' \(did you mean 'student\.epochs'\?\)"),
    ("studnet: {epochs: 5}\n", [], r"unknown key 'studnet' \(did you mean 'student'\?\)"),
    ("student: {epochs: five}\n", [], r"c\.yaml: student\.epochs: expected a whole number or null, got 'five'"),
    ("student: {epochs: 2.5}\n", [], r"student\.epochs: expected a whole number or null, got 2\.5"),
    ("distill: {finetune: 1}\n", [], r"distill\.finetune: expected true or false, got 1"),
    ("teacher: {name: grounded-sam}\n", [], r"teacher\.name: unknown value 'grounded-sam' \(did you mean 'grounded-sam2'\?\)"),
    ("refine: {min_score: 1.5}\n", [], r"refine\.min_score: expected a number in \[0, 1\], auto or null"),
    ("distill: {student_min_score: best}\n", [], r"distill\.student_min_score: expected a number in \[0, 1\], auto"),
    ("student: {recipe: gentle}\n", [], r"c\.yaml: student\.recipe: expected auto, finetune, heads, box or ultralytics, got 'gentle'"),
    ("student: {recipe: heads, init: yolo11n-seg.yaml}\n", [], (r"c\.yaml: student\.recipe: recipe heads keeps the start's "
     r"features .* needs a pretrained --init \(synth or a \.pt\), not yolo11n-seg\.yaml")),
    ("eval: {seed: 0}\n", [], r"eval\.seed: 0 is data\.seed too"),
    ("data: {seed: 900000}\n", [], r"data\.seed: 900000 renders the scenes the student trains on"),
    ("data: {source: spark}\n", [], r"data\.root: source spark needs a root"),
    ("", ["data.size=10"], r"data\.size must be a whole number in \[32, 8192\], got 10"),
    ("eval: {domain: harshh}\n", [], r"eval\.domain: unknown value 'harshh' \(did you mean 'harsh'\?\)"),
    ("- a list\n", [], r"expected a mapping of sections"),
    ("data: [1, 2\n", [], r"c\.yaml: not valid YAML at line"),
    ("", ["student.epochs"], r"--set 'student\.epochs': expected SECTION\.KEY=VALUE"),
    ("", ["student=3"], r"student: expected a mapping of keys, got 3"),
])
def test_bad_config_one_line_naming_the_key(tmp_path, text, overrides, message):
    with pytest.raises(AfssError, match=message) as e:
        load_config(write(tmp_path / "c.yaml", text), overrides=overrides)
    assert "\n" not in str(e.value)


def test_missing_dataset_root_fails_before_any_work(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", "data: {source: spark, root: nowhere, split: train}\n"))
    out = tmp_path / "run"
    with pytest.raises(AfssError, match=r"data\.root: .*nowhere: no such folder"):
        run_pipeline(cfg, out, progress=False)
    assert not out.exists()  # nothing was read or rendered, and no empty run folder is left behind


def test_a_run_folder_inside_the_image_folder_it_reads_is_refused(tmp_path):
    """Its plots and renders would be read as images of the pool by the next run or afss label."""
    import numpy as np

    from afss.io.images import save_image

    save_image(tmp_path / "pool" / "a.png", np.zeros((8, 8, 3), np.uint8))
    cfg = load_config(write(tmp_path / "c.yaml", f"data: {{source: images, root: {tmp_path / 'pool'}}}\n"))
    with pytest.raises(AfssError, match=r"run: --out is inside data\.root .*pool, whose every image is read"):
        run_pipeline(cfg, tmp_path / "pool" / "run", progress=False)
    assert not (tmp_path / "pool" / "run").exists()
    # afss run --check says so too (it passed, and the run then refused)
    from afss.cli import main

    argv = ["run", str(tmp_path / "c.yaml"), "--check"]
    assert main([*argv, "--out", str(tmp_path / "pool" / "run")]) == 2
    assert main([*argv, "--out", str(tmp_path / "elsewhere")]) == 0 and not (tmp_path / "elsewhere").exists()
    (tmp_path / "a_file").write_text("")
    assert main([*argv, "--out", str(tmp_path / "a_file" / "run")]) == 2  # checked before any download


def test_default_yaml_documents_every_key_and_loads_back(tmp_path):
    text = default_yaml()
    body = [line for line in text.splitlines() if line.startswith("  ")]
    assert all(" # " in line for line in body)  # a comment on every key
    assert len(body) == sum(len(v.__dataclass_fields__) for v in RunConfig().__dict__.values()
                            if hasattr(v, "__dataclass_fields__"))
    assert load_config(write(tmp_path / "d.yaml", text)) == RunConfig()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_ready_configs_load_and_check(path):
    cfg = load_config(path)  # every key known and typed; paths aside (the datasets are not here)
    assert cfg.refine.tta == "identity,vflip"
    if path.name != "demo.yaml" and path.name != "spark2021.yaml":  # the paper's settings
        assert (cfg.teacher.name, cfg.refine.min_score, cfg.data.n) == ("grounded-sam2", 0.6, 500)
        assert cfg.student.init == "yolo11n-seg.pt"  # COCO-pretrained, as the paper's student (GPU, internet)
        assert cfg.distill.rescore is None  # the paper's student scores itself
    else:
        assert cfg.student.init == "synth"  # CPU configs: the shipped start, no download
    assert cfg.eval.source is not None


def test_demo_config_pool_and_scored_scenes_are_disjoint():
    cfg = load_config(CONFIGS / "demo.yaml")
    assert (cfg.data.source, cfg.eval.source) == ("synth", "synth") and cfg.data.seed != cfg.eval.seed
    assert cfg.teacher.name == "photometric" and cfg.student.device == "cpu"
    # make demo shows the defaults: the student, its distillation and the cut as afss distill takes them
    default = RunConfig()
    assert (cfg.student, cfg.distill, cfg.refine) == (default.student, default.distill, default.refine)


# -- the runner -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    config = write(folder / "tiny.yaml", TINY)
    out = folder / "uninterrupted"
    result = run_pipeline(load_config(config), out, progress=False)
    return config, out, result


def test_run_writes_every_stage_and_a_table(tiny_run):
    _, out, result = tiny_run
    record = json.loads((out / "run.json").read_text())
    assert record["stage"] == "run" and record["config"]["student"]["epochs"] == 1
    assert {"data", "teacher", "refined", "distill", "students", "eval"} <= set(record["stages"])
    assert all(s["done"] and s["seconds"] >= 0 for s in record["stages"].values())
    assert record["versions"]["afss"] and record["models"]["teacher"]["name"] == "photometric"
    assert (out / "config.yaml").is_file() and (out / "distill" / "student.pt").is_file()
    pool = json.loads((out / "data" / "pool.json").read_text())
    val = json.loads((out / "data" / "val_gt.json").read_text())
    assert len(pool["images"]) == 12 and pool["annotations"] == []  # the pool is unlabeled
    assert len(val["images"]) == 6 and len(val["annotations"]) >= 6
    assert pool["info"]["image_root"] != val["info"]["image_root"]  # other seeds, other folders
    stages = record["order"]
    assert stages[:3] == ["teacher", "refined", "student-round-1"]
    metrics = json.loads((out / "metrics.json").read_text())
    for stage in stages:
        assert (out / "metrics" / f"{stage}.json").is_file()
        assert 0.0 <= metrics[stage]["coco_segm_ap"] <= 1.0
    # the printed table shows every stage with its AP in percent
    lines = {line.split()[0]: line for line in result.table.splitlines()[3:]}
    assert list(lines) == stages
    assert f"{100 * metrics['teacher']['coco_segm_ap']:.1f}" in lines["teacher"].split()
    # students were scored on the val images, masks at the original size
    pred = json.loads((out / "students" / "round-1.json").read_text())
    assert [im["width"] for im in pred["images"]] == [96] * 6


def test_rerun_skips_finished_stages_and_refuses_another_config(tiny_run, tmp_path):
    config, out, result = tiny_run
    before = (out / "distill" / "student.pt").stat().st_mtime_ns
    again = run_pipeline(load_config(config), out, progress=False)
    assert set(again.seconds) <= {"eval"}  # only the (cheap) scoring runs again
    assert again.table == result.table
    assert (out / "distill" / "student.pt").stat().st_mtime_ns == before
    with pytest.raises(AfssError, match=r"another config \(student\.epochs 1, now 2\)"):
        run_pipeline(load_config(config, overrides=["student.epochs=2"]), out, progress=False)


def test_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(AfssError, match="not empty and is not an afss run"):
        run_pipeline(config_from_dict({"report": False}), tmp_path, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_killed_run_rerun_gives_the_uninterrupted_result(tiny_run, tmp_path):
    config, reference, _ = tiny_run
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "afss.cli", "-q", "run", str(config), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    record = out / "run.json"
    try:  # kill it once the teacher stages are done, i.e. in the middle of the distillation
        while time.monotonic() < deadline and proc.poll() is None:
            if record.is_file() and "refined" in json.loads(record.read_text() or "{}").get("stages", {}):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "metrics.json").exists()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    assert (out / "table.txt").read_text() == (reference / "table.txt").read_text()


def test_cli_run_prints_the_table_and_bad_config_is_one_line(tiny_run, tmp_path):
    config, out, result = tiny_run
    done = subprocess.run([sys.executable, "-m", "afss.cli", "-q", "run", str(config), "--out", str(out)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert result.table in done.stdout
    bad = write(tmp_path / "bad.yaml", "student: {imgsize: 320}\n")
    done = subprocess.run([sys.executable, "-m", "afss.cli", "run", str(bad), "--out", str(tmp_path / "r")],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"afss: error: {bad}: unknown key 'student.imgsize' "
                                   "(did you mean 'student.imgsz'?)")
    assert not (tmp_path / "r").exists()


def test_a_pretrained_start_is_scored_before_any_pseudo_label(tiny_run, tmp_path):
    config, reference, _ = tiny_run
    start = reference / "distill" / "student.pt"
    result = run_pipeline(load_config(config, overrides=[f"student.init={start}", "distill.rounds=1"]),
                          tmp_path / "run", progress=False)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["order"][:4] == ["teacher", "refined", "student-start", "student-round-1"]
    assert (tmp_path / "run" / "students" / "start.json").is_file()
    # the start is the reference run's final student: the same predictions, the same AP
    final = json.loads((reference / "run.json").read_text())["order"][-1]
    ref = json.loads((reference / "metrics.json").read_text())[final]
    assert result.metrics["student-start"]["coco_segm_ap"] == pytest.approx(ref["coco_segm_ap"])


# -- ready configs by name ------------------------------------------------------------------------------

def test_a_ready_config_loads_by_name_with_roots_from_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config("spark2024", overrides=["student.epochs=3"])
    assert cfg.student.epochs == 3 and cfg.teacher.name == "grounded-sam2"
    assert cfg.data.root == str(tmp_path / "data" / "spark2024")  # not inside the installed package
    (tmp_path / "spark2024").write_text("data: {source: synth, n: 7}\n")  # a file of that name wins
    assert load_config("spark2024").data.n == 7


def test_an_unknown_config_name_lists_the_ready_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AfssError, match=r"sprak2024: no such config file, and not a ready config \(demo, .*"
                                        r"did you mean 'spark2024'"):
        load_config("sprak2024")


def test_config_show_prints_the_ready_config_and_list_names_each(capsys):
    from afss.cli import main

    assert main(["config", "show", "demo"]) == 0
    assert capsys.readouterr().out == (CONFIGS / "demo.yaml").read_text()
    assert main(["config", "list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    assert main(["config", "show"]) == 2 and "give a NAME" in capsys.readouterr().err


def test_min_score_null_means_no_fixed_cut(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", "refine: {min_score: null, keep_top: 0.5}\n"))
    assert (cfg.refine.min_score, cfg.refine.score_cut, cfg.refine.keep_top) == (None, 0.0, 0.5)
    with pytest.raises(AfssError, match=r"refine.min_score: expected a number in \[0, 1\], auto or null, got 'high'"):
        load_config(write(tmp_path / "d.yaml", "refine: {min_score: high}\n"))


def test_a_ready_config_is_found_by_name_beside_a_dataset_folder_of_that_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spark2024").mkdir()  # the user's dataset, named like the config
    assert load_config("spark2024").teacher.name == "grounded-sam2"
    from afss.cli import main

    assert main(["config", "show", "spark2024"]) == 0


def test_check_refuses_unknown_teacher_options_and_fetches_no_start(tmp_path, monkeypatch, capsys):
    from afss.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", "demo", "--set", "teacher.options={bogus: 1}", "--check"]) == 2
    assert "teacher.options: unknown photometric teacher option 'bogus'" in capsys.readouterr().err
    assert main(["run", "demo", "--set", "student.init=yolo11n-seg.pt", "--check"]) == 0
    err = capsys.readouterr().err
    assert "student.init yolo11n-seg.pt is not here yet; the run downloads it from https://" in err
    assert list(tmp_path.iterdir()) == []  # a check fetches nothing
    # what a run met only after its data stage, or its teacher's labels, is met by --check (a probe)
    assert main(["run", "demo", "--set", "refine.tta=identity,vfilp", "--check"]) == 2
    assert "refine.tta: unknown TTA view 'vfilp'" in capsys.readouterr().err
    assert main(["run", "demo", "--set", "student.extra={lr00: 0.1}", "--check"]) == 2
    assert "student.extra: 'lr00' is not a valid YOLO argument. Similar arguments are i.e. ['lr0=0.01']" in \
        capsys.readouterr().err
    assert main(["run", "demo", "--set", "student.extra={augmentations: [], lr0: 0.02}", "--check"]) == 0  # review
    capsys.readouterr()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "gt.json").write_text(json.dumps({  # a COCO file copied away from its images
        "images": [{"id": 1, "file_name": "0.png", "height": 8, "width": 8}], "annotations": [],
        "categories": [{"id": 1, "name": "spacecraft"}]}))
    assert main(["run", "demo", "--set", "eval.source=coco", "--set", "eval.root=kept/gt.json", "--set", "eval.domain=null",
                 "--check"]) == 2
    err = capsys.readouterr().err
    assert "eval.root: " in err and "kept/gt.json: its images are not where it says, e.g. " in err
    assert "--image-root" not in err  # afss run has no such option


def test_every_teacher_is_named_in_the_config_docs():
    from afss.run.config import TeacherSection
    from afss.teachers import TEACHERS

    doc = next(f for f in dataclasses.fields(TeacherSection) if f.name == "name").metadata["doc"]
    assert all(t in doc for t in TEACHERS if t != "student"), doc


def test_auto_is_box_from_the_shipped_start_however_it_is_spelt():
    from afss.student.recipe import resolve_recipe
    from afss.student.train import SHIPPED_SYNTH_WEIGHTS

    assert resolve_recipe("auto", "synth") == resolve_recipe("auto", str(SHIPPED_SYNTH_WEIGHTS)) == "box"
    assert resolve_recipe("auto", "yolo11n-seg.pt") == "finetune" and resolve_recipe("auto", "x-seg.yaml") == "ultralytics"


def test_the_defaults_listed_in_docs_run_md_are_afss_run_defaults():
    """docs/run.md lists every key with its default: the listing is what `afss run --defaults` prints."""
    from afss.run.config import default_yaml

    text = (Path(__file__).resolve().parents[1] / "docs" / "run.md").read_text()
    start = text.index("```yaml\n# afss run config: every key with its default") + len("```yaml\n")
    assert text[start:text.index("```", start)] == default_yaml()


def test_a_multi_round_run_of_an_afss_before_choose_kept_its_last_round(tmp_path):
    """run.json written before ``distill.choose`` existed: with several rounds its student.pt is the
    last round's, so it continues only as ``choose: last``; a one-round run continues either way."""
    from afss.run.runner import _Record

    for rounds in (2, 1):
        out = tmp_path / f"r{rounds}"
        out.mkdir()
        old = config_to_dict(config_from_dict({"distill": {"rounds": rounds}}))
        del old["distill"]["choose"]
        (out / "run.json").write_text(json.dumps({"stage": "run", "config": old, "stages": {"data": {"done": True}}}))
        today = config_from_dict({"distill": {"rounds": rounds}})
        if rounds > 1:
            with pytest.raises(AfssError, match=r"another config \(distill\.choose 'last', now 'quality'\)"):
                _Record(out, today)
            _Record(out, config_from_dict({"distill": {"rounds": rounds, "choose": "last"}}))
        else:
            _Record(out, today)


def test_a_run_that_finished_no_stage_starts_over_with_the_new_config(tmp_path):
    """Review: a run that failed before finishing any stage (a bad value) refused the fixed config."""
    from afss.run.runner import _Record

    (tmp_path / "run.json").write_text(json.dumps({"stage": "run", "stages": {"data": {"done": False}},
                                                   "config": config_to_dict(config_from_dict({"data": {"size": 256}}))}))
    record = _Record(tmp_path, config_from_dict({}))
    assert record.data["config"]["data"]["size"] == 512 and not record.done("data")
    # a stage finished: refused, nothing of it thrown away (a distillation's rounds would be), and
    # run --check --out says so before anything runs
    (tmp_path / "run.json").write_text(json.dumps({"stage": "run", "stages": {"data": {"done": True}},
                                                   "config": config_to_dict(config_from_dict({"data": {"size": 256}}))}))
    (tmp_path / "distill").mkdir()
    (tmp_path / "distill" / "kept.txt").write_text("round 1's work")
    with pytest.raises(AfssError, match=r"another config \(data\.size 256, now 512\)"):
        _Record(tmp_path, config_from_dict({}))
    assert (tmp_path / "distill" / "kept.txt").is_file()
    with pytest.raises(AfssError, match=r"another config \(data\.size 256, now 512\)"):  # run --check --out too
        check_run_folder(config_from_dict({}), tmp_path)


def test_the_scored_images_leave_out_pool_images_reached_another_way(tmp_path):
    """data: a folder of images, eval: the COCO file of those same images. Compared by the files they
    name, the pool's images are left out of the scoring, as where both sections name one source."""
    from afss.io.coco import read_coco
    from afss.synth.dataset import render_dataset

    render_dataset(tmp_path / "scenes", n=8, size=96, seed=5)
    config = write(tmp_path / "c.yaml", f"""\
data: {{source: images, root: {tmp_path / 'scenes' / 'images'}, n: 5, seed: 1}}
eval: {{source: coco, root: {tmp_path / 'scenes' / 'gt.json'}, n: null}}
student: {{init: yolo11n-seg.yaml, epochs: 1, imgsz: 64, batch: 4}}
distill: {{rounds: 1}}
report: false
""")
    out = tmp_path / "run"
    run_pipeline(load_config(config), out, progress=False)
    pool, val = read_coco(out / "data" / "pool.json"), read_coco(out / "data" / "val_gt.json")
    files = lambda labels: {os.path.realpath(labels.image_path(im)) for im in labels.images}
    assert len(files(pool)) == 5 and len(files(val)) == 3 and not files(pool) & files(val)


def test_copies_of_pool_images_are_pool_images(tmp_path):
    """A folder of the pool's images copied elsewhere was scored as held out (a probe of afss run)."""
    import shutil

    from afss.run.runner import _in_pool
    from afss.synth.dataset import render_dataset

    scenes = render_dataset(tmp_path / "scenes", n=4, size=64, seed=5)
    shutil.copytree(tmp_path / "scenes", tmp_path / "copies")
    copies = scenes.replace(image_root=str(tmp_path / "copies"))
    pool = scenes.replace(images=scenes.images[:2])
    assert _in_pool(pool, copies) == {im.file_name for im in scenes.images[:2]}
    assert _in_pool(pool, scenes) == {im.file_name for im in scenes.images[:2]}  # the same files, as before


def test_one_override_given_as_text_is_one_override():
    """It was iterated character by character: "--set 's': expected SECTION.KEY=VALUE"."""
    assert load_config("demo", overrides="student.epochs=1").student.epochs == 1
