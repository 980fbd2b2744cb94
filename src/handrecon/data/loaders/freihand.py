"""FreiHAND (v2) loader.

On disk (root = the unpacked FreiHAND_pub_v2 folder, with the evaluation annotations added):

    training_K.json, training_xyz.json, training_verts.json, training_mano.json, training_scale.json
    training/rgb/%08d.jpg        224×224; 4 versions of sample i at id i + N·k
                                 (k = 0 green screen, 1 "hom", 2 "sample", 3 "auto"), N = 32560
    training/mask/%08d.jpg       masks, only for ids < N
    evaluation_K.json, evaluation_scale.json  [+ evaluation_xyz/verts/mano.json, now public]
    evaluation/rgb/%08d.jpg      3960 images

All hands are right hands, in the OpenCV camera frame, metres. training_mano.json entries are
[[61 floats]]: pose 48 (MANO mean pose already added), shape 10, uv_root 2, scale 1.
2D keypoints are the projections of xyz with K.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from handrecon.data.loaders.common import project, read_json_array, require_dir, warn_once
from handrecon.data.schema import DatasetError, HandAnnotation, Sample, box_from_keypoints

VERSIONS = ("gs", "hom", "sample", "auto")
SPLITS = ("train", "evaluation")


class FreiHAND:
    """Map-style FreiHAND dataset returning `Sample`s.

    split: "train" (alias "training") or "evaluation" (alias "eval", "test").
    versions: which training image versions to include (names from VERSIONS or indices 0-3);
        the dataset is ordered version-major like the files (index = sample + N·version rank).
    load_vertices: read *_verts.json (large: ~1.5 GB of JSON for training).
    check_files: list the image folder once and fail early if an image is missing.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        versions: tuple = VERSIONS,
        load_vertices: bool = True,
        check_files: bool = False,
    ) -> None:
        self.root = Path(root)
        split = {"training": "train", "eval": "evaluation", "test": "evaluation"}.get(split, split)
        if split not in SPLITS:
            raise ValueError(f"FreiHAND split must be one of {SPLITS}, got {split!r}")
        self.split = split
        prefix = "training" if split == "train" else "evaluation"
        self.image_dir = require_dir(self.root / prefix / "rgb", f"FreiHAND {prefix} image folder")
        self.K = read_json_array(self.root / f"{prefix}_K.json", None, (3, 3))
        n = len(self.K)
        self.num_unique = n
        self.scale = read_json_array(self.root / f"{prefix}_scale.json", n, ())
        has_gt = split == "train" or (self.root / "evaluation_xyz.json").is_file()
        self.xyz = read_json_array(self.root / f"{prefix}_xyz.json", n, (21, 3)) if has_gt else None
        if not has_gt:
            warn_once("freihand-eval-nogt", f"{self.root}: evaluation_xyz.json not found; evaluation samples carry no hand annotations")
        self.mano = None
        if has_gt and (self.root / f"{prefix}_mano.json").is_file():
            self.mano = read_json_array(self.root / f"{prefix}_mano.json", n, (1, 61))[:, 0]
        self.verts = None
        if has_gt and load_vertices:
            self.verts = read_json_array(self.root / f"{prefix}_verts.json", n, (778, 3))
        if split == "train":
            ranks = [VERSIONS.index(v) if isinstance(v, str) else int(v) for v in versions]
            if not ranks or any(r not in range(4) for r in ranks):
                raise ValueError(f"versions must be a non-empty subset of {VERSIONS} or 0-3, got {versions!r}")
            self.versions = ranks
        else:
            self.versions = [0]
        if check_files:
            self._check_images()

    def __len__(self) -> int:
        return self.num_unique * len(self.versions)

    def __getitem__(self, idx: int) -> Sample:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} samples")
        idx %= len(self)
        version, i = self.versions[idx // self.num_unique], idx % self.num_unique
        image_id = i + self.num_unique * version
        K = self.K[i]
        hands = []
        if self.xyz is not None:
            xyz = self.xyz[i]
            verts = self.verts[i] if self.verts is not None else None
            kp2d = project(xyz, K)
            box = box_from_keypoints(project(verts, K) if verts is not None else kp2d)
            pose = shape = None
            meta = {}
            if self.mano is not None:
                pose, shape = self.mano[i, :48].reshape(16, 3), self.mano[i, 48:58]
                meta.update(uv_root=self.mano[i, 58:60].copy(), mano_scale=float(self.mano[i, 60]))
            hands.append(
                HandAnnotation(
                    side="right",
                    box=box,
                    keypoints_2d=kp2d,
                    visibility=np.ones(21, np.float32),
                    keypoints_3d=xyz,
                    vertices=verts,
                    pose=pose,
                    shape=shape,
                    hand_model="mano" if pose is not None else None,
                    meta=meta,
                )
            )
        prefix = "training" if self.split == "train" else "evaluation"
        meta = {"index": i, "version": VERSIONS[version] if self.split == "train" else None, "scale": float(self.scale[i])}
        if self.split == "train":  # masks exist for ids < N and hold for all four versions of sample i
            meta["mask_path"] = self.root / "training" / "mask" / f"{i:08d}.jpg"
        return Sample(
            image_path=self.image_dir / f"{image_id:08d}.jpg",
            hands=hands,
            K=K,
            source="freihand",
            sample_id=f"{prefix}/{image_id:08d}",
            meta=meta,
        )

    def _check_images(self) -> None:
        present = {p.name for p in self.image_dir.iterdir()}
        ids = [i + self.num_unique * v for v in self.versions for i in range(self.num_unique)]
        missing = [f"{i:08d}.jpg" for i in ids if f"{i:08d}.jpg" not in present]
        if missing:
            raise DatasetError(f"{self.image_dir}: {len(missing)} of {len(ids)} images missing (first: {missing[0]})")
