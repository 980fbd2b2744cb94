#!/usr/bin/env bash
# The synthetic scenes the hand detector and HandOS train on (shared by tools/train_detector.sh
# and tools/train_handos.sh): 6000 training scenes (seed 0) and 400 held-out ones (seed 1000),
# 288x384, 0-4 hands, photograph backgrounds from tools/fetch_photos.py; and, when the
# benchmark-only extra `.[foreign]` is installed, the 200 foreign scenes (another renderer,
# photographs never used for training). Re-running skips what is already rendered.
#   tools/render_scenes.sh            # Environment: PY, DATA (default .cache/detector), PHOTOS
set -euo pipefail
PY=${PY:-.venv/bin/python}
DATA=${DATA:-.cache/detector}
PHOTOS=${PHOTOS:-.cache/photos/train}
[ -f "$PHOTOS/SOURCES.md" ] || $PY tools/fetch_photos.py --out "$PHOTOS"
SCENES=(--preset scene --image-size 288x384 --set "num_hands=[0, 4]" --workers 2 --backgrounds "$PHOTOS" --quiet)
$PY -m handrecon.cli synth "${SCENES[@]}" --num 6000 --out "$DATA/train" --seed 0
$PY -m handrecon.cli synth "${SCENES[@]}" --num 400 --out "$DATA/heldout" --seed 1000
if $PY -c "import pyrender, skimage" 2>/dev/null && [ ! -f "$DATA/foreign/meta.json" ]; then
    $PY benchmarks/foreign_testset.py --scenes --out "$DATA/foreign" --num 200
fi
