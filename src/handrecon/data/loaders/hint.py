"""HInt (Hand Interactions in the wild, HaMeR) loader.

On disk (root = HInt_annotation):

    {TRAIN,VAL,TEST}_{newdays,epick,ego4d}_img/NAME.jpg + NAME.json

One hand per image; NAME ends in `_l` or `_r` (the side). NAME.json is a list holding one dict:
    keypoints  21 × [x, y] or [x, y, conf] px, COCO-WholeBody hand order (= OP21)
    occlusion  21 flags, 1 = occluded
    bbox       [[x1, y1, x2, y2]] px

keypoints_valid = conf > 0.5 when a confidence column is present (the HaMeR evaluation rule),
else all True; visibility = valid and not occluded. Ego4D images are distributed separately:
JSON files without their image are skipped (counted in one warning).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from handrecon.data.loaders.common import as_float_array, read_json, require_dir, warn_once
from handrecon.data.schema import DatasetError, HandAnnotation, Sample

SUBSETS = ("newdays", "epick", "ego4d")
SPLITS = ("train", "val", "test")


class HInt:
    """Map-style HInt dataset returning `Sample`s (2D only: K is None).

    split: "train", "val" or "test"; subsets: any of SUBSETS (default all present folders).
    """

    def __init__(self, root: str | os.PathLike, split: str = "test", subsets: tuple[str, ...] = SUBSETS) -> None:
        if split not in SPLITS:
            raise ValueError(f"HInt split must be one of {SPLITS}, got {split!r}")
        unknown = [s for s in subsets if s not in SUBSETS]
        if unknown:
            raise ValueError(f"unknown HInt subset(s) {unknown}; choose from {SUBSETS}")
        self.root = require_dir(root, "HInt root folder")
        self.split = split
        self.items: list[tuple[str, Path]] = []  # (subset, json path)
        missing_images = 0
        found_any = False
        for subset in subsets:
            folder = self.root / f"{split.upper()}_{subset}_img"
            if not folder.is_dir():
                continue
            found_any = True
            for js in sorted(folder.glob("*.json")):
                if js.with_suffix(".jpg").is_file():
                    self.items.append((subset, js))
                else:
                    missing_images += 1
        if not found_any:
            raise DatasetError(f"{self.root}: no {split.upper()}_{{{','.join(subsets)}}}_img folder found")
        if missing_images:
            warn_once(f"hint-missing-{self.root}-{split}", f"HInt {split}: {missing_images} annotation(s) have no .jpg "
                      "(Ego4D frames must be retrieved separately, see the HInt README); they are skipped")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> Sample:
        subset, path = self.items[idx]
        stem = path.stem
        side = {"_l": "left", "_r": "right"}.get(stem[-2:])
        if side is None:
            raise DatasetError(f"{path}: HInt names end in _l or _r (the hand side), got {stem!r}")
        data = read_json(path)
        if not isinstance(data, list) or not data or not all(isinstance(d, dict) for d in data):
            raise DatasetError(f"{path}: expected a JSON list of hand dicts")
        hands = [self._hand(d, side, path) for d in data]
        return Sample(
            image_path=path.with_suffix(".jpg"),
            hands=hands,
            K=None,
            source="hint",
            sample_id=f"{path.parent.name}/{stem}",
            meta={"subset": subset},
        )

    @staticmethod
    def _hand(d: dict, side: str, path: Path) -> HandAnnotation:
        try:
            kp = np.asarray(d["keypoints"], dtype=np.float32)
            occ = as_float_array(d["occlusion"], (21,), f"{path} occlusion")
            box = as_float_array(d["bbox"], (4,), f"{path} bbox")  # [[x1,y1,x2,y2]] or flat
        except KeyError as e:
            raise DatasetError(f"{path}: missing field {e}") from e
        except (ValueError, TypeError) as e:
            raise DatasetError(f"{path}: keypoints are not a numeric 21×2 or 21×3 list ({e})") from e
        if kp.shape not in ((21, 2), (21, 3)):
            raise DatasetError(f"{path}: keypoints must be 21×2 or 21×3, got {kp.shape}")
        valid = kp[:, 2] > 0.5 if kp.shape[1] == 3 else np.ones(21, bool)
        visible = valid & (occ < 0.5)
        return HandAnnotation(
            side=side,
            box=box,
            keypoints_2d=kp[:, :2],
            visibility=visible.astype(np.float32),
            keypoints_valid=valid,
            meta={"occluded": occ > 0.5},
        )
