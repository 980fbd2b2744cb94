"""OneHand10K loader (the original release of Wang et al., TCSVT 2019).

On disk (root = the OneHand10K folder):

    Train/label_joint.txt, Test/label_joint.txt
    {Train,Test}/source/NAME.jpg        images
    {Train,Test}/mask/NAME.png          hand masks

Each line of label_joint.txt is comma separated:
    NAME.jpg, width, height, hand_number, x0, y0, x1, y1, ..., x20, y20
with 21 keypoints in OP21 order per hand and -1 for unannotated keypoints. (Format as read by
the public OneHand10K readers, e.g. openpifpaf-based loaders that parse `label_joint.txt` with
`genfromtxt(delimiter=',')`, columns 4: reshaped to (21, 2).) The side of the hand is not
annotated (side = None). Lines carrying several hands (42·k values after the 4 header columns)
give k hands.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from handrecon.data.loaders.common import require_file
from handrecon.data.schema import DatasetError, HandAnnotation, Sample, box_from_keypoints

SPLITS = {"train": "Train", "test": "Test"}


def parse_label_joint(path: Path) -> list[tuple[str, int, int, np.ndarray]]:
    """Parse label_joint.txt into (name, width, height, keypoints (k, 21, 2) float32) rows."""
    rows = []
    for lineno, line in enumerate(require_file(path, "OneHand10K label file").read_text().splitlines(), start=1):
        parts = [p.strip() for p in line.split(",") if p.strip()]
        if not parts:
            continue
        try:
            values = np.asarray(parts[4:], dtype=np.float32)
            width, height = int(float(parts[1])), int(float(parts[2]))
        except (ValueError, IndexError) as e:
            raise DatasetError(f"{path}:{lineno}: expected 'name,width,height,hand_number,x0,y0,...' ({e})") from e
        if values.size == 0 or values.size % 42:
            raise DatasetError(f"{path}:{lineno}: {values.size} coordinates, expected a multiple of 42 (21 keypoints × x,y)")
        rows.append((parts[0], width, height, values.reshape(-1, 21, 2)))
    return rows


class OneHand10K:
    """Map-style OneHand10K dataset returning `Sample`s (2D only, side unknown)."""

    def __init__(self, root: str | os.PathLike, split: str = "train") -> None:
        if split not in SPLITS:
            raise ValueError(f"OneHand10K split must be one of {sorted(SPLITS)}, got {split!r}")
        self.root = Path(root) / SPLITS[split]
        self.split = split
        self.rows = parse_label_joint(self.root / "label_joint.txt")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: int) -> Sample:
        name, width, height, kps = self.rows[idx]
        hands = []
        for kp in kps:
            valid = (kp >= 0).all(1)
            hands.append(
                HandAnnotation(
                    side=None,
                    box=box_from_keypoints(kp, valid),
                    keypoints_2d=kp.copy(),
                    visibility=valid.astype(np.float32),
                    keypoints_valid=valid,
                )
            )
        return Sample(
            image_path=self.root / "source" / name,
            hands=hands,
            K=None,
            source="onehand10k",
            sample_id=f"{SPLITS[self.split]}/{name}",
            meta={"width": width, "height": height, "mask_path": self.root / "mask" / (Path(name).stem + ".png")},
        )
