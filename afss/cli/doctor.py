"""``afss doctor``: one screen saying what this install can do, and the command that adds each missing piece."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser(
        "doctor", help="what this install can do: versions, CPU, CUDA, extras, cached teacher weights, browser",
        description="Versions, CPU threads, CUDA devices and their memory, the optional extras present "
                    "(vlm, student, salient, ray, report), the teachers' weights in the local Hugging Face cache "
                    "and the salient teacher's fetched ONNX model, "
                    "HF_HUB_OFFLINE, and Chromium for afss report --screenshot; each missing piece with the one "
                    "command that adds it. Reads files and metadata only: no network, no model loaded.",
    ).set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from afss.doctor import diagnose

    print("\n".join(diagnose().lines()))
    return 0
