#!/usr/bin/env bash
# The scene sets the hand detector's stages 3-5 add (shared by tools/train_detector.sh and
# tools/train_box_verifier.sh): 6000 scenes over the wider photograph pool with clutter (seed 13),
# 3000 close-ups (seed 14), 2500 square crops (seed 15), and the held-out close-ups (seed 2014) and
# crops (seed 1000). Fetches the wider pool first (tools/fetch_photos.py --opencv, --lomiri,
# --cutouts). Re-running skips what is already rendered.
#   tools/render_detector_sets.sh     # Environment: PY, DATA (default .cache/detector), PHOTOS
set -euo pipefail
PY=${PY:-.venv/bin/python}
HR="$PY -m handrecon.cli"
DATA=${DATA:-.cache/detector}
PHOTOS=${PHOTOS:-.cache/photos/train}
POOL=(--backgrounds "$PHOTOS")
for extra in opencv lomiri cutouts; do
    [ -f ".cache/photos/$extra/SOURCES.md" ] || $PY tools/fetch_photos.py "--$extra" --out ".cache/photos/$extra"
    POOL+=(--backgrounds ".cache/photos/$extra")
done
WIDE=(--workers 2 --quiet "${POOL[@]}" --set "clutter=[0, 4]")
$HR synth --preset scene --image-size 288x384 --set "num_hands=[0, 4]" "${WIDE[@]}" --num 6000 --seed 13 --out "$DATA/train_lomiri"
$HR synth --preset scene --image-size 288x384 --set "num_hands=[1, 2]" --set "hand_size=[0.4, 0.9]" "${WIDE[@]}" \
    --num 3000 --seed 14 --out "$DATA/train_closeup"
$HR synth --preset crop --image-size 224x224 "${WIDE[@]}" --num 2500 --seed 15 --out "$DATA/train_crops"
$HR synth --preset scene --image-size 288x384 --set "num_hands=[1, 2]" --set "hand_size=[0.4, 0.9]" --workers 2 --quiet \
    --backgrounds "$PHOTOS" --num 200 --seed 2014 --out "$DATA/heldout_closeup"
$HR synth --preset crop --num 1000 --seed 1000 --workers 2 --quiet --out "$DATA/heldout_crops"
