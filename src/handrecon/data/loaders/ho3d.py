"""HO3D v3 loader.

On disk (root = the HO3D_v3 folder):

    train.txt, evaluation.txt           lines "SEQ/ID"
    {train,evaluation}/SEQ/rgb/ID.jpg   640×480
    {train,evaluation}/SEQ/depth/ID.png depth packed in two channels (see `load_ho3d_depth`)
    {train,evaluation}/SEQ/meta/ID.pkl  Python-2 pickle (latin1) of numpy arrays:
        camMat (3,3); handPose (48,) MANO axis-angle, flat-hand mean; handTrans (3,);
        handBeta (10,); handJoints3D (21,3) HO3D/MANO21 order in train, root (3,) only in
        evaluation; handBoundingBox (4,) x1,y1,x2,y2 (evaluation); object fields.

Everything in the files is in the OpenGL camera frame (y up, z backwards); the loader converts
to OpenCV (y and z negated) — joints, vertices and the global rotation. HO3D hands are right hands.
Meta pickles are read with an unpickler that admits numpy arrays and builtins only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from handrecon.data.loaders.common import (
    GL_TO_CV,
    as_float_array,
    load_numpy_pickle,
    project,
    require_file,
    warn_once,
)
from handrecon.data.loaders.mano_params import ManoLayers
from handrecon.data.schema import DatasetError, HandAnnotation, Sample, box_from_keypoints
from handrecon.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from handrecon.hand.keypoints import mano21_to_op21

DEPTH_SCALE = 0.00012498664727900177  # metres per depth unit
SPLITS = {"train": "train", "evaluation": "evaluation", "eval": "evaluation", "test": "evaluation"}


def load_ho3d_depth(path: str | os.PathLike) -> np.ndarray:
    """Decode an HO3D depth PNG to (H, W) float32 metres.

    The official code reads the PNG with OpenCV (BGR order) and computes
    `(img[..., 2] + img[..., 1] * 256) * DEPTH_SCALE`; in RGB channel order that is
    `(red + green * 256) * DEPTH_SCALE` — blue is unused.
    """
    from PIL import Image

    path = require_file(path, "HO3D depth image")
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read depth image ({e})") from e
    return (rgb[..., 0] + rgb[..., 1] * 256.0) * np.float32(DEPTH_SCALE)


def _global_rot_gl_to_cv(pose: np.ndarray) -> np.ndarray:
    """(16, 3) axis-angle in the OpenGL frame -> same with the root rotation expressed in OpenCV."""
    import torch

    R = axis_angle_to_matrix(torch.from_numpy(pose[:1].astype(np.float64)))
    flip = torch.diag(torch.tensor(GL_TO_CV, dtype=torch.float64))
    out = pose.copy()
    out[0] = matrix_to_axis_angle(flip @ R).numpy()[0]
    return out


class HO3D:
    """Map-style HO3D v3 dataset returning `Sample`s.

    split: "train" or "evaluation" (aliases "eval", "test").
    mano_dir: folder with MANO_RIGHT.pkl; when given, vertices (and the OpenCV-frame MANO
        translation) are computed with MANO. Without it only joints are loaded (warned once).
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", mano_dir: str | os.PathLike | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"HO3D split must be one of {sorted(SPLITS)}, got {split!r}")
        self.root = Path(root)
        self.split = SPLITS[split]
        list_file = require_file(self.root / f"{self.split}.txt", "HO3D split list")
        names = [ln.strip() for ln in list_file.read_text().splitlines() if ln.strip()]
        bad = [n for n in names if len(n.split("/")) != 2]
        if bad:
            raise DatasetError(f"{list_file}: lines must be 'SEQ/ID', got {bad[0]!r}")
        self.names = names
        self.mano = ManoLayers(mano_dir) if mano_dir is not None else None
        if self.mano is None:
            warn_once("ho3d-no-mano", "HO3D: no mano_dir given, loading joints only (no vertices); pass mano_dir=... for meshes")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, idx: int) -> Sample:
        seq, fid = self.names[idx].split("/")
        base = self.root / self.split / seq
        meta_path = base / "meta" / f"{fid}.pkl"
        meta = load_numpy_pickle(meta_path)
        if not isinstance(meta, dict):
            raise DatasetError(f"{meta_path}: expected a dict, got {type(meta).__name__}")
        if meta.get("camMat") is None:
            raise DatasetError(f"{meta_path}: no camMat")
        K = as_float_array(meta["camMat"], (3, 3), f"{meta_path} camMat")
        hand = self._train_hand(meta, meta_path, K) if self.split == "train" else self._eval_hand(meta, meta_path, K)
        return Sample(
            image_path=base / "rgb" / f"{fid}.jpg",
            hands=[hand] if hand is not None else [],
            K=K,
            source="ho3d",
            sample_id=f"{seq}/{fid}",
            meta={"depth_path": base / "depth" / f"{fid}.png", "seq": seq, "frame": fid},
        )

    def _train_hand(self, meta: dict, path: Path, K: np.ndarray) -> HandAnnotation | None:
        if meta.get("handJoints3D") is None:
            return None  # a frame without hand annotation
        joints = mano21_to_op21(as_float_array(meta["handJoints3D"], (21, 3), f"{path} handJoints3D")) * GL_TO_CV
        pose = shape = transl = verts = None
        extra = {}
        if meta.get("handPose") is not None:
            pose_gl = as_float_array(meta["handPose"], (16, 3), f"{path} handPose")
            shape = as_float_array(meta["handBeta"], (10,), f"{path} handBeta")
            trans_gl = as_float_array(meta["handTrans"], (3,), f"{path} handTrans")
            pose = _global_rot_gl_to_cv(pose_gl)
            extra = {"handPose_gl": pose_gl, "handTrans_gl": trans_gl}
            if self.mano is not None:
                # MANO(pose, shape) + t in GL, flipped: F·R·(x - J0) + F·(J0 + t) = R'·(x - J0) + J0 + t'.
                root = self.mano.rest_root("right", shape)
                transl = (root + trans_gl) * GL_TO_CV - root
                verts = self.mano.vertices("right", pose, shape, transl)
        kp2d = project(joints, K)
        box = box_from_keypoints(project(verts, K) if verts is not None else kp2d)
        return HandAnnotation(
            side="right",
            box=box,
            keypoints_2d=kp2d,
            visibility=np.ones(21, np.float32),
            keypoints_3d=joints,
            vertices=verts,
            pose=pose,
            shape=shape,
            transl=transl,
            hand_model="mano" if pose is not None else None,
            meta=extra,
        )

    def _eval_hand(self, meta: dict, path: Path, K: np.ndarray) -> HandAnnotation | None:
        if meta.get("handBoundingBox") is None:
            return None
        box = as_float_array(meta["handBoundingBox"], (4,), f"{path} handBoundingBox")
        kp2d = np.zeros((21, 2), np.float32)
        valid = np.zeros(21, bool)
        extra = {}
        if meta.get("handJoints3D") is not None:
            root = as_float_array(meta["handJoints3D"], (3,), f"{path} handJoints3D (root)") * GL_TO_CV
            kp2d[0], valid[0] = project(root[None], K)[0], True
            extra["root_3d"] = root
        return HandAnnotation(
            side="right", box=box, keypoints_2d=kp2d, visibility=valid.astype(np.float32), keypoints_valid=valid, meta=extra
        )
