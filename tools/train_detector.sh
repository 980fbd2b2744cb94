#!/usr/bin/env bash
# Reproduce the shipped hand detector `handrecon-hand-detector` on the CPU (2 cores, <= 150 min):
# render synthetic scenes (0-4 hands, photograph backgrounds from tools/fetch_photos.py), train
# configs/detector_cpu.yaml, evaluate on held-out scenes (seed 1000) and, when the benchmark-only
# extra `.[foreign]` is installed, on the foreign scene set (pyrender, photographs never used for
# training); package into src/handrecon/assets/models/handrecon-hand-detector/.
#   tools/train_detector.sh           # from the repository root; re-running resumes every step
# Environment: PY (default .venv/bin/python), DATA (default .cache/detector), RUN (default runs/detector_cpu).
set -euo pipefail
PY=${PY:-.venv/bin/python}
HR="$PY -m handrecon.cli"
DATA=${DATA:-.cache/detector}
RUN=${RUN:-runs/detector_cpu}
PHOTOS=${PHOTOS:-.cache/photos/train}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
now() { date +%s; }

t0=$(now)
PY=$PY DATA=$DATA PHOTOS=$PHOTOS tools/render_scenes.sh
t1=$(now)
$HR train configs/detector_cpu.yaml data.train.kwargs.root="$DATA/train" data.val.kwargs.root="$DATA/train" \
    --out "$RUN" --resume auto
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
$PY tools/scene_training_record.py "$RUN/training.json" --recipe "tools/train_detector.sh (configs/detector_cpu.yaml)" \
    --render "$((t1 - t0))" --train "$((t2 - t1))" --evaluate "$((t3 - t2))"
$PY tools/package_detector.py "$RUN" --training "$RUN/training.json" "${METRICS[@]}"
