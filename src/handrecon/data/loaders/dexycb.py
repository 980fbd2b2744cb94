"""DexYCB loader with the official s0-s3 splits of the dex-ycb-toolkit.

On disk (root = $DEX_YCB_DIR):

    {subject}/{sequence}/meta.yml                  num_frames, mano_sides [side], mano_calib [name], ycb_ids...
    {subject}/{sequence}/{serial}/color_%06d.jpg   640×480
    {subject}/{sequence}/{serial}/labels_%06d.npz  joint_3d (1,21,3) m, OpenCV camera frame, OP21,
                                                   all -1 when no hand; joint_2d (1,21,2) px;
                                                   pose_m (1,51): MANO global rotation (3) +
                                                   45 PCA coefficients (non-flat mean) + translation (3)
    calibration/intrinsics/{serial}_640x480.yml    color: {fx, fy, ppx, ppy}
    calibration/mano_{mano_calib}/mano.yml         betas (10)

Split logic (dex-ycb-toolkit `DexYCBDataset.__init__`, re-implemented here): each setup picks
subjects, camera serials and sequence positions (in each subject's sorted sequence list); the
sample order is subject → sequence → camera → frame, so index i here is the toolkit's index i
(the one the official HPE evaluation and result files use).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from handrecon.data.loaders.common import as_float_array, project, read_yaml, require_dir, require_file, warn_once
from handrecon.data.loaders.mano_params import ManoLayers
from handrecon.data.schema import DatasetError, HandAnnotation, Sample, box_from_keypoints
from handrecon.utils.io import read_arrays

SUBJECTS = tuple(f"2020{d}-subject-{i:02d}" for i, d in enumerate(
    ("0709", "0813", "0820", "0903", "0908", "0918", "0928", "1002", "1015", "1022"), start=1))
SERIALS = ("836212060125", "839512060362", "840412060917", "841412060263",
           "932122060857", "932122060861", "932122061900", "932122062010")
SEQUENCES_PER_SUBJECT = 100
SETUPS = ("s0", "s1", "s2", "s3")

_ALL_SUBJECTS, _ALL_SERIALS, _ALL_SEQ = list(range(10)), list(range(8)), list(range(100))
# setup -> split -> (subject indices, serial indices, sequence positions)
_SPLITS: dict[str, dict[str, tuple[list[int], list[int], list[int]]]] = {
    "s0": {  # seen subjects, views and objects; every 5th sequence held out
        "train": (_ALL_SUBJECTS, _ALL_SERIALS, [i for i in _ALL_SEQ if i % 5 != 4]),
        "val": ([0, 1], _ALL_SERIALS, [i for i in _ALL_SEQ if i % 5 == 4]),
        "test": ([2, 3, 4, 5, 6, 7, 8, 9], _ALL_SERIALS, [i for i in _ALL_SEQ if i % 5 == 4]),
    },
    "s1": {  # unseen subjects
        "train": ([0, 1, 2, 3, 4, 5, 9], _ALL_SERIALS, _ALL_SEQ),
        "val": ([6], _ALL_SERIALS, _ALL_SEQ),
        "test": ([7, 8], _ALL_SERIALS, _ALL_SEQ),
    },
    "s2": {  # unseen camera views
        "train": (_ALL_SUBJECTS, [0, 1, 2, 3, 4, 5], _ALL_SEQ),
        "val": (_ALL_SUBJECTS, [6], _ALL_SEQ),
        "test": (_ALL_SUBJECTS, [7], _ALL_SEQ),
    },
    "s3": {  # unseen grasped objects (5 sequences per object)
        "train": (_ALL_SUBJECTS, _ALL_SERIALS, [i for i in _ALL_SEQ if i // 5 not in (3, 7, 11, 15, 19)]),
        "val": (_ALL_SUBJECTS, _ALL_SERIALS, [i for i in _ALL_SEQ if i // 5 in (3, 19)]),
        "test": (_ALL_SUBJECTS, _ALL_SERIALS, [i for i in _ALL_SEQ if i // 5 in (7, 11, 15)]),
    },
}


def split_selection(setup: str, split: str) -> tuple[list[str], list[str], list[int]]:
    """(subject names, camera serials, sequence positions) of an official DexYCB split."""
    if setup not in _SPLITS or split not in _SPLITS[setup]:
        raise ValueError(f"DexYCB split must be s0-s3 with train/val/test (e.g. 's0_train'), got {setup}_{split}")
    subj, ser, seq = _SPLITS[setup][split]
    return [SUBJECTS[i] for i in subj], [SERIALS[i] for i in ser], list(seq)


class DexYCB:
    """Map-style DexYCB dataset returning `Sample`s in the official toolkit order.

    split: "s0_train", "s1_test", ... (setup_split).
    mano_dir: folder with MANO_RIGHT.pkl / MANO_LEFT.pkl; when given, pose (axis-angle, PCA
        expanded), vertices and transl are computed. Without it only joints are loaded and the
        raw PCA parameters are kept in hand.meta (warned once).
    drop_empty: skip frames without a hand (reads every label file once at start; slow on the
        full dataset). Sample ids and meta["index"] keep the official index either way.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "s0_train",
        mano_dir: str | os.PathLike | None = None,
        drop_empty: bool = False,
    ) -> None:
        self.root = Path(root)
        setup, _, part = split.partition("_")
        subjects, self.serials, seq_pos = split_selection(setup, part)
        self.split = split
        self.K = [self._intrinsics(s) for s in self.serials]
        self.sequences: list[str] = []
        self.sides: list[str] = []
        self.betas: list[np.ndarray] = []
        rows = []
        for subject in subjects:
            sdir = require_dir(self.root / subject, "DexYCB subject folder")
            seqs = sorted(p.name for p in sdir.iterdir() if p.is_dir())
            if len(seqs) != SEQUENCES_PER_SUBJECT:
                warn_once(f"dexycb-count-{subject}", f"{sdir}: {len(seqs)} sequences instead of {SEQUENCES_PER_SUBJECT}; "
                          "splits select sequences by position, so an incomplete download changes them")
            for pos in seq_pos:
                if pos >= len(seqs):
                    continue
                name = f"{subject}/{seqs[pos]}"
                meta_path = self.root / name / "meta.yml"
                meta = read_yaml(meta_path)
                try:
                    num_frames, side, calib = int(meta["num_frames"]), meta["mano_sides"][0], meta["mano_calib"][0]
                except (KeyError, IndexError, TypeError, ValueError) as e:
                    raise DatasetError(f"{meta_path}: needs num_frames, mano_sides and mano_calib ({e})") from e
                if side not in ("left", "right"):
                    raise DatasetError(f"{meta_path}: mano_sides[0] must be 'left' or 'right', got {side!r}")
                calib_path = self.root / "calibration" / f"mano_{calib}" / "mano.yml"
                betas = read_yaml(calib_path)
                if not isinstance(betas, dict) or "betas" not in betas:
                    raise DatasetError(f"{calib_path}: no 'betas' entry")
                s = len(self.sequences)
                self.sequences.append(name)
                self.sides.append(side)
                self.betas.append(as_float_array(betas["betas"], (10,), f"{calib_path} betas"))
                c, f = np.meshgrid(np.arange(len(self.serials)), np.arange(num_frames), indexing="ij")
                rows.append(np.stack([np.full(c.size, s), c.ravel(), f.ravel()], 1))
        self._mapping = np.concatenate(rows) if rows else np.zeros((0, 3), np.int64)
        self._index = np.arange(len(self._mapping))
        self.mano = ManoLayers(mano_dir) if mano_dir is not None else None
        if self.mano is None:
            warn_once("dexycb-no-mano", "DexYCB: no mano_dir given, loading joints only (no vertices); pass mano_dir=... for meshes")
        if drop_empty:
            keep = [i for i in self._index if self._read_label(i)[0] is not None]
            self._index = np.asarray(keep, dtype=np.int64)

    def _intrinsics(self, serial: str) -> np.ndarray:
        path = self.root / "calibration" / "intrinsics" / f"{serial}_640x480.yml"
        data = read_yaml(path)
        try:
            c = data["color"]
            return np.array([[c["fx"], 0, c["ppx"]], [0, c["fy"], c["ppy"]], [0, 0, 1]], np.float32)
        except (KeyError, TypeError) as e:
            raise DatasetError(f"{path}: needs color: {{fx, fy, ppx, ppy}} ({e})") from e

    def _frame_dir(self, official: int) -> tuple[Path, int]:
        s, c, f = self._mapping[official]
        return self.root / self.sequences[s] / self.serials[c], int(f)

    def _read_label(self, official: int) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """(joint_3d (21,3), joint_2d (21,2), pose_m (51,)) or Nones when the frame has no hand."""
        d, f = self._frame_dir(official)
        path = require_file(d / f"labels_{f:06d}.npz", "DexYCB label file")
        try:
            z = read_arrays(path, "a readable DexYCB label file", "the DexYCB download is incomplete",
                            ("joint_3d", "joint_2d", "pose_m"))
        except ValueError as e:
            raise DatasetError(str(e)) from None
        j3d, j2d, pose_m = z["joint_3d"], z["joint_2d"], z["pose_m"]
        j3d = as_float_array(j3d, (21, 3), f"{path} joint_3d")
        if np.all(j3d == -1):
            return None, None, None
        return j3d, as_float_array(j2d, (21, 2), f"{path} joint_2d"), as_float_array(pose_m, (51,), f"{path} pose_m")

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, idx: int) -> Sample:
        official = int(self._index[idx])
        s, c, _ = self._mapping[official]
        d, f = self._frame_dir(official)
        K = self.K[c]
        j3d, j2d, pose_m = self._read_label(official)
        hands = []
        if j3d is not None:
            side, betas = self.sides[s], self.betas[s]
            pose = verts = transl = None
            if self.mano is not None:
                pose = self.mano.pca_to_pose(side, pose_m[:3], pose_m[3:48])
                transl = pose_m[48:51]
                verts = self.mano.vertices(side, pose, betas, transl)
            box = box_from_keypoints(project(verts, K) if verts is not None else j2d)
            hands.append(
                HandAnnotation(
                    side=side,
                    box=box,
                    keypoints_2d=j2d,
                    visibility=np.ones(21, np.float32),
                    keypoints_3d=j3d,
                    vertices=verts,
                    pose=pose,
                    shape=betas,
                    transl=transl,
                    hand_model="mano",
                    meta={"pose_m": pose_m},
                )
            )
        return Sample(
            image_path=d / f"color_{f:06d}.jpg",
            hands=hands,
            K=K,
            source="dexycb",
            sample_id=f"{self.split}/{official}",
            meta={"index": official, "sequence": self.sequences[s], "serial": self.serials[c], "frame": f},
        )
