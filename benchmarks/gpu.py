"""Teacher and student throughput on a GPU: full-size architectures with random weights, no download.

    .venv/bin/python benchmarks/gpu.py --out benchmarks/results/gpu_h100.json      # on a CUDA machine

The three VLM teachers are built from the real transformers classes at their published sizes, with
random weights (`full_size_models`: Grounding DINO Swin-T with BERT-base, SAM 2.1 Hiera-L, OWLv2-B/16
at 960 px, SAM 3), saved with ``save_pretrained`` and loaded through afss's own ``from_pretrained``
path, so nothing is downloaded and pre- and post-processing are timed with the models. On ``--n``
afss synth scenes of ``--image-size`` (1024²) each teacher labels every image:

* images/s at batch 1 and at every batch size in ``--batches`` until the GPU runs out of memory
  (the best batch is reported), in fp32 and bf16, with the peak GPU memory of each;
* whether the labels of every batch equal those of one image at a time: the same number of
  instances per image, boxes within ``--box-tol`` px and masks with IoU ≥ ``--iou-tol``, per dtype
  (random weights make near-ties of scores, so a flipped top-1 choice counts as a difference);
* the student's seconds per epoch at ``--student-imgsz`` (640) on ``--student-n`` synth scenes, with
  the default recipe (``auto`` from the synth start: on these scenes, its own renderer, ``box``) and
  with Ultralytics' (every layer learns).

Random weights time the same work as real ones (the work does not depend on the values), except that
thresholds decide how many boxes reach the segmenter: ``box_threshold`` 0 and top-1 make it one per
image, as real weights on these one-target scenes do.

``--tiny`` builds the small configurations of ``tests/tiny_models.py`` instead, so the script runs on
a CPU in a test (``tests/test_benchmark_gpu.py``); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TEACHERS = ("grounded-sam2", "owlv2-sam", "sam3")


def full_size_models(folder: Path, device: str) -> dict[str, Path]:
    """Random-weight checkpoints of the published architectures, saved under ``folder``: kind -> path.
    Tokenizers are the tiny ones of the tests (their vocabularies only index the embeddings)."""
    import torch
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessor,
        Owlv2Processor,
        Sam2Config,
        Sam2HieraDetConfig,
        Sam2ImageProcessor,
        Sam2Model,
        Sam2Processor,
        Sam2VisionConfig,
        Sam3Config,
        Sam3ImageProcessor,
        Sam3Model,
        Sam3Processor,
    )

    from tests.tiny_models import tiny_bert_tokenizer, tiny_clip_tokenizer

    def save(kind: str, model_cls: Any, config: Any, processor: Any) -> Path:
        path = folder / kind
        if not (path / "config.json").is_file():
            torch.manual_seed(0)
            with torch.device(device):  # random initialisation of ~1e9 parameters is slow on a CPU
                model = model_cls(config)
            model.save_pretrained(path)
            processor.save_pretrained(path)
            del model
        return path

    clip = tiny_clip_tokenizer()
    ids = clip.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"])
    clip_ids = {"bos_token_id": ids[0], "eos_token_id": ids[1], "pad_token_id": ids[1]}
    # sam2.1_hiera_l.yaml: embed_dim 144, heads 2, stages (2, 6, 36, 4), global attention blocks
    # (23, 33, 43), window spec (8, 4, 16, 8), background window 7x7
    hiera_l = Sam2HieraDetConfig(hidden_size=144, num_attention_heads=2, blocks_per_stage=[2, 6, 36, 4],
                                 embed_dim_per_stage=[144, 288, 576, 1152], num_attention_heads_per_stage=[2, 4, 8, 16],
                                 window_size_per_stage=[8, 4, 16, 8], global_attention_blocks=[23, 33, 43],
                                 window_positional_embedding_background_size=[7, 7], image_size=[1024, 1024])
    sam2 = Sam2Config(vision_config=Sam2VisionConfig(backbone_config=hiera_l,
                                                     backbone_channel_list=[1152, 576, 288, 144]))
    owlv2 = Owlv2Config(text_config={**clip_ids}, vision_config={"image_size": 960, "patch_size": 16})
    sam3 = Sam3Config()  # its defaults are SAM 3's sizes; only the tiny tokenizer's special ids change
    for key, value in clip_ids.items():
        setattr(sam3.text_config, key, value)
    return {
        # GroundingDinoConfig's defaults are Swin-T with BERT-base: grounding-dino-tiny
        "grounding-dino": save("grounding-dino", GroundingDinoForObjectDetection, GroundingDinoConfig(),
                               GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(),
                                                      tokenizer=tiny_bert_tokenizer())),
        "sam2": save("sam2", Sam2Model, sam2, Sam2Processor(image_processor=Sam2ImageProcessor())),
        "owlv2": save("owlv2", Owlv2ForObjectDetection, owlv2,
                      Owlv2Processor(image_processor=Owlv2ImageProcessor(), tokenizer=clip)),
        "sam3": save("sam3", Sam3Model, sam3, Sam3Processor(image_processor=Sam3ImageProcessor(), tokenizer=clip)),
    }


def tiny_models(folder: Path, device: str) -> dict[str, Path]:
    from tests.tiny_models import tiny_model_dir

    return {kind: tiny_model_dir(kind, folder) for kind in ("grounding-dino", "sam2", "owlv2", "sam3")}


def teacher_options(name: str, models: dict[str, Path]) -> dict[str, Any]:
    if name == "grounded-sam2":
        return {"detector": str(models["grounding-dino"]), "segmenter": str(models["sam2"])}
    if name == "owlv2-sam":
        return {"detector": str(models["owlv2"]), "segmenter": str(models["sam2"])}
    return {"model": str(models["sam3"])}


def compare(a: list, b: list, box_tol: float, iou_tol: float) -> dict[str, Any]:
    """Labels of the same images (lists of instances per image): equal within the tolerances?"""
    import numpy as np

    same_count, box_diff, min_iou = True, 0.0, 1.0
    for x, y in zip(a, b, strict=True):
        if len(x) != len(y):
            same_count = False
            continue
        for i, j in zip(x, y, strict=True):
            box_diff = max(box_diff, float(np.abs(np.subtract(i.box_xyxy, j.box_xyxy)).max()))
            if i.mask is not None and j.mask is not None:
                union = np.logical_or(i.mask, j.mask).sum()
                min_iou = min(min_iou, float(np.logical_and(i.mask, j.mask).sum() / union) if union else 1.0)
    return {"same_count": same_count, "max_box_diff_px": round(box_diff, 3), "min_mask_iou": round(min_iou, 4),
            "equal": same_count and box_diff <= box_tol and min_iou >= iou_tol}


def bench_teacher(name: str, models: dict[str, Path], images: list, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from afss.teachers import build_teacher

    cuda = args.device.startswith("cuda")
    out: dict[str, Any] = {}
    for dtype in args.dtypes.split(","):
        teacher = build_teacher(name, **teacher_options(name, models), box_threshold=0.0, device=args.device,
                                dtype=dtype, batch_size=1)
        rows, reference = {}, None
        for batch in [int(b) for b in args.batches.split(",")]:
            teacher.batch_size = batch
            try:
                teacher.label(images[:batch])  # warm-up: kernels, caches
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                labels = teacher.label(images)
                if cuda:
                    torch.cuda.synchronize()
            except torch.cuda.OutOfMemoryError:
                rows[batch] = {"oom": True}
                torch.cuda.empty_cache()
                break
            seconds = time.perf_counter() - t0
            row = {"images_per_s": round(len(images) / seconds, 2),
                   "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None}
            if reference is None:
                reference = labels
            else:
                row["vs_batch_1"] = compare(reference, labels, args.box_tol, args.iou_tol)
            rows[batch] = row
            print(f"{name} {dtype} batch {batch}: {row}", file=sys.stderr)
        timed = {b: r for b, r in rows.items() if "images_per_s" in r}
        best = max(timed, key=lambda b: timed[b]["images_per_s"])
        # `dtype` is the segmenter's (SAM 3: the model's); the detector keeps its own, fp32 by default as in
        # the reference, and is recorded so a "bf16" row is not read as a bf16 detector
        out[dtype] = {"detector_dtype": teacher.options.get("detector_dtype"),
                      "batches": rows, "batch_1_images_per_s": timed[1]["images_per_s"] if 1 in timed else None,
                      "best_batch": best, "best_images_per_s": timed[best]["images_per_s"],
                      "batched_equal_one_by_one": all(r.get("vs_batch_1", {"equal": True})["equal"]
                                                      for r in timed.values())}
        del teacher
        if cuda:
            torch.cuda.empty_cache()
    return out


def bench_student(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from afss.student.train import TrainConfig, train_student
    from afss.synth.dataset import render_or_reuse

    scenes = render_or_reuse(work / "student_scenes", n=args.student_n, size=args.student_imgsz, domain="mixed",
                             seed=7100)
    device = "0" if args.device.startswith("cuda") else "cpu"
    out = {}
    for recipe in args.student_recipes.split(","):
        config = TrainConfig(epochs=args.student_epochs, imgsz=args.student_imgsz, batch=args.student_batch,
                             device=device, recipe=recipe, val_fraction=0.1)
        result = train_student(scenes, work / f"student_{recipe}", config, overwrite=True)
        out[recipe] = {"recipe": result.recipe, "seconds_per_epoch": round(result.seconds_per_epoch, 2), "epochs": result.epochs,
                       "train_images": result.dataset.train, "val_images": result.dataset.val}
        print(f"student {recipe}: {out[recipe]}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:1, cpu")
    ap.add_argument("--tiny", action="store_true", help="tiny configurations (a CPU test), not the published sizes")
    ap.add_argument("--teachers", default=",".join(TEACHERS))
    ap.add_argument("--image-size", type=int, default=1024)
    ap.add_argument("--n", type=int, default=32, help="images timed per batch size")
    ap.add_argument("--batches", default="1,2,4,8,16,32", help="batch sizes, increasing; stops at the first OOM")
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--box-tol", type=float, default=1.0, help="px: boxes this close count as equal")
    ap.add_argument("--iou-tol", type=float, default=0.98, help="masks with this IoU count as equal")
    ap.add_argument("--student-n", type=int, default=500, help="synth scenes the student trains on (paper: 500)")
    ap.add_argument("--student-imgsz", type=int, default=640)
    ap.add_argument("--student-epochs", type=int, default=3)
    ap.add_argument("--student-batch", type=int, default=16)
    ap.add_argument("--student-recipes", default="auto,ultralytics", help="empty: skip the student")
    ap.add_argument("--work", default=None, help="models and scenes (default: a temporary folder)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "gpu.json"))
    args = ap.parse_args(argv)

    import torch

    from afss.io.images import load_image
    from afss.synth.dataset import render_or_reuse

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("no CUDA device: pass --device cpu (with --tiny for a quick check)")
    work = Path(args.work or tempfile.mkdtemp(prefix="afss-gpu-bench-"))
    t0 = time.perf_counter()
    models = (tiny_models if args.tiny else full_size_models)(work / "models", args.device)
    scenes = render_or_reuse(work / "scenes", n=args.n, size=args.image_size, domain="mixed", seed=7000)
    images = [load_image(scenes.image_path(im)).rgb for im in scenes.images]
    if args.tiny:  # the tiny Grounding DINO's coarsest level is 1x1 on a square input: GroupNorm needs more
        images = [im[:, : im.shape[1] * 2 // 3] for im in images]
    record: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu",
        "torch": torch.__version__, "tiny": args.tiny, "image_size": args.image_size, "n": args.n,
        "tolerance": {"box_px": args.box_tol, "mask_iou": args.iou_tol}, "build_seconds": None, "teachers": {}}
    record["build_seconds"] = round(time.perf_counter() - t0, 1)
    for name in [t for t in args.teachers.split(",") if t]:
        record["teachers"][name] = bench_teacher(name, models, images, args)
    if args.student_recipes:
        record["student"] = {"imgsz": args.student_imgsz, "scenes": args.student_n,
                             **bench_student(work, args)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    for name, by_dtype in record["teachers"].items():
        for dtype, r in by_dtype.items():
            print(f"{name:<14} {dtype}: {r['batch_1_images_per_s']} img/s at batch 1, {r['best_images_per_s']} at "
                  f"batch {r['best_batch']}; batched = one by one: {r['batched_equal_one_by_one']}")
    for recipe, r in record.get("student", {}).items():
        if isinstance(r, dict):
            print(f"student {recipe}: {r['seconds_per_epoch']} s/epoch at {args.student_imgsz} px")
    print(f"-> {out}")
    return record


if __name__ == "__main__":
    main()
