#!/usr/bin/env bash
# Reproduce the shipped hand detector `handrecon-hand-detector` on the CPU (2 cores, about 125 min):
# render synthetic scenes (0-4 hands, photograph backgrounds from tools/fetch_photos.py), train
# configs/detector_cpu_bn.yaml (3500 steps from random weights, the backbone's batch norms
# trained) and continue it with configs/detector_cpu_bn_long.yaml (2500 steps, a cosine from half
# the rate), evaluate on held-out scenes (seed 1000) and, when the benchmark-only extra
# `.[foreign]` is installed, on the foreign scene set (pyrender, photographs never used for
# training); package into src/handrecon/assets/models/handrecon-hand-detector/ (its side head,
# tools/train_side_head.sh, stays).
#   tools/train_detector.sh           # from the repository root; re-running resumes every step
# Environment: PY (default .venv/bin/python), DATA (default .cache/detector), RUN1 and RUN (default
# runs/detector_cpu_bn, runs/detector_cpu_bn_long).
set -euo pipefail
PY=${PY:-.venv/bin/python}
HR="$PY -m handrecon.cli"
DATA=${DATA:-.cache/detector}
RUN1=${RUN1:-runs/detector_cpu_bn}
RUN=${RUN:-runs/detector_cpu_bn_long}
PHOTOS=${PHOTOS:-.cache/photos/train}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
now() { date +%s; }

t0=$(now)
PY=$PY DATA=$DATA PHOTOS=$PHOTOS tools/render_scenes.sh
t1=$(now)
SCENES=(data.train.kwargs.root="$DATA/train" data.val.kwargs.root="$DATA/train")
$HR train configs/detector_cpu_bn.yaml "${SCENES[@]}" --out "$RUN1" --resume auto
$HR train configs/detector_cpu_bn_long.yaml "${SCENES[@]}" train.init_from="$RUN1" --out "$RUN" --resume auto
t2=$(now)
$PY tools/package_detector.py "$RUN" --out "$RUN/packaged"
$HR evaluate-detector --root "$DATA/heldout" --detector "handrecon-hand-detector:$RUN/packaged" --out "$RUN/heldout_metrics.json"
METRICS=(--metrics heldout="$RUN/heldout_metrics.json")
if [ -f "$DATA/foreign/meta.json" ]; then  # rendered by tools/render_scenes.sh when .[foreign] is installed
    $HR evaluate-detector --root "$DATA/foreign" --detector "handrecon-hand-detector:$RUN/packaged" \
        --out "$RUN/foreign_metrics.json"
    METRICS+=(--metrics foreign="$RUN/foreign_metrics.json")
fi
t3=$(now)
$PY tools/scene_training_record.py "$RUN/training.json" --recipe "tools/train_detector.sh (configs/detector_cpu_bn.yaml, then configs/detector_cpu_bn_long.yaml)" \
    --render "$((t1 - t0))" --train "$((t2 - t1))" --evaluate "$((t3 - t2))"
$PY tools/package_detector.py "$RUN" --training "$RUN/training.json" "${METRICS[@]}"
