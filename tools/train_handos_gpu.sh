#!/usr/bin/env bash
# The one-GPU recipe of `handos-openhand`: render the training scenes on every core (OpenGL through
# EGL; the numpy rasteriser if no EGL context can be made, reported), probe both stages for a few
# steps (a device bug shows within a minute, before the long runs) and measure their speed, then train the paper's two stages — the 2D model (configs/handos_gpu_2d.yaml), then
# the full model from it (configs/handos_gpu.yaml) — for as many steps as fit before DEADLINE, each
# with its cosine schedule over exactly those steps. Evaluate and package the result on any machine
# with tools/train_handos.sh's last steps (`handrecon evaluate --checkpoint RUN ...`).
#   BUDGET=480 tools/train_handos_gpu.sh
# Environment: PY (default python3), DATA (.cache/handos-gpu), PHOTOS (.cache/photos/train),
# RUN2D / RUN (runs/handos_gpu_2d, runs/handos_gpu), WORKERS (all cores), BUDGET (480) or DEADLINE
# (seconds since the epoch), SHARE_2D (0.5: the 2D stage's share of the training time), NUM (6000);
# for a dry run on a CPU: SHARD_SIZE (500), PROBE_STEPS (40), MIN_STEPS (100), TRAIN_ARGS (extra
# overrides for every run, e.g. "data.batch_size=2 data.num_workers=1").
set -euo pipefail
PY=${PY:-python3}
HR="$PY -m handrecon.cli"
DATA=${DATA:-.cache/handos-gpu}
PHOTOS=${PHOTOS:-.cache/photos/train}
RUN2D=${RUN2D:-runs/handos_gpu_2d}
RUN=${RUN:-runs/handos_gpu}
WORKERS=${WORKERS:-$(nproc)}
DEADLINE=${DEADLINE:-$(( $(date +%s) + ${BUDGET:-480} ))}
SHARE_2D=${SHARE_2D:-0.5}
PROBE_STEPS=${PROBE_STEPS:-40}
MIN_STEPS=${MIN_STEPS:-100}
read -r -a EXTRA <<<"${TRAIN_ARGS:-}"
export HANDRECON_RENDERER=${HANDRECON_RENDERER:-gl}
SCENES=(--preset scene --image-size 288x384 --set "num_hands=[0, 4]" --backgrounds "$PHOTOS" --quiet)
mkdir -p "$DATA"

# 1. the training scenes of tools/render_scenes.sh (seed 0); the numpy rasteriser if OpenGL fails
RENDER=(--num "${NUM:-6000}" --shard-size "${SHARD_SIZE:-500}" --out "$DATA/train" --seed 0 --workers "$WORKERS")
if ! $HR synth "${SCENES[@]}" "${RENDER[@]}"; then
    echo "renderer $HANDRECON_RENDERER failed; rendering with the numpy rasteriser (HANDRECON_RENDERER=soft)"
    export HANDRECON_RENDERER=soft
    $HR synth "${SCENES[@]}" "${RENDER[@]}"
fi
echo "renderer: $HANDRECON_RENDERER"
DATA_ARGS=(data.train.kwargs.root="$DATA/train" data.val.kwargs.root="$DATA/train" "${EXTRA[@]}")

# 2. probes: PROBE_STEPS steps and a small validation of each stage (a device bug shows in a
# minute, before the long runs), and their speed
PROBE=$(mktemp -d)
PROBE_ARGS=("${DATA_ARGS[@]}" train.max_steps="$PROBE_STEPS" train.val_every="$PROBE_STEPS" train.log_every=10
            train.ckpt_every="$PROBE_STEPS" data.val.kwargs.limit=32)
$HR train configs/handos_gpu_2d.yaml "${PROBE_ARGS[@]}" --out "$PROBE/2d" 2>&1 | tee "$PROBE/2d.log"
$HR train configs/handos_gpu.yaml "${PROBE_ARGS[@]}" train.init_from="$PROBE/2d" --out "$PROBE/3d" 2>&1 \
    | tee "$PROBE/3d.log"
# the steady rate between the probe's last two log lines (the printed rate is cumulative, start-up
# included: 2.7 steps/s where the steady rate was 6.1 on an H200), times 0.75 for the checkpoints,
# epoch turns and validation the long runs add (the first run's long stages held 4.5)
rate() { $PY -c "
import re, sys
pts = [(int(s), float(r)) for s, r in re.findall(r'^step (\d+)/\d+ .*\(([0-9.]+) steps/s\)', open(sys.argv[1]).read(), re.M)]
(s1, r1), (s2, r2) = pts[-2:]
print(round(0.75 * (s2 - s1) / (s2 / r2 - s1 / r1), 3))" "$1"; }
RATE_2D=$(rate "$PROBE/2d.log"); RATE_3D=$(rate "$PROBE/3d.log")

# 3. the two stages, each for the steps that fit its share of the time left
LEFT=$(( DEADLINE - $(date +%s) - 80 ))  # two start-ups, validations and checkpoints
read -r STEPS_2D STEPS_3D < <($PY -c "
r2, r3, left, share = float('${RATE_2D:-2}'), float('${RATE_3D:-1}'), $LEFT, $SHARE_2D
m = $MIN_STEPS
print(max(m, int(r2 * left * share) // 50 * 50), max(m, int(r3 * left * (1 - share)) // 50 * 50))")
echo "probe: 2D $RATE_2D steps/s, full $RATE_3D steps/s; training $STEPS_2D + $STEPS_3D steps in about $LEFT s"
$HR train configs/handos_gpu_2d.yaml "${DATA_ARGS[@]}" train.max_steps="$STEPS_2D" train.val_every="$STEPS_2D" \
    --out "$RUN2D" --resume auto
$HR train configs/handos_gpu.yaml "${DATA_ARGS[@]}" train.max_steps="$STEPS_3D" train.val_every="$STEPS_3D" \
    train.init_from="$RUN2D" --out "$RUN" --resume auto
