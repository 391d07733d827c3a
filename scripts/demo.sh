#!/usr/bin/env bash
# `make demo`: the whole pipeline on generated data with one command, `afss run demo` (afss/configs/demo.yaml):
#   synth (300 unlabeled scenes + 100 scored ones) -> label (photometric teacher, no weights needed)
#   -> refine (TTA identity+vflip, Weighted Boxes Fusion, a score cut chosen from the scores)
#   -> distill (the shipped synth-pretrained YOLO11n-seg fine-tuned on the kept pseudo-labels, one round,
#      every setting afss distill's default; its students rescored with the teacher's confidence)
#   -> eval (COCO + paper AP of every stage on the 100 scored scenes) -> report.html
set -euo pipefail
OUT=${1:-demo-run}
AFSS=${AFSS:-.venv/bin/afss}

rm -rf "$OUT"   # a demo always starts from scratch; real runs resume instead
# DEMO_SET="student.epochs=2 data.n=100" make demo   overrides config keys
SETS=()
for kv in ${DEMO_SET:-}; do SETS+=(--set "$kv"); done
$AFSS run demo --out "$OUT" "${SETS[@]}"
