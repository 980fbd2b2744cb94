# The crop model's training-data settings, sourced (`. tools/crop_data.sh`) by tools/train_shipped.sh
# and tools/train_box_verifier.sh so that both draw the same crops. Needs PHOTOS and OPENCV (the
# photograph folders of tools/fetch_photos.py; defaults below).
# PLAIN: the engine these weights were trained with: the realistic additions of issue 12 (subdivided
# render mesh, forearms, camera colour and motion blur, truncation, the newer pose kinds) came later
# and are switched off; configs/m3dhmr_cpu_realistic.yaml records the fine-tune with them.
# ANYCOLOUR: stages 3-6 draw their crops alike, each with its own seed (stages 5 and 6 over more
# photograph folders): half the hands of any colour, half the photographs recoloured.
PHOTOS=${PHOTOS:-.cache/photos/train}
OPENCV=${OPENCV:-.cache/photos/opencv}
PLAIN=(--set render_subdivisions=0 --set p_forearm=0 --set p_color=0 --set p_motion_blur=0 --set p_truncated=0
       --set 'pose_kinds=[random, open, fist, pinch, point]')
ANYCOLOUR=(--preset crop --num 12500 --workers 2 --backgrounds "$PHOTOS" --backgrounds "$OPENCV" --quiet "${PLAIN[@]}"
           --set p_photo_occluder=0 --set p_skin_occluder=0 --set p_recolour=0.5 --set p_hand_colour=0.5)
