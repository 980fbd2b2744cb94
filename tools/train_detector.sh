#!/usr/bin/env bash
# Reproduce the shipped hand detector `handrecon-hand-detector` on the CPU (2 cores, about 4 h
# alone: over the 150-minute budget; every step resumes): render synthetic scenes (0-4 hands,
# photograph backgrounds from tools/fetch_photos.py), train configs/detector_cpu_bn.yaml (3500
# steps from random weights, the backbone's batch norms trained), continue it with
# configs/detector_cpu_bn_long.yaml (2500 steps, a cosine from half the rate), render three more
# sets (a wider photograph pool with clutter, close-ups, square crops) and continue with
# configs/detector_cpu_lomiri.yaml (3000 steps), configs/detector_cpu_lomiri2.yaml (1500) and
# configs/detector_cpu_lomiri3.yaml (1500), each from the best checkpoint of the stage before;
# evaluate on held-out scenes (seed 1000), held-out close-up scenes (seed 2014) and crops (seed
# 1000) and, when the benchmark-only extra `.[foreign]` is installed, on the foreign scene and crop
# sets (pyrender, photographs never used for training); package into
# src/handrecon/assets/models/handrecon-hand-detector/ (its side head, tools/train_side_head.sh,
# stays).
#   tools/train_detector.sh           # from the repository root; re-running resumes every step
# Environment: PY (default .venv/bin/python), DATA (default .cache/detector), RUN1 ... RUN (default
# runs/detector_cpu_bn, runs/detector_cpu_bn_long, runs/detector_cpu_lomiri, runs/detector_cpu_lomiri2,
# runs/detector_cpu_lomiri3).
set -euo pipefail
PY=${PY:-.venv/bin/python}
HR="$PY -m handrecon.cli"
DATA=${DATA:-.cache/detector}
RUN1=${RUN1:-runs/detector_cpu_bn}
RUN2=${RUN2:-runs/detector_cpu_bn_long}
RUN3=${RUN3:-runs/detector_cpu_lomiri}
RUN4=${RUN4:-runs/detector_cpu_lomiri2}
RUN=${RUN:-runs/detector_cpu_lomiri3}
PHOTOS=${PHOTOS:-.cache/photos/train}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
now() { date +%s; }

t0=$(now)
PY=$PY DATA=$DATA PHOTOS=$PHOTOS tools/render_scenes.sh
PY=$PY DATA=$DATA PHOTOS=$PHOTOS tools/render_detector_sets.sh  # stages 3-5's sets
t1=$(now)
SCENES=(data.train.kwargs.root="$DATA/train" data.val.kwargs.root="$DATA/train")
$HR train configs/detector_cpu_bn.yaml "${SCENES[@]}" --out "$RUN1" --resume auto
$HR train configs/detector_cpu_bn_long.yaml "${SCENES[@]}" train.init_from="$RUN1" --out "$RUN2" --resume auto
MIX="$DATA/train_lomiri, $DATA/train_closeup, $DATA/train_crops"
$HR train configs/detector_cpu_lomiri.yaml data.train.kwargs.root="[$DATA/train, $MIX]" data.val.kwargs.root="$DATA/train" \
    train.init_from="$RUN2" --out "$RUN3" --resume auto
$HR train configs/detector_cpu_lomiri2.yaml data.train.kwargs.root="[$DATA/train, $DATA/train, $MIX]" \
    data.val.kwargs.root="$DATA/train" train.init_from="$RUN3" --out "$RUN4" --resume auto
$HR train configs/detector_cpu_lomiri3.yaml data.train.kwargs.root="[$DATA/train, $DATA/train, $DATA/train, $MIX]" \
    data.val.kwargs.root="$DATA/train" train.init_from="$RUN4" --out "$RUN" --resume auto
t2=$(now)
$PY tools/package_detector.py "$RUN" --out "$RUN/packaged"
METRICS=()
for set in heldout:heldout closeup:heldout_closeup own_crops:heldout_crops; do  # KEY:folder under $DATA
    $HR evaluate-detector --root "$DATA/${set#*:}" --detector "handrecon-hand-detector:$RUN/packaged" --out "$RUN/${set%%:*}_metrics.json"
    METRICS+=(--metrics "${set%%:*}=$RUN/${set%%:*}_metrics.json")
done
if [ -f "$DATA/foreign/meta.json" ]; then  # rendered by tools/render_scenes.sh when .[foreign] is installed
    $HR evaluate-detector --root "$DATA/foreign" --detector "handrecon-hand-detector:$RUN/packaged" \
        --out "$RUN/foreign_metrics.json"
    METRICS+=(--metrics foreign="$RUN/foreign_metrics.json")
    [ -f .cache/foreign/meta.json ] || $PY benchmarks/foreign_testset.py --out .cache/foreign --num 300
    $HR evaluate-detector --root .cache/foreign --detector "handrecon-hand-detector:$RUN/packaged" --out "$RUN/foreign_crops_metrics.json"
    METRICS+=(--metrics foreign_crops="$RUN/foreign_crops_metrics.json")
fi
t3=$(now)
$PY tools/scene_training_record.py "$RUN/training.json" --recipe "tools/train_detector.sh (configs/detector_cpu_bn.yaml, detector_cpu_bn_long.yaml, detector_cpu_lomiri.yaml, detector_cpu_lomiri2.yaml, detector_cpu_lomiri3.yaml)" \
    --render "$((t1 - t0))" --train "$((t2 - t1))" --evaluate "$((t3 - t2))"
$PY tools/package_detector.py "$RUN" --training "$RUN/training.json" "${METRICS[@]}"
