#!/usr/bin/env bash
# Reproduce the shipped model `m3dhmr-openhand` end to end on the CPU (2 cores; about 27 hours,
# over the 150-minute budget since stages 3-31 were added — resumable across sessions):
# stage 1: render the synthetic training and held-out sets, train configs/m3dhmr_cpu.yaml (87 min);
# stage 2: fetch the photograph pool (tools/fetch_photos.py), render crops over it and fine-tune
# with configs/m3dhmr_cpu_finetune.yaml (~65 min); stage 3: OpenCV's photographs added, half the
# hands of any colour, configs/m3dhmr_cpu_anycolour.yaml (~65 min with its render); stage 4: a fresh
# draw of stage 3's data, training crops 1.15-1.85x the hand box, configs/m3dhmr_cpu_scale.yaml
# (~55 min with its render); stage 5: 14 more photographs (tools/fetch_photos.py --lomiri) on a
# fresh draw, configs/m3dhmr_cpu_lomiri.yaml (~65 min with its render); stage 6: 27 photographed
# surfaces and photographs more (tools/fetch_photos.py --textures) on a fresh draw,
# configs/m3dhmr_cpu_textures.yaml (~60 min with its render); stages 7-10: photographed cutouts
# pasted on the backgrounds (tools/fetch_photos.py --cutouts), four fresh draws,
# configs/m3dhmr_cpu_cutouts.yaml, m3dhmr_cpu_cutouts2.yaml, m3dhmr_cpu_cutouts3.yaml and
# m3dhmr_cpu_cutouts4.yaml (~70-85 min each); stage 11: two runs of configs/m3dhmr_cpu_cutouts5.yaml from
# stage 10 on two more draws, their weights averaged (~80 min each); stage 12: the same from stage 11's
# average, two runs of configs/m3dhmr_cpu_cutouts6.yaml (2000 steps in float32, ~100 min each on an
# AVX2-only CPU, side by side), averaged again; stages 13-16: Tux Paint's 21 photographs added to the pool
# (tools/fetch_photos.py --tuxpaint), four more such averages in a row (configs/m3dhmr_cpu_tuxpaint.yaml,
# m3dhmr_cpu_tuxpaint2.yaml, m3dhmr_cpu_tuxpaint3.yaml, m3dhmr_cpu_tuxpaint4.yaml: 2000 bf16 steps per run,
# ~34 min side by side on an AVX-512 BF16 CPU); stage 17: GCompris's 146 photographs added
# (tools/fetch_photos.py --gcompris), one more such average (configs/m3dhmr_cpu_gcompris.yaml); stages 18-20:
# distractor occluders (skin-coloured and photo-textured) and camera colour, three more such averages
# (configs/m3dhmr_cpu_occluders.yaml, m3dhmr_cpu_occluders2.yaml, m3dhmr_cpu_occluders3.yaml), stages 19-20's four
# runs averaged and continued as five more (stages 21-25, configs/m3dhmr_cpu_occluders4.yaml ... occluders8.yaml),
# and stage 25's own average continued as six more (stages 26-31, configs/m3dhmr_cpu_occluders9.yaml ... occluders14.yaml),
# stages 29-31's six runs averaged into the shipped weights; evaluate on the held-out
# seed and on the foreign test set (when the benchmark-only extra `.[foreign]` is installed),
# package into src/handrecon/assets/models/m3dhmr-openhand/.
#   tools/train_shipped.sh            # from the repository root; re-running resumes every stage
# Environment: PY (default .venv/bin/python), DATA (default .cache/m3dhmr_cpu24k), RUN (default runs/m3dhmr_cpu).
set -euo pipefail
PY=${PY:-.venv/bin/python}
HR="$PY -m handrecon.cli"
TRAINED=()  # every config trained, in order: the training record's recipe
train() { TRAINED+=("$1"); $HR train "$@"; }
DATA=${DATA:-.cache/m3dhmr_cpu24k}
RUN=${RUN:-runs/m3dhmr_cpu}
# two torch threads; the DataLoader worker (data.num_workers: 1) decodes and crops in between
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
now() { date +%s; }

. tools/crop_data.sh  # PLAIN (the engine these weights were trained with), ANYCOLOUR (stages 3-6's draws)
t0=$(now)
$HR synth --preset crop --num 24000 --out "$DATA/train" --seed 0 --workers 2 --quiet "${PLAIN[@]}"
$HR synth --preset crop --num 1000 --out "$DATA/heldout1000" --seed 1000 --workers 2 --quiet "${PLAIN[@]}"
t1=$(now)
train configs/m3dhmr_cpu.yaml data.train.kwargs.root="$DATA/train" data.val.kwargs.root="$DATA/train" \
    --out "$RUN" --resume auto
STAGE1=$RUN
RUN=${RUN2:-runs/m3dhmr_cpu_finetune}
[ -f "$PHOTOS/SOURCES.md" ] || $PY tools/fetch_photos.py --out "$PHOTOS"
$HR synth --preset crop --num 12500 --out "$DATA/photos" --seed 2 --workers 2 --backgrounds "$PHOTOS" --quiet \
    "${PLAIN[@]}" --set p_photo_occluder=0 --set p_skin_occluder=0
train configs/m3dhmr_cpu_finetune.yaml data.train.kwargs.root="$DATA/photos" data.val.kwargs.root="$DATA/photos" \
    train.init_from="$STAGE1" --out "$RUN" --resume auto
# stage 3 (since 2026-12-01): half the hands of any colour (p_hand_colour) over the photographs plus
# OpenCV's, half the photographs recoloured (configs/m3dhmr_cpu_anycolour.yaml, ~60 min)
STAGE2=$RUN
RUN=${RUN3:-runs/m3dhmr_cpu_anycolour}
[ -f "$OPENCV/SOURCES.md" ] || $PY tools/fetch_photos.py --opencv --out "$OPENCV"
$HR synth "${ANYCOLOUR[@]}" --out "$DATA/photos_anycolour" --seed 10
train configs/m3dhmr_cpu_anycolour.yaml data.train.kwargs.root="$DATA/photos_anycolour" \
    data.val.kwargs.root="$DATA/photos_anycolour" train.init_from="$STAGE2" --out "$RUN" --resume auto
# stage 4 (since 2026-12-01, later): the training crop's framing widened to 1.15-1.85x the hand box
# on a fresh draw of stage 3's data (configs/m3dhmr_cpu_scale.yaml, ~55 min)
STAGE3=$RUN
RUN=${RUN4:-runs/m3dhmr_cpu_scale}
$HR synth "${ANYCOLOUR[@]}" --out "$DATA/photos_anycolour_s11" --seed 11
train configs/m3dhmr_cpu_scale.yaml data.train.kwargs.root="$DATA/photos_anycolour_s11" \
    data.val.kwargs.root="$DATA/photos_anycolour_s11" train.init_from="$STAGE3" --out "$RUN" --resume auto
# stage 5 (since 2026-12-01, fourth session): 14 more photographs behind the hands (indoor scenes and
# close-ups, tools/fetch_photos.py --lomiri) on a fresh draw of stage 4's data (configs/m3dhmr_cpu_lomiri.yaml, ~60 min)
STAGE4=$RUN
RUN=${RUN5:-runs/m3dhmr_cpu_lomiri}
LOMIRI=${LOMIRI:-.cache/photos/lomiri}
[ -f "$LOMIRI/SOURCES.md" ] || $PY tools/fetch_photos.py --lomiri --out "$LOMIRI"
$HR synth "${ANYCOLOUR[@]}" --backgrounds "$LOMIRI" --out "$DATA/photos_lomiri_s12" --seed 12
train configs/m3dhmr_cpu_lomiri.yaml data.train.kwargs.root="$DATA/photos_lomiri_s12" \
    data.val.kwargs.root="$DATA/photos_lomiri_s12" train.init_from="$STAGE4" --out "$RUN" --resume auto
# stage 6 (since 2026-12-01, ninth session): close surfaces a hand is seen against (Krita's photographed
# patterns, Palapeli's backgrounds) and Palapeli's five photographs, tools/fetch_photos.py --textures,
# on a fresh draw of stage 5's data (configs/m3dhmr_cpu_textures.yaml, ~60 min)
STAGE5=$RUN
RUN=${RUN6:-runs/m3dhmr_cpu_textures}
TEXTURES=${TEXTURES:-.cache/photos/textures}
[ -f "$TEXTURES/SOURCES.md" ] || $PY tools/fetch_photos.py --textures --out "$TEXTURES"
$HR synth "${ANYCOLOUR[@]}" --backgrounds "$LOMIRI" --backgrounds "$TEXTURES" --out "$DATA/photos_textures_s17" --seed 17
train configs/m3dhmr_cpu_textures.yaml data.train.kwargs.root="$DATA/photos_textures_s17" \
    data.val.kwargs.root="$DATA/photos_textures_s17" train.init_from="$STAGE5" --out "$RUN" --resume auto
# stages 7-10 (stages 7 and 8 since 2026-12-02, sixth session; 9 since the seventh; 10 since 2026-12-03):
# 0-3 of Tux Paint's 347 photographed cutouts (tools/fetch_photos.py --cutouts) pasted onto each background
# photograph, four fresh draws of stage 6's data (seeds 21-24), 3000 steps each (configs/m3dhmr_cpu_cutouts.yaml,
# m3dhmr_cpu_cutouts2.yaml, m3dhmr_cpu_cutouts3.yaml, m3dhmr_cpu_cutouts4.yaml; ~70-85 min each with its
# render at one thread beside another run)
CUTOUTS=${CUTOUTS:-.cache/photos/cutouts}
[ -f "$CUTOUTS/SOURCES.md" ] || $PY tools/fetch_photos.py --cutouts --out "$CUTOUTS"
STAGE6=$RUN
$HR synth "${ANYCOLOUR[@]}" --backgrounds "$LOMIRI" --backgrounds "$TEXTURES" --backgrounds "$CUTOUTS" \
    --set "clutter=[0, 3]" --out "$DATA/photos_cutouts_s21" --seed 21
RUN=${RUN7:-runs/m3dhmr_cpu_cutouts}
train configs/m3dhmr_cpu_cutouts.yaml data.train.kwargs.root="$DATA/photos_cutouts_s21" \
    data.val.kwargs.root="$DATA/photos_cutouts_s21" train.init_from="$STAGE6" --out "$RUN" --resume auto
STAGE7=$RUN
$HR synth "${ANYCOLOUR[@]}" --backgrounds "$LOMIRI" --backgrounds "$TEXTURES" --backgrounds "$CUTOUTS" \
    --set "clutter=[0, 3]" --out "$DATA/photos_cutouts_s22" --seed 22
RUN=${RUN8:-runs/m3dhmr_cpu_cutouts2}
train configs/m3dhmr_cpu_cutouts2.yaml data.train.kwargs.root="$DATA/photos_cutouts_s22" \
    data.val.kwargs.root="$DATA/photos_cutouts_s22" train.init_from="$STAGE7" --out "$RUN" --resume auto
STAGE8=$RUN
$HR synth "${ANYCOLOUR[@]}" --backgrounds "$LOMIRI" --backgrounds "$TEXTURES" --backgrounds "$CUTOUTS" \
    --set "clutter=[0, 3]" --out "$DATA/photos_cutouts_s23" --seed 23
RUN=${RUN9:-runs/m3dhmr_cpu_cutouts3}
train configs/m3dhmr_cpu_cutouts3.yaml data.train.kwargs.root="$DATA/photos_cutouts_s23" \
    data.val.kwargs.root="$DATA/photos_cutouts_s23" train.init_from="$STAGE8" --out "$RUN" --resume auto
STAGE9=$RUN
$HR synth "${ANYCOLOUR[@]}" --backgrounds "$LOMIRI" --backgrounds "$TEXTURES" --backgrounds "$CUTOUTS" \
    --set "clutter=[0, 3]" --out "$DATA/photos_cutouts_s24" --seed 24
RUN=${RUN10:-runs/m3dhmr_cpu_cutouts4}
train configs/m3dhmr_cpu_cutouts4.yaml data.train.kwargs.root="$DATA/photos_cutouts_s24" \
    data.val.kwargs.root="$DATA/photos_cutouts_s24" train.init_from="$STAGE9" --out "$RUN" --resume auto
# stages 11 and 12 are model soups: a model continued twice, on two fresh draws of stage 7's data (the second
# run's seeds as overrides), and the two last checkpoints averaged into one model of the same size and speed
# (tools/package_model.py --average), RUN/soup
# POOL (default photos_cutouts) names the draws; EXTRA adds photograph folders to stage 7's pool; SYNTH_SETS
# (an array, empty until stage 18) adds engine settings to every draw
SYNTH_SETS=()
soup_stage() {  # CONFIG INIT RUN SEED_A SEED_B STEPS
    local config=$1 init=$2 run=$3 a=$4 b=$5 step pool=${POOL:-photos_cutouts}
    step=$(printf "step_%08d" "$6")
    for seed in "$a" "$b"; do
        $HR synth "${ANYCOLOUR[@]}" --backgrounds "$LOMIRI" --backgrounds "$TEXTURES" --backgrounds "$CUTOUTS" \
            ${EXTRA:+--backgrounds "$EXTRA"} --set "clutter=[0, 3]" "${SYNTH_SETS[@]}" --out "$DATA/${pool}_s$seed" --seed "$seed"
    done
    train "$config" data.train.kwargs.root="$DATA/${pool}_s$a" data.val.kwargs.root="$DATA/${pool}_s$a" \
        train.init_from="$init" --out "$run" --resume auto
    train "$config" data.train.kwargs.root="$DATA/${pool}_s$b" data.val.kwargs.root="$DATA/${pool}_s$b" \
        data.train.kwargs.seed="$b" train.seed="$b" train.init_from="$init" --out "${run}b" --resume auto
    SOUP=("$run/checkpoints/$step" "${run}b/checkpoints/$step")  # this stage's pair
    $PY tools/package_model.py "${SOUP[@]}" --average --name soup --out-root "$run"
}
# stage 11 (since 2026-12-03, ninth session): stage 10 continued for 3000 steps on a fifth and a sixth draw
STAGE10=$RUN
RUN=${RUN11:-runs/m3dhmr_cpu_cutouts5}
soup_stage configs/m3dhmr_cpu_cutouts5.yaml "$STAGE10" "$RUN" 25 26 3000
# stage 12 (since 2026-12-03, tenth session): stage 11's soup continued for 2000 steps in float32 on a seventh
# and an eighth draw
STAGE11=$RUN/soup
RUN=${RUN12:-runs/m3dhmr_cpu_cutouts6}
soup_stage configs/m3dhmr_cpu_cutouts6.yaml "$STAGE11" "$RUN" 27 28 2000
# stages 13 and 14 (since 2026-12-04, eighteenth session): Tux Paint's 21 photographs added to the pool
# (tools/fetch_photos.py --tuxpaint); stage 12's average continued twice for 2000 steps (bf16) and averaged,
# then that average the same way on two more draws (configs/m3dhmr_cpu_tuxpaint.yaml, m3dhmr_cpu_tuxpaint2.yaml)
TUXPAINT=${TUXPAINT:-.cache/photos/tuxpaint}
[ -f "$TUXPAINT/SOURCES.md" ] || $PY tools/fetch_photos.py --tuxpaint --out "$TUXPAINT"
STAGE12=$RUN/soup
RUN=${RUN13:-runs/m3dhmr_cpu_tuxpaint}
POOL=photos_tuxpaint EXTRA=$TUXPAINT soup_stage configs/m3dhmr_cpu_tuxpaint.yaml "$STAGE12" "$RUN" 34 35 2000
STAGE13=$RUN/soup
RUN=${RUN14:-runs/m3dhmr_cpu_tuxpaint2}
POOL=photos_tuxpaint EXTRA=$TUXPAINT soup_stage configs/m3dhmr_cpu_tuxpaint2.yaml "$STAGE13" "$RUN" 36 37 2000
# stages 15 and 16 (since 2026-12-04, nineteenth session): two more such averages in a row over the same
# pool (configs/m3dhmr_cpu_tuxpaint3.yaml, m3dhmr_cpu_tuxpaint4.yaml)
STAGE14=$RUN/soup
RUN=${RUN15:-runs/m3dhmr_cpu_tuxpaint3}
POOL=photos_tuxpaint EXTRA=$TUXPAINT soup_stage configs/m3dhmr_cpu_tuxpaint3.yaml "$STAGE14" "$RUN" 38 39 2000
STAGE15=$RUN/soup
RUN=${RUN16:-runs/m3dhmr_cpu_tuxpaint4}
POOL=photos_tuxpaint EXTRA=$TUXPAINT soup_stage configs/m3dhmr_cpu_tuxpaint4.yaml "$STAGE15" "$RUN" 40 41 2000
# stage 17 (since 2026-12-04, twenty-second session): GCompris's 146 photographs added to the pool
# (tools/fetch_photos.py --gcompris); stage 16's average continued twice for 2000 steps (bf16), averaged
GCOMPRIS=${GCOMPRIS:-.cache/photos/gcompris}
[ -f "$GCOMPRIS/SOURCES.md" ] || $PY tools/fetch_photos.py --gcompris --out "$GCOMPRIS"
STAGE16=$RUN/soup
RUN=${RUN17:-runs/m3dhmr_cpu_gcompris}
POOL=photos_gcompris EXTRA=$TUXPAINT:$GCOMPRIS soup_stage configs/m3dhmr_cpu_gcompris.yaml "$STAGE16" "$RUN" 46 47 2000
# stages 18-20 (since 2026-12-06, thirty-second session): distractors. Occluders on 40 % of the crops, each
# photo-textured (0.5) or skin-coloured (0.4), and camera colour on 60 %; stage 17's average continued as three
# more averages of two 2000-step bf16 runs in a row (configs/m3dhmr_cpu_occluders.yaml, m3dhmr_cpu_occluders2.yaml,
# m3dhmr_cpu_occluders3.yaml)
SYNTH_SETS=(--set p_occluder=0.4 --set p_photo_occluder=0.5 --set p_skin_occluder=0.4 --set p_color=0.6)
# CONFIG RUN SEED_A: the last stage's average ($RUN/soup) continued as a soup stage over the distractor draws
# (seeds SEED_A and SEED_A + 1, 2000 steps); RUN becomes this stage's run
distractor_stage() {
    local init=$RUN/soup
    RUN=$2
    POOL=photos_occluders EXTRA=$TUXPAINT:$GCOMPRIS soup_stage "$1" "$init" "$RUN" "$3" "$(($3 + 1))" 2000
}
distractor_stage configs/m3dhmr_cpu_occluders.yaml "${RUN18:-runs/m3dhmr_cpu_occluders}" 53
distractor_stage configs/m3dhmr_cpu_occluders2.yaml "${RUN19:-runs/m3dhmr_cpu_occluders2}" 55
STAGE19_RUNS=("${SOUP[@]}")
distractor_stage configs/m3dhmr_cpu_occluders3.yaml "${RUN20:-runs/m3dhmr_cpu_occluders3}" 57
# the shipped weights: stages 19 and 20's four runs averaged into one model (chosen over stages 18+19 and 18-20 on
# development draws; docs/model_card_m3dhmr_openhand.md, "Distractors, averaged")
SOUP=("${STAGE19_RUNS[@]}" "${SOUP[@]}")
RUN=${RUN}_last_two
$PY tools/package_model.py "${SOUP[@]}" --average --name soup --out-root "$RUN"
# stages 21-25 (since 2026-12-06, thirty-fifth session): that average continued as five more distractor averages
# in a row on fresh draws (configs/m3dhmr_cpu_occluders4.yaml ... m3dhmr_cpu_occluders8.yaml); stages 22-25's
# eight runs averaged were the shipped weights from the thirty-fifth to the thirty-seventh session
# (docs/model_card_m3dhmr_openhand.md, "An eighth round: O8"); stage 25's own average goes on below
distractor_stage configs/m3dhmr_cpu_occluders4.yaml "${RUN21:-runs/m3dhmr_cpu_occluders4}" 59
distractor_stage configs/m3dhmr_cpu_occluders5.yaml "${RUN22:-runs/m3dhmr_cpu_occluders5}" 61
distractor_stage configs/m3dhmr_cpu_occluders6.yaml "${RUN23:-runs/m3dhmr_cpu_occluders6}" 63
distractor_stage configs/m3dhmr_cpu_occluders7.yaml "${RUN24:-runs/m3dhmr_cpu_occluders7}" 65
distractor_stage configs/m3dhmr_cpu_occluders8.yaml "${RUN25:-runs/m3dhmr_cpu_occluders8}" 67
# stages 26-31 (since 2026-12-06, thirty-seventh and thirty-eighth sessions): stage 25's own average continued six
# more times the same way (configs/m3dhmr_cpu_occluders9.yaml ... m3dhmr_cpu_occluders14.yaml); stage 29's two runs
# averaged were the shipped weights in the thirty-seventh session ("A twelfth round: O12"); the shipped weights:
# stages 29-31's six runs averaged into one model (chosen over the other averages of the last rounds on development
# draws, served int8; docs/model_card_m3dhmr_openhand.md, "A fourteenth round: O14")
distractor_stage configs/m3dhmr_cpu_occluders9.yaml "${RUN26:-runs/m3dhmr_cpu_occluders9}" 69
distractor_stage configs/m3dhmr_cpu_occluders10.yaml "${RUN27:-runs/m3dhmr_cpu_occluders10}" 71
distractor_stage configs/m3dhmr_cpu_occluders11.yaml "${RUN28:-runs/m3dhmr_cpu_occluders11}" 73
distractor_stage configs/m3dhmr_cpu_occluders12.yaml "${RUN29:-runs/m3dhmr_cpu_occluders12}" 75
LAST_RUNS=("${SOUP[@]}")  # stages 29-31's runs
distractor_stage configs/m3dhmr_cpu_occluders13.yaml "${RUN30:-runs/m3dhmr_cpu_occluders13}" 77
LAST_RUNS+=("${SOUP[@]}")
distractor_stage configs/m3dhmr_cpu_occluders14.yaml "${RUN31:-runs/m3dhmr_cpu_occluders14}" 79
SOUP=("${LAST_RUNS[@]}" "${SOUP[@]}")
RUN=${RUN}_last_three
$PY tools/package_model.py "${SOUP[@]}" --average --name soup --out-root "$RUN"
RUN=$RUN/soup
t2=$(now)
$HR evaluate --checkpoint "$RUN" --dataset synthetic --root "$DATA/heldout1000" --split all --out "$RUN/heldout_eval"
if $PY -c "import pyrender, skimage" 2>/dev/null; then
    [ -f .cache/foreign/meta.json ] || $PY benchmarks/foreign_testset.py --out .cache/foreign --num 300
    $HR evaluate --checkpoint "$RUN" --dataset synthetic --root .cache/foreign --split all --whole-image \
        --out "$RUN/foreign_eval"
fi
# the network alone on the held-out crops (deterministic training-centre crop, crop-side 2D PCK):
# the model's own validate hook, as during training
$PY - "$RUN" "$DATA/heldout1000" "$RUN/heldout_eval/crop_metrics.json" <<'PYEOF'
import sys, torch
from torch.utils.data import DataLoader
from handrecon.models.m3dhmr.data import M3DHMRCrops
from handrecon.checkpoint import load_model
from handrecon.utils.io import atomic_write_json
model, card = load_model(sys.argv[1])
size = card["config"]["data"]["train"]["kwargs"].get("input_size", 128)
crops = M3DHMRCrops(sys.argv[2], split="all", input_size=size, augment=False)
atomic_write_json(sys.argv[3], {"samples": len(crops), **model.validate(DataLoader(crops, batch_size=64))})
PYEOF
t3=$(now)
$PY - "$RUN/training.json" "$((t1 - t0))" "$((t2 - t1))" "$((t3 - t2))" "${TRAINED[@]}" <<'PYEOF'
import json, os, sys
from handrecon.utils.io import atomic_write_json
path, render_s, train_s, eval_s = sys.argv[1], *map(int, sys.argv[2:5])
configs = list(dict.fromkeys(sys.argv[5:]))  # each config once, in training order
old = json.load(open(path)) if os.path.exists(path) else {}
atomic_write_json(path, {
    **old,
    "recipe": f"tools/train_shipped.sh ({', '.join(configs)})",
    "data": {"train": "handrecon synth --preset crop --num 24000 --seed 0 (last 500-image shard held out for validation)",
             "finetune": "handrecon synth --preset crop --num 12500 --seed 2 --backgrounds <tools/fetch_photos.py pool>",
             "stage3": "handrecon synth --preset crop --num 12500 --seed 10 --backgrounds <pool> <OpenCV's photographs> --set p_recolour=0.5 --set p_hand_colour=0.5",
             "stage4": "the same with --seed 11; training crops 1.15-1.85x the hand box",
             "stage5": "the same with --seed 12 and tools/fetch_photos.py --lomiri's photographs added",
             "stage6": "the same with --seed 17 and tools/fetch_photos.py --textures' surfaces and photographs added",
             "stage7": "the same with --seed 21, tools/fetch_photos.py --cutouts' 347 cutouts added and --set 'clutter=[0, 3]'",
             "stage8": "the same with --seed 22",
             "stage9": "the same with --seed 23",
             "stage10": "the same with --seed 24",
             "stage11": "the same with --seed 25 and, for the soup's second run, --seed 26",
             "stage12": "the same with --seed 27 and, for the soup's second run, --seed 28",
             "stage13": "the same plus --backgrounds <tools/fetch_photos.py --tuxpaint> with --seed 34 and, for the soup's second run, --seed 35",
             "stage14": "the same with --seed 36 and, for the soup's second run, --seed 37",
             "stage15": "the same with --seed 38 and, for the soup's second run, --seed 39",
             "stage16": "the same with --seed 40 and, for the soup's second run, --seed 41",
             "stage17": "the same plus --backgrounds <tools/fetch_photos.py --gcompris> with --seed 46 and, for the soup's second run, --seed 47",
             "stage18": "the same plus --set p_occluder=0.4 --set p_photo_occluder=0.5 --set p_skin_occluder=0.4 --set p_color=0.6 with --seed 53 and, for the soup's second run, --seed 54",
             # stages 19-31: each a fresh draw of stage 18's data, seeds 2 * stage + 17 and 2 * stage + 18
             **{f"stage{stage}": f"the same with --seed {2 * stage + 17} and, for the soup's second run, --seed {2 * stage + 18}"
                for stage in range(19, 32)},
             "heldout": "handrecon synth --preset crop --num 1000 --seed 1000",
             "foreign": "benchmarks/foreign_testset.py --num 300 (seed 7)"},
    "wall_time_s": {**old.get("wall_time_s", {}), "render": render_s, "train_last_invocation": train_s, "evaluate": eval_s},
    "threads": {"torch": int(os.environ.get("OMP_NUM_THREADS", "2")), "dataloader_workers": 1},
})
PYEOF
FOREIGN=()
[ -f "$RUN/foreign_eval/metrics.json" ] && FOREIGN=(--metrics foreign="$RUN/foreign_eval/metrics.json")
$PY tools/package_model.py "${SOUP[@]}" --average --training "$RUN/training.json" \
    --metrics pipeline="$RUN/heldout_eval/metrics.json" --metrics network="$RUN/heldout_eval/crop_metrics.json" \
    "${FOREIGN[@]}"
