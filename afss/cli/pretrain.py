"""``afss pretrain``: render afss synth scenes and train the student on their exact masks."""

from __future__ import annotations

import argparse
import sys
import time

from afss.cli.common import given


def register(subparsers: argparse._SubParsersAction) -> None:
    from afss.student.pretrain import PRETRAIN_CONFIG

    p = subparsers.add_parser(
        "pretrain", help="train the student on rendered synth scenes (exact masks, no annotation) -> a .pt",
        description="Render afss synth scenes of every domain and train the YOLO-seg student on their exact masks; "
                    "the result is the start (--init) that makes training on a few hundred pseudo-labels work. "
                    "Scenes and the training run go to <out stem>.pretrain/ beside --out (a rerun reuses the scenes).",
    )
    p.add_argument("--out", required=True, help="the .pt to write, e.g. student_synth.pt")
    p.add_argument("--n", type=int, default=None, help="scenes (default 1000)")
    p.add_argument("--size", type=int, default=None, help="scene size (default 512)")
    p.add_argument("--domain", default=None, help="synth domain (default mixed: every domain)")
    p.add_argument("--init", default=None, help=f"model config or .pt to start from (default {PRETRAIN_CONFIG.init})")
    p.add_argument("--epochs", type=int, default=None, help=f"epochs (default {PRETRAIN_CONFIG.epochs})")
    p.add_argument("--imgsz", type=int, default=None, help=f"training size (default {PRETRAIN_CONFIG.imgsz})")
    p.add_argument("--batch", type=int, default=None, help=f"batch size (default {PRETRAIN_CONFIG.batch})")
    p.add_argument("--device", default=None, help="cpu (default), 0 / cuda:0")
    p.add_argument("--workers", type=int, default=None, help="synth processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from afss.student.pretrain import PRETRAIN_CONFIG, pretrain_student
    from afss.student.train import resolve_init

    t0 = time.perf_counter()
    config = replace(PRETRAIN_CONFIG, **given(args, "init", "epochs", "imgsz", "batch", "device"))
    resolve_init(config.init)
    out, result = pretrain_student(args.out, config=config, overwrite=args.overwrite,
                                   **given(args, "n", "size", "domain", "workers"))
    print(f"afss pretrain: {result.dataset.train} training scenes (the rest validate), {result.epochs} "
          f"epoch{'' if result.epochs == 1 else 's'}, {result.seconds_per_epoch:.1f} s/epoch, "
          f"val mask mAP50-95 {result.metrics.get('metrics/mAP50-95(M)', float('nan')):.3f}; "
          f"{time.perf_counter() - t0:.0f} s -> {out}", file=sys.stderr)
    return 0
