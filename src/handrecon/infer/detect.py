"""Find hands in images and folders (`handrecon detect`): boxes and scores per image.

Per input image `NAME`: `NAME.json` ({"image", "size": [W, H], "hands": [{"box": [x1, y1, x2, y2],
"score"} plus "side" and "side_score" from a detector with a side head], "detector",
"score_threshold", "nms_iou"}, boxes in the file's pixels) and
`NAME_boxes.png` (the boxes over the image). A bad or unreadable file is reported and skipped;
the run goes on. Detectors come from `handrecon.registry.DETECTORS` (registered by the model
families): ``--detector NAME`` (a shipped detector) or ``--detector KIND:DIR`` (a transformers
checkpoint in a local folder). `handrecon detect` keeps hands scoring >= 0.5 after NMS at IoU 0.5
by default (precision first); a detector folder with a box verifier scores its candidates with it
(`models/handos/box_verifier.py`), and the score is then the verified one. HandOS's own query
filtering uses the paper's T^S = 0.1 and T^NMS = 0.9 (§3.2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
from PIL import Image

from handrecon.data.schema import LoadedImage, read_image
from handrecon.infer.batch import (
    OVERLAY_MAX_SIDE, BatchReport, check_batching, collect_images, run_batches, save_png, unique_stems,
)
from handrecon.registry import DETECTORS
from handrecon.render.overlay import label_boxes
from handrecon.utils.io import atomic_write_json, make_output_folder



def build_detector(spec: str, threads: int | None = None) -> Any:
    """A detector from ``NAME`` or ``KIND:DIR`` (see the module doc) running on `threads` CPU
    threads (None: the backend's default); ValueError listing the known names."""
    name, _, path = spec.partition(":")
    return DETECTORS.get(name)(path or None, threads=threads)


def draw_boxes(image: np.ndarray, boxes: np.ndarray, scores: np.ndarray, max_side: int = OVERLAY_MAX_SIDE) -> np.ndarray:
    """RGB uint8 copy of `image` (downscaled to `max_side`) with each box and its score drawn."""
    h, w = image.shape[:2]
    s = min(1.0, max_side / max(h, w))
    im = Image.fromarray(image)
    if s < 1.0:
        im = im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BILINEAR)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4) * s
    return label_boxes(np.asarray(im), boxes, [f"hand {sc:.2f}" for sc in scores], [(255, 40, 40)] * len(boxes))


def detect_paths(detector: Any, paths: Iterable[str | Path], out: str | Path, score_threshold: float,
                 nms_iou: float, overlay: bool = True, detector_name: str = "",
                 on_progress: Callable[[int], None] | None = None, on_start: Callable[[int], None] | None = None,
                 batch_size: int = 16, workers: int = 1) -> BatchReport:
    """Detect hands in every image under `paths`, writing the outputs of the module doc into `out`:
    images decoded ahead, `batch_size` per detector call, `workers` calls at once (`run_batches`,
    `parallel_batches`), files written while the next batches run; a bad image fails alone."""
    check_batching(batch_size, workers)
    out = Path(out)
    images, problems = collect_images(paths, exclude=out)
    names = unique_stems(images)
    report = BatchReport(failed=list(problems))
    make_output_folder(out)
    if on_start:
        on_start(len(images))

    def read(path: Path) -> LoadedImage | Exception:
        try:
            return read_image(path, reduce=True)
        except (OSError, ValueError) as e:
            return e

    def detect(loaded: list[LoadedImage]) -> list:
        try:
            return detector.detect([im.image for im in loaded], score_threshold=score_threshold, nms_iou=nms_iou)
        except ValueError:  # one bad image: each alone, so only it fails
            found: list = []
            for im in loaded:
                try:
                    found += detector.detect([im.image], score_threshold=score_threshold, nms_iou=nms_iou)
                except ValueError as e:
                    found.append(e)
            return found

    def write(path: Path, name: str, loaded: LoadedImage, found: Any) -> tuple[list[str], int]:
        sx, sy = loaded.scale  # a reduced decode of a huge photo: back to the file's pixels
        boxes = found.boxes / [sx, sy, sx, sy]
        hands = [{"box": np.round(b, 2).tolist(), "score": round(float(s), 4)} for b, s in zip(boxes, found.scores)]
        if found.side_scores is not None:  # a detector with a side head
            for hand, side, side_score in zip(hands, found.sides, found.side_scores):
                hand.update(side=side, side_score=round(float(side_score), 4))
        record = {"image": str(path), "size": [int(loaded.size[1]), int(loaded.size[0])], "hands": hands,
                  "detector": detector_name, "score_threshold": score_threshold, "nms_iou": nms_iou,
                  "test_time_flip": bool(getattr(detector, "test_time_flip", False)),
                  "tiles": int(getattr(detector, "tiles", 1))}
        written = [str(out / f"{name}.json")]
        atomic_write_json(out / f"{name}.json", record)
        if overlay:
            save_png(out / f"{name}_boxes.png", draw_boxes(loaded.image, found.boxes, found.scores))
            written.append(str(out / f"{name}_boxes.png"))
        return written, len(found.boxes)

    run_batches(images, names, read, detect, write, report, batch_size, workers,
                on_progress=None if on_progress is None else lambda _: on_progress(1))
    return report
