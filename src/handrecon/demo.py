"""`handrecon demo`: pose the bundled OpenHand model and write meshes plus a JSON summary.

This is what `make demo` runs. Each pose is written for both sides as OBJ and GLB, placed half
a metre in front of the camera (OpenCV frame), together with `summary.json`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from handrecon.hand.keypoints import OP21_NAMES
from handrecon.infer.export import save_mesh
from handrecon.utils.io import atomic_write_json

DEMO_POSES = ("open", "fist", "pinch", "point")
DEMO_TRANSLATION = (0.0, 0.0, 0.5)


def run_demo(out_dir: str | Path, seed: int = 0) -> dict:
    """Pose OpenHand in DEMO_POSES for both sides; write meshes and summary.json into out_dir.

    Returns the summary dict (also written to out_dir/summary.json).
    """
    from handrecon.hand.model import HandModel
    from handrecon.hand.pose import sample_poses

    out_dir = Path(out_dir)
    entries = []
    for side in ("right", "left"):
        model = HandModel.openhand(side=side)
        faces = model.faces.cpu().numpy()
        for i, kind in enumerate(DEMO_POSES):
            pose = sample_poses(model.data, 1, kind=kind, seed=seed + i)
            transl = torch.tensor([DEMO_TRANSLATION], dtype=torch.float32)
            with torch.no_grad():
                out = model(pose, transl=transl)
            verts = out.vertices[0].numpy()
            joints = out.joints[0].numpy()
            files = {fmt: str(save_mesh(out_dir / f"{side}_{kind}.{fmt}", verts, faces).name) for fmt in ("obj", "glb")}
            entries.append(
                {
                    "side": side,
                    "pose": kind,
                    "files": files,
                    "num_vertices": int(verts.shape[0]),
                    "num_faces": int(faces.shape[0]),
                    "extent_m": np.round(verts.max(0) - verts.min(0), 4).tolist(),
                    "keypoints_3d": {n: np.round(j, 5).tolist() for n, j in zip(OP21_NAMES, joints)},
                }
            )
    summary = {
        "hand_model": "openhand",
        "frame": "OpenCV camera frame, metres (GLB files are in glTF's y-up frame)",
        "translation_m": list(DEMO_TRANSLATION),
        "meshes": entries,
    }
    atomic_write_json(out_dir / "summary.json", summary)
    return summary
