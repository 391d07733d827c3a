#!/usr/bin/env bash
# `make demo`: every stage that exists so far, on generated data, ending in one AP table.
#   synth (images + exact ground truth) -> label (photometric teacher, no weights needed)
#   -> refine (TTA identity+vflip, Weighted Boxes Fusion, keep score >= 0.6) -> eval (COCO + paper AP)
set -euo pipefail
OUT=${1:-demo-run}
N=${DEMO_N:-200}
AFSS=${AFSS:-.venv/bin/afss}

rm -rf "$OUT"   # a demo always starts from scratch; real runs resume instead
$AFSS synth --domain mixed --n "$N" --size 512 --seed 0 --out "$OUT/data"
$AFSS label --teacher photometric --coco "$OUT/data/gt.json" --out "$OUT/labels.json"
$AFSS refine --teacher photometric --tta identity,vflip --labels "$OUT/labels.json" \
    --min-score 0.6 --out "$OUT/refined.json"
echo
echo "== AP (%) of the teacher's labels and of the refined + filtered labels; images without a label count as misses"
$AFSS eval --gt "$OUT/data/gt.json" --pred "$OUT/labels.json" --pred "$OUT/refined.json" \
    --preview "$OUT/preview.png"
echo
echo "== the same on the images each file labels: the filter trades images for precise pseudo-labels"
$AFSS eval --gt "$OUT/data/gt.json" --pred "$OUT/labels.json" --pred "$OUT/refined.json" \
    --only-labelled --protocol coco
echo
echo "Look at $OUT/preview.png: ground truth green, teacher labels red, refined labels blue; IoU (score) on top."
