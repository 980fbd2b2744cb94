"""The hand detectors' served operating point, in one place: `handrecon detect`, the two-stage
pipeline (`infer.pipeline`) and `handrecon evaluate-detector` (`eval.detection`) all default to it,
so that what is measured is what is served. (HandOS filters its queries with the paper's own
T^S = 0.1, T^NMS = 0.9.) A module of constants only: the CLI imports it at start-up."""

DEFAULT_SCORE_THRESHOLD = 0.5  # precision first: every box kept becomes a reconstructed hand
DEFAULT_NMS_IOU = 0.5  # drop a box overlapping a better-scoring one by more than this IoU
DEFAULT_MAX_HANDS = 100  # per image
# videos: a confirmed track continues at this score (ByteTrack's low threshold; a new hand still
# needs DEFAULT_SCORE_THRESHOLD; `infer.tracking`, `infer.video`)
DEFAULT_TRACK_THRESHOLD = 0.2
