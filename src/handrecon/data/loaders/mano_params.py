"""MANO for the loaders that store MANO parameters (HO3D, DexYCB): turns dataset parameters
into handrecon's pose convention and vertices, using the user's MANO files through `HandModel`.

Pose convention in `HandAnnotation.pose`: the actual joint rotations (MANO "flat hand mean"),
axis-angle (16, 3), in the native frame of the hand's side. `HandModel.forward` adds its
`pose_mean`, so it is called with `pose - model.pose_mean`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from handrecon.data.schema import DatasetError
from handrecon.hand.model import HandModel

_AXIS_ANGLE_MIRROR = np.array([1.0, -1.0, -1.0], np.float32)


def find_mano_file(mano_dir: str | os.PathLike, side: str) -> Path:
    """MANO_{RIGHT,LEFT}.pkl in `mano_dir` or its `models/` subfolder (the official zip layout)."""
    name = f"MANO_{side.upper()}.pkl"
    for cand in (Path(mano_dir) / name, Path(mano_dir) / "models" / name):
        if cand.is_file():
            return cand
    raise DatasetError(f"{Path(mano_dir) / name}: MANO model file not found (download it from the MANO website; "
                       "handrecon never ships it)")


class ManoLayers:
    """Lazily built MANO `HandModel`s (one per side) evaluated in numpy, one hand at a time."""

    def __init__(self, mano_dir: str | os.PathLike) -> None:
        self.mano_dir = Path(mano_dir)
        self._models: dict = {}
        find_mano_file(self.mano_dir, "right")  # fail early on a wrong folder

    def model(self, side: str):
        if side not in self._models:
            self._models[side] = HandModel.from_mano(find_mano_file(self.mano_dir, side), side=side).eval()
        return self._models[side]

    def rest_root(self, side: str, shape: np.ndarray) -> np.ndarray:
        """(3,) wrist joint of the shaped rest mesh (the centre of MANO's global rotation)."""
        import torch

        with torch.no_grad():
            _, joints = self.model(side).shaped(torch.as_tensor(shape, dtype=torch.float32)[None])
        return joints[0, 0].numpy()

    def vertices(self, side: str, pose: np.ndarray, shape: np.ndarray, transl: np.ndarray) -> np.ndarray:
        """(778, 3) float32 vertices for actual-rotation pose (16,3), shape (10,), transl (3,)."""
        import torch

        m = self.model(side)
        with torch.no_grad():
            out = m(
                torch.as_tensor(pose, dtype=torch.float32)[None] - m.pose_mean,
                torch.as_tensor(shape, dtype=torch.float32)[None],
                torch.as_tensor(transl, dtype=torch.float32)[None],
            )
        return out.vertices[0].numpy()

    def pca_to_pose(self, side: str, global_rot: np.ndarray, pca: np.ndarray) -> np.ndarray:
        """MANO PCA pose (manopth, flat_hand_mean=False) -> actual rotations (16, 3):
        fingers = hands_mean + pca @ hands_components[:len(pca)], in the side's native frame."""
        m = self.model(side)
        comps = m.data.pose_pca.reshape(-1, 15, 3)  # right-frame arrays; mirror for the left side
        if side == "left":
            comps = comps * _AXIS_ANGLE_MIRROR
        pca = np.asarray(pca, np.float32)
        fingers = np.einsum("c,cjk->jk", pca, comps[: len(pca)]) + m.pose_mean[1:].numpy()
        return np.concatenate([np.asarray(global_rot, np.float32).reshape(1, 3), fingers]).astype(np.float32)
