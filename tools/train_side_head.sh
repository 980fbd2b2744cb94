#!/usr/bin/env bash
# Reproduce the shipped side head of the hand detector (handrecon-hand-detector/side_head/) on the
# CPU (2 cores, about 75 min of training): render the detector's scenes and two more scene sets
# (fewer forearms; 1-2 large hands), train configs/side_head_cpu.yaml from the shipped crop
# model's first stack and continue it with configs/side_head_cpu_stage2.yaml, evaluate the
# detector with it on held-out scenes (seed 1000) and, when the benchmark-only extra `.[foreign]`
# is installed, on the foreign scene set, and package it (float16) into the detector folder.
#   tools/train_side_head.sh          # from the repository root; re-running resumes every step
# Environment: PY (default .venv/bin/python), DATA (default .cache/detector), RUN (default
# runs/side_head_cpu), DETECTOR (the detector folder to add it to; default the shipped one).
set -euo pipefail
PY=${PY:-.venv/bin/python}
HR="$PY -m handrecon.cli"
DATA=${DATA:-.cache/detector}
RUN=${RUN:-runs/side_head_cpu}
PHOTOS=${PHOTOS:-.cache/photos/train}
DETECTOR=${DETECTOR:-src/handrecon/assets/models/handrecon-hand-detector}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

PY=$PY DATA=$DATA PHOTOS=$PHOTOS tools/render_scenes.sh
SCENES=(--preset scene --image-size 288x384 --workers 2 --backgrounds "$PHOTOS" --quiet)
$HR synth "${SCENES[@]}" --set "num_hands=[0, 4]" --set p_forearm=0.4 --num 3000 --seed 3000 --out "$DATA/train_b"
$HR synth "${SCENES[@]}" --set "num_hands=[1, 2]" --set "hand_size=[0.35, 0.6]" --num 3000 --seed 11 \
    --out "$DATA/large_hands"
ROOTS=(data.train.kwargs.root="[$DATA/train, $DATA/train_b, $DATA/large_hands]" data.val.kwargs.root="$DATA/train")
$HR train configs/side_head_cpu.yaml "${ROOTS[@]}" --out "$RUN" --resume auto
$HR train configs/side_head_cpu_stage2.yaml "${ROOTS[@]}" train.init_from="$RUN" --out "${RUN}_stage2" --resume auto
RUN="${RUN}_stage2"

# Evaluate the detector with the new side head (a copy of the folder), then add it to the folder.
TRIAL="$RUN/detector_with_side_head"
rm -rf "$TRIAL" && cp -r "$DETECTOR" "$TRIAL" && rm -rf "$TRIAL/side_head"
$PY tools/package_model.py "$RUN" --name side_head --out-root "$TRIAL" --max-mb 8
$HR evaluate-detector --root "$DATA/heldout" --detector "handrecon-hand-detector:$TRIAL" --out "$RUN/heldout_metrics.json"
METRICS=(--metrics heldout="$RUN/heldout_metrics.json")
if [ -f "$DATA/foreign/meta.json" ]; then
    $HR evaluate-detector --root "$DATA/foreign" --detector "handrecon-hand-detector:$TRIAL" --out "$RUN/foreign_metrics.json"
    METRICS+=(--metrics foreign="$RUN/foreign_metrics.json")
fi
$PY tools/package_model.py "$RUN" --name side_head --out-root "$DETECTOR" --max-mb 8 "${METRICS[@]}"
