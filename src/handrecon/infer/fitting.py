"""Pose parameters for predicted hands: `handrecon.fit` (inverse kinematics) over every hand of
a batch of results, batched per side, written into each `HandResult.fit`; and the rigged GLBs
posed by them (`infer.rig`)."""

from __future__ import annotations

import numpy as np
import torch

from handrecon.hand.fit import fit_hands
from handrecon.hand.load import load_hand_model_data
from handrecon.hand.model import HandModel
from handrecon.infer.results import ImageResult
from handrecon.infer.rig import save_rigged_glb


class HandFitter:
    """Fits the hand model `hand_model` (a name for `load_hand_model_data`) to predicted vertices."""

    def __init__(self, hand_model: str) -> None:
        data = load_hand_model_data(hand_model)
        self.models = {side: HandModel(data, side) for side in ("right", "left")}

    def attach_fits(self, results: list[ImageResult]) -> None:
        """Fill ``hand.fit`` for every hand of `results` (one batched fit per side)."""
        for side, model in self.models.items():
            hands = [h for r in results for h in r.hands if h.side == side]
            if not hands:
                continue
            verts = np.stack([h.vertices for h in hands]).astype(np.float32)
            if verts.shape[1] != model.num_vertices:
                raise ValueError(f"cannot fit the {model.name} model ({model.num_vertices} vertices) to meshes of "
                                 f"{verts.shape[1]} vertices")
            fit = fit_hands(model, vertices=torch.from_numpy(verts))
            for i, hand in enumerate(hands):
                hand.fit = {"hand_model": model.name, "joint_names": model.joint_names,
                            "pose": np.round(fit.pose[i].numpy().astype(np.float64), 5).tolist(),
                            "shape": np.round(fit.shape[i].numpy().astype(np.float64), 5).tolist(),
                            "transl": np.round(fit.transl[i].numpy().astype(np.float64), 6).tolist(),
                            "error_mm": round(float(fit.error_mm[i]), 3)}

    def save_glb(self, path, fits: dict | list[dict], side: str, times: np.ndarray | None = None):
        """A skinned GLB of the hand model for `side`, posed by one fit or animated over several."""
        return save_rigged_glb(path, self.models[side], fits, times)
