"""Hand model data by name (the bundled OpenHand or a user's MANO pickle), and what inference
needs of it: each side's faces and the topology digest. numpy only: inference loads a model's hand
without importing torch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from handrecon.hand.model_data import HandModelData
from handrecon.hand.openhand import load_openhand


def load_hand_model_data(hand_model: str) -> HandModelData:
    """`HandModelData` by name: "openhand" (bundled) or the path of an official MANO pickle."""
    if hand_model == "openhand":
        return load_openhand()
    if Path(hand_model).suffix == ".pkl":
        from handrecon.hand.mano import load_mano_data  # deferred: its scipy.sparse takes 0.17 s to import

        return load_mano_data(hand_model)
    raise ValueError(f"hand_model must be 'openhand' or a path to MANO_RIGHT.pkl, got {hand_model!r}")


def side_faces(data: HandModelData) -> tuple[np.ndarray, np.ndarray]:
    """(faces_right, faces_left): (F, 3) int64, each wound counter-clockwise seen from outside."""
    faces = np.asarray(data.faces, np.int64)
    return faces, np.ascontiguousarray(faces[:, [0, 2, 1]])


def topology_sha256(data: HandModelData) -> str:
    """SHA-256 of a hand model's mesh topology (vertex count and right-hand faces): two models whose
    vertices can be read with the same faces have the same hash."""
    h = hashlib.sha256(np.int64(data.num_vertices).tobytes())
    h.update(np.ascontiguousarray(data.faces, np.int64).tobytes())
    return h.hexdigest()
