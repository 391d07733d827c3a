"""The checkpoints afss defaults to, as the hub saves them: a tiny folder with each default's
``config.json`` shape (model type, architectures, nested sub-configs, weight names) loads through
the same ``build_teacher`` path and labels, from Python and from ``afss label``.

The hub layouts: ``facebook/sam3`` is the video model (``sam3_video``: a Sam3VideoConfig whose
``detector_config`` is the image model's), ``facebook/sam2.1-hiera-large`` the SAM 2 video model
(``sam2_video``); the detectors and SAM-HQ are their image classes. The tiny folders are written by
``save_pretrained`` of those very classes (`tests/tiny_models.py`), which is how transformers'
conversion scripts wrote the hub's copies, so the top-level keys are the config classes' own.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from afss.errors import AfssError
from afss.teachers import build_teacher
from afss.teachers.grounded_sam2 import DEFAULT_DETECTOR
from afss.teachers.owlv2_sam import DEFAULT_OWLV2
from afss.teachers.sam3 import DEFAULT_SAM3
from afss.teachers.segmenters import DEFAULT_SEGMENTER
from tests.tiny_models import tiny_model_dir

# tiny kind -> (the hub checkpoint it mirrors, model_type, architectures, the class afss loads it with)
HUB_LAYOUTS = {
    "grounding-dino": (DEFAULT_DETECTOR, "grounding-dino", ["GroundingDinoForObjectDetection"],
                       "GroundingDinoForObjectDetection"),
    "mm-grounding-dino": ("openmmlab-community/mm_grounding_dino_tiny_o365v1_goldg_v3det", "mm-grounding-dino",
                          ["MMGroundingDinoForObjectDetection"], "MMGroundingDinoForObjectDetection"),
    "owlv2": (DEFAULT_OWLV2, "owlv2", ["Owlv2ForObjectDetection"], "Owlv2ForObjectDetection"),
    "sam2-video": (DEFAULT_SEGMENTER, "sam2_video", ["Sam2VideoModel"], "Sam2Model"),
    "sam-hq": ("syscv-community/sam-hq-vit-base", "sam_hq", ["SamHQModel"], "SamHQModel"),
    "sam": ("facebook/sam-vit-base", "sam", ["SamModel"], "SamModel"),
    "sam3-video": (DEFAULT_SAM3, "sam3_video", ["Sam3VideoModel"], "Sam3Model"),
}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("hub_layout")


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    im = rng.integers(0, 40, (80, 120, 3), dtype=np.uint8)
    im[20:45, 40:70] = 220
    return im


def test_every_default_has_a_hub_shaped_folder():
    mirrored = {hub_id for hub_id, *_ in HUB_LAYOUTS.values()}
    assert {DEFAULT_DETECTOR, DEFAULT_OWLV2, DEFAULT_SEGMENTER, DEFAULT_SAM3} <= mirrored


@pytest.mark.parametrize("kind", sorted(HUB_LAYOUTS))
def test_hub_shaped_folder_loads_every_weight(tiny_root, kind):
    _, model_type, architectures, cls_name = HUB_LAYOUTS[kind]
    folder = tiny_model_dir(kind, tiny_root)
    config = json.loads((folder / "config.json").read_text())
    assert (config["model_type"], config["architectures"]) == (model_type, architectures)
    if kind == "sam3-video":  # the hub's facebook/sam3: detector and tracker configs nested
        assert config["detector_config"]["model_type"] == "sam3"
        assert config["tracker_config"]["model_type"] == "sam3_tracker_video"
    _, info = getattr(transformers, cls_name).from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"]  # nothing left at random init


def test_sam3_video_checkpoint_loads_the_same_detector_as_the_image_checkpoint(tiny_root, image):
    video = build_teacher("sam3", model=str(tiny_model_dir("sam3-video", tiny_root)), box_threshold=0.0,
                          device="cpu")
    still = build_teacher("sam3", model=str(tiny_model_dir("sam3", tiny_root)), box_threshold=0.0, device="cpu")
    for a, b in zip(video.model.state_dict().values(), still.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    (a,), (b,) = video.label([image])[0], still.label([image])[0]
    assert a.box_xyxy == b.box_xyxy and a.score == b.score and a.rle == b.rle


@pytest.mark.parametrize("name, options", [
    ("grounded-sam2", {"detector": "grounding-dino", "segmenter": "sam2-video"}),
    ("grounded-sam2", {"detector": "mm-grounding-dino", "segmenter": "sam-hq"}),
    ("grounded-sam2", {"detector": "grounding-dino", "segmenter": "sam"}),
    ("owlv2-sam", {"detector": "owlv2", "segmenter": "sam2-video"}),
    ("sam3", {"model": "sam3-video", "segmenter": "sam2-video"}),
])
def test_hub_shaped_folders_label_and_segment_boxes(tiny_root, image, name, options):
    folders = {k: str(tiny_model_dir(v, tiny_root)) for k, v in options.items()}
    teacher = build_teacher(name, **folders, box_threshold=0.0, device="cpu")
    (inst,) = teacher.label([image], "spacecraft")[0]
    assert inst.mask.shape == image.shape[:2] and 0 <= inst.box_xyxy[0] <= inst.box_xyxy[2] <= 120
    (again,) = teacher.segment_boxes(image, np.array([[40.0, 20.0, 70.0, 45.0]]))
    assert again.mask.shape == image.shape[:2] and 0.0 <= again.scores["mask_score"] <= 1.0


def test_other_model_types_are_refused_in_one_line(tiny_root):
    sam2 = str(tiny_model_dir("sam2-video", tiny_root))
    with pytest.raises(AfssError, match=r"model type 'sam2_video' is not a SAM 3 checkpoint \(expected 'sam3' or "
                                        r"'sam3_video'\)") as err:
        build_teacher("sam3", model=sam2, device="cpu")
    assert "\n" not in str(err.value)
    with pytest.raises(AfssError, match="model type 'sam3_video' is not a box-promptable segmenter"):
        build_teacher("grounded-sam2", detector=str(tiny_model_dir("grounding-dino", tiny_root)),
                      segmenter=str(tiny_model_dir("sam3-video", tiny_root)), device="cpu")
    with pytest.raises(AfssError, match="model type 'owlv2' is not a grounding-dino / mm-grounding-dino detector"):
        build_teacher("grounded-sam2", detector=str(tiny_model_dir("owlv2", tiny_root)), segmenter=sam2, device="cpu")


def test_cli_labels_with_the_sam3_hub_layout(tiny_root, tmp_path, image, capsys):
    from afss.cli import main
    from afss.io.coco import read_coco
    from afss.io.images import save_image

    for k in range(2):
        save_image(tmp_path / "imgs" / f"img{k}.png", image)
    out = tmp_path / "labels.json"
    sam3 = str(tiny_model_dir("sam3-video", tiny_root))
    assert main(["-q", "label", "--images", str(tmp_path / "imgs"), "--out", str(out), "--teacher", "sam3",
                 "--detector", sam3, "--device", "cpu", "--box-threshold", "0"]) == 0
    labels = read_coco(out)
    assert [len(im.instances) for im in labels.images] == [1, 1]
    assert labels.info["teacher_options"]["model"] == sam3
    assert "afss label: 2 images, 2 labelled" in capsys.readouterr().err
