"""Student inference speed on this CPU: PyTorch, ONNX and int8 ONNX, and what int8 costs in AP.

    .venv/bin/python benchmarks/student_speed.py [--weights best.pt --gt gt.json] [--n 60] [--imgsz 512]

Without ``--weights`` an untrained YOLO11n-seg is timed (speed does not depend on the weights; AP
then means nothing and is not reported). With ``--weights`` and ``--gt``, the fp32 and int8 models'
predictions on the ground truth's images are scored (COCO segm and bbox AP), so the int8 cost is
measured, not assumed. Each figure is the median of ``--repeat`` runs over the same ``--n`` images,
through afss's own student path (`afss.student.model.StudentTeacher`: pre- and post-processing
included) and, for ONNX, the bare ``session.run`` too. Prints a table, writes
``runs/bench/student_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None)
    ap.add_argument("--gt", default=None)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "student_speed.json"))
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import numpy as np
    import onnxruntime as ort

    from afss.evaluate import evaluate
    from afss.io.coco import read_coco
    from afss.io.images import load_image
    from afss.label import label_images
    from afss.student.env import ultralytics
    from afss.student.export import export_student, letterbox
    from afss.synth import render_dataset
    from afss.teachers import build_teacher

    work = Path(tempfile.mkdtemp(prefix="afss-student-speed-"))
    if args.gt is not None:
        gt = read_coco(args.gt)
    else:
        gt = render_dataset(work / "data", n=args.n, size=args.imgsz, domain="mixed", seed=3100, overwrite=True)
    gt = gt.replace(images=gt.images[: args.n])
    weights = Path(args.weights) if args.weights else work / "untrained.pt"
    if args.weights is None:
        ultralytics().YOLO("yolo11n-seg.yaml").save(str(weights))
    # int8 calibration on other scenes than the scored ones (seed 3200): statistics, not labels, but kept apart
    render_dataset(work / "calib", n=32, size=args.imgsz, domain="mixed", seed=3200, overwrite=True)
    calib = str(work / "calib" / "images")
    onnx32 = export_student(weights, work / "m.onnx", imgsz=args.imgsz)
    onnx8 = export_student(weights, work / "m8.onnx", imgsz=args.imgsz, int8=True, calib=calib)
    rgbs = [load_image(gt.image_path(im)).rgb for im in gt.images]
    from ultralytics.utils.torch_utils import get_flops

    # the work per image, to set a throughput against what the CPU can do at all (Ultralytics' count)
    gflops = round(get_flops(ultralytics().YOLO(str(weights)).model, args.imgsz), 2)

    rows = []
    for name, path in (("pytorch", weights), ("onnx", onnx32), ("onnx int8", onnx8)):
        student = build_teacher("student", weights=str(path), imgsz=args.imgsz)
        student.label(rgbs[:2])  # warm-up
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for k in range(0, len(rgbs), 8):
                student.label(rgbs[k:k + 8])
            times.append(time.perf_counter() - t0)
        row = {"model": name, "images_per_second": len(rgbs) / statistics.median(times), "file_mb":
               round(Path(path).stat().st_size / 1e6, 1)}
        if path != weights:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            name_in = sess.get_inputs()[0].name
            x = np.concatenate([letterbox(rgbs[0], args.imgsz)])
            sess.run(None, {name_in: x})
            t0 = time.perf_counter()
            for rgb in rgbs:
                sess.run(None, {name_in: letterbox(rgb, args.imgsz)})
            row["session_run_images_per_second"] = len(rgbs) / (time.perf_counter() - t0)
        if args.weights and args.gt:
            pred = label_images(student, gt)
            report = evaluate(gt, pred, protocols=("coco",))
            row.update({f"{r.iou_type}_ap": r.ap for r in report.rows})
        rows.append(row)

    print(f"\nstudent at {args.imgsz}² ({gflops} GFLOPs per image), {len(rgbs)} images, {args.threads} threads, "
          f"median of {args.repeat}{'' if args.weights else ' (untrained weights: speed only)'}\n")
    print("model      file MB  afss img/s  session.run img/s  segm AP  bbox AP")
    print("---------  -------  ----------  -----------------  -------  -------")
    for r in rows:
        sr = r.get("session_run_images_per_second")
        seg, box = r.get("segm_ap"), r.get("bbox_ap")
        print(f"{r['model']:<9}  {r['file_mb']:7.1f}  {r['images_per_second']:10.1f}  "
              f"{(f'{sr:.1f}' if sr else '-'):>17}  {(f'{100 * seg:.1f}' if seg is not None else '-'):>7}  "
              f"{(f'{100 * box:.1f}' if box is not None else '-'):>7}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"imgsz": args.imgsz, "gflops": gflops, "n": len(rgbs), "threads": args.threads,
                                          "weights": args.weights, "rows": rows, "commit": commit}, indent=2))
    best = max(r.get("session_run_images_per_second", r["images_per_second"]) for r in rows)
    print(f"fastest: {best:.1f} img/s = {best * gflops:.0f} GFLOP/s (int8 counted as the same operations)")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
