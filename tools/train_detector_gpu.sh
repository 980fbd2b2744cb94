#!/usr/bin/env bash
# Stage 3 of handrecon-hand-detector on one GPU (configs/detector_gpu.yaml): render 9000 fresh
# training scenes and 200 validation scenes with the numpy rasteriser on every core, measure the
# training speed, then train from stage 2's weights for as many steps as fit before DEADLINE
# (seconds since the epoch; default: BUDGET seconds from now), cosine schedule over exactly those
# steps. Then package and evaluate it with tools/train_detector.sh's last steps on the CPU.
# The one run so far (2026-11-30, one H200, 1200 steps at 5.4 steps/s, soft-rendered scenes) came
# out worse than its starting point on the GL-rendered held-out and foreign scenes (see
# docs/model_card_hand_detector.md); rendering with HANDRECON_RENDERER=gl is the next thing to try.
#   INIT=runs/detector_cpu_stage2/checkpoints/step_00001500 BUDGET=480 tools/train_detector_gpu.sh
# Environment: PY (default python3), DATA (.cache/detector-gpu), PHOTOS (.cache/photos/train), INIT,
# RUN (runs/detector_gpu), WORKERS (all cores), BUDGET (480) or DEADLINE, NUM_A / NUM_B / NUM_VAL (scene counts).
set -euo pipefail
PY=${PY:-python3}
HR="$PY -m handrecon.cli"
DATA=${DATA:-.cache/detector-gpu}
PHOTOS=${PHOTOS:-.cache/photos/train}
INIT=${INIT:-runs/detector_cpu_stage2/checkpoints/step_00001500}
RUN=${RUN:-runs/detector_gpu}
WORKERS=${WORKERS:-$(nproc)}
DEADLINE=${DEADLINE:-$(( $(date +%s) + ${BUDGET:-480} ))}
export HANDRECON_RENDERER=${HANDRECON_RENDERER:-soft}
SCENES=(--preset scene --image-size 288x384 --set "num_hands=[0, 4]" --workers "$WORKERS" --backgrounds "$PHOTOS" --quiet)
$HR synth "${SCENES[@]}" --num "${NUM_A:-6000}" --out "$DATA/a" --seed 20000
$HR synth "${SCENES[@]}" --set "p_forearm=0.4" --num "${NUM_B:-3000}" --out "$DATA/b" --seed 23000
$HR synth "${SCENES[@]}" --num "${NUM_VAL:-200}" --out "$DATA/val" --seed 1000
ARGS=("data.train.kwargs.root=[$DATA/a, $DATA/b]" data.val.kwargs.root="$DATA/val" train.init_from="$INIT")
PROBE=$(mktemp -d)
probe() { $HR train configs/detector_gpu.yaml "$@" train.max_steps=60 train.val_every=100000 train.log_every=20 \
    --out "$PROBE" 2>&1 | tee "$PROBE.log"; }
if ! probe "${ARGS[@]}"; then  # INIT unreadable here (e.g. another transformers): train from scratch
    echo "init_from $INIT failed; training from scratch"
    ARGS=("${ARGS[@]:0:2}" train.init_from=null optim.lr=4.0e-4)
    rm -rf "$PROBE"; PROBE=$(mktemp -d); probe "${ARGS[@]}"
fi
RATE=$(grep -o '([0-9.]* steps/s)' "$PROBE.log" | tail -1 | tr -d '()a-z/ ')
RATE=${RATE:-5}
LEFT=$(( DEADLINE - $(date +%s) - 45 ))  # start-up, the final validation and the checkpoint
STEPS=$($PY -c "print(max(100, int(float('$RATE') * $LEFT * 0.95) // 100 * 100))")
echo "probe: $RATE steps/s; training $STEPS steps in about $LEFT s"
$HR train configs/detector_gpu.yaml "${ARGS[@]}" train.max_steps="$STEPS" train.val_every="$STEPS" --out "$RUN"
