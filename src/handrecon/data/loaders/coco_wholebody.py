"""COCO-WholeBody hands loader.

On disk (root = the COCO folder):

    annotations/coco_wholebody_{train,val}_v1.0.json
    {train,val}2017/FILE_NAME.jpg

Each person annotation carries `lefthand_kpts` / `righthand_kpts` (63 = 21 × (x, y, v), OP21
order), `lefthand_box` / `righthand_box` (x, y, w, h) and `lefthand_valid` / `righthand_valid`.
One Sample per image holding all valid hands of all its persons. `v > 0` marks a reliable
keypoint (v may be fractional); COCO-WholeBody has no separate occlusion label for hands, so
visibility = keypoints_valid.
"""

from __future__ import annotations

import copy
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from handrecon.data.loaders.common import read_json
from handrecon.data.schema import DatasetError, HandAnnotation, Sample

SPLITS = ("train", "val")


def xywh_to_xyxy(box) -> np.ndarray:
    x, y, w, h = np.asarray(box, np.float32).reshape(4)
    return np.array([x, y, x + w, y + h], np.float32)


class COCOWholeBodyHands:
    """Map-style COCO-WholeBody dataset of images with at least one valid hand (2D only)."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "val",
        ann_file: str | os.PathLike | None = None,
        image_dir: str | os.PathLike | None = None,
        include_empty: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"COCO-WholeBody split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        ann_path = Path(ann_file) if ann_file else self.root / "annotations" / f"coco_wholebody_{split}_v1.0.json"
        self.image_dir = Path(image_dir) if image_dir else self.root / f"{split}2017"
        data = read_json(ann_path)
        try:
            images = {int(im["id"]): im for im in data["images"]}
            anns = data["annotations"]
        except (KeyError, TypeError) as e:
            raise DatasetError(f"{ann_path}: not a COCO annotation file (needs images and annotations: {e})") from e
        per_image: dict[int, list[HandAnnotation]] = defaultdict(list)
        for a in anns:
            try:
                for side in ("left", "right"):
                    if a.get(f"{side}hand_valid"):
                        per_image[int(a["image_id"])].append(self._hand(a, side))
            except (KeyError, ValueError, TypeError) as e:
                raise DatasetError(f"{ann_path}: annotation id {a.get('id')}: bad hand fields ({e})") from e
        unknown = set(per_image) - set(images)
        if unknown:
            raise DatasetError(f"{ann_path}: annotations refer to unknown image id(s) {sorted(unknown)[:5]}")
        ids = sorted(images) if include_empty else sorted(per_image)
        self.items = [(images[i], per_image.get(i, [])) for i in ids]
        self.ann_path = ann_path

    @staticmethod
    def _hand(a: dict, side: str) -> HandAnnotation:
        kp = np.asarray(a[f"{side}hand_kpts"], np.float32).reshape(21, 3)
        valid = kp[:, 2] > 0
        return HandAnnotation(
            side=side,
            box=xywh_to_xyxy(a[f"{side}hand_box"]),
            keypoints_2d=kp[:, :2],
            visibility=valid.astype(np.float32),
            keypoints_valid=valid,
            meta={"annotation_id": a.get("id"), "score": kp[:, 2].copy()},
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> Sample:
        image, hands = self.items[idx]
        return Sample(
            image_path=self.image_dir / image["file_name"],
            hands=copy.deepcopy(hands),  # callers (augmentations) may modify them
            K=None,
            source="coco_wholebody",
            sample_id=str(image["id"]),
            meta={"height": image.get("height"), "width": image.get("width")},
        )

