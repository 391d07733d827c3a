"""``afss export``: a trained student -> ONNX (and int8 ONNX) for deployment."""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="student .pt -> ONNX, optionally int8-quantised (onnxruntime)",
        description="Export a YOLO-seg student to ONNX (fixed input size) for deployment; --int8 also quantises it "
                    "(onnxruntime static quantisation, calibrated on the run's training images or --calib DIR). "
                    "afss predict and the student teacher run both.",
    )
    p.add_argument("--weights", required=True, help="the student, a .pt from afss train")
    p.add_argument("--format", default="onnx", choices=("onnx",), help="export format (onnx)")
    p.add_argument("--imgsz", type=int, default=None,
                   help="input size of the exported model (default: the size the weights were trained at, else 512)")
    p.add_argument("--int8", action="store_true", help="quantise to int8")
    p.add_argument("--calib", metavar="DIR", help="calibration images for --int8 (default: the run's training images)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.errors import AfssError
    from afss.student.export import export_student

    if args.calib is not None and not args.int8:
        raise AfssError("--calib gives int8 calibration images: it needs --int8")
    t0 = time.perf_counter()
    path = export_student(args.weights, args.out, imgsz=args.imgsz, int8=args.int8, calib=args.calib,
                          overwrite=args.overwrite)
    from afss.student.model import onnx_input_size

    size = path.stat().st_size / 1e6
    print(f"afss export: {'int8 ' if args.int8 else ''}ONNX {size:.1f} MB, input {onnx_input_size(path)} px, "
          f"{time.perf_counter() - t0:.1f} s -> {path}", file=sys.stderr)
    return 0
