"""`handrecon demo` (what `make demo` runs).

1. Reconstructs the bundled sample image (rendered by the synthetic engine with a seed that no
   training set uses) with the shipped model, writes every output `handrecon reconstruct` writes
   (JSON, OBJ/PLY/GLB meshes in camera space, overlay PNG with a side view) and compares the
   result with the sample's exact ground truth.
2. Finds and reconstructs every hand of the bundled multi-hand scene (480×640, three hands,
   another unused seed) with the full-image default, the hand detector followed by the crop
   model, and scores each ground-truth hand: found or missed, score, side, 2D and 3D errors.
3. Poses the bundled OpenHand model (open, fist, pinch, point; both sides) and writes the meshes.

Everything is summarised in OUT/summary.json.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

import handrecon
from handrecon.data.schema import load_image
from handrecon.eval.metrics import keypoint_errors
from handrecon.eval.scoring import match_hands
from handrecon.geometry.procrustes import procrustes_align
from handrecon.hand.keypoints import OP21_NAMES
from handrecon.hand.model import HandModel
from handrecon.hand.pose import sample_poses
from handrecon.infer.batch import write_result
from handrecon.infer.export import save_mesh
from handrecon.infer.pipeline import with_detector
from handrecon.infer.registry import DEFAULT_DETECTOR, DEFAULT_MODEL
from handrecon.utils.io import atomic_write_json

DEMO_POSES = ("open", "fist", "pinch", "point")
DEMO_TRANSLATION = (0.0, 0.0, 0.5)


def load_sample(name: str = "hand") -> tuple[np.ndarray, dict]:
    """A bundled sample ("hand": one hand crop; "scene": three hands): RGB uint8 image (H, W, 3)
    and its ground-truth annotation dict."""
    root = resources.files("handrecon") / "assets" / "sample"
    meta = json.loads((root / f"{name}.json").read_text())
    with resources.as_file(root / meta["image"]) as path:
        image = load_image(path)
    return image, meta


def reconstruct_sample(out_dir: str | Path, model: Any = DEFAULT_MODEL) -> dict:
    """Reconstruct the sample's hand (its box, side and K are given, as a detector would) with
    `model` (a loaded predictor, or a shipped name or checkpoint path); write outputs as OUT/sample*;
    return errors vs GT."""
    out_dir = Path(out_dir)
    image, meta = load_sample()
    gt = meta["hands"][0]
    rec = handrecon.load(model) if isinstance(model, (str, Path)) else model
    result = rec.predict(image, K=np.asarray(meta["K"]), boxes=[gt["box"]], sides=[gt["side"]])
    files = write_result(result, image, out_dir, "sample", settings=rec.settings)
    hand = result.hands[0]
    return {"model": str(getattr(rec, "source", "") or model), "side": hand.side, "files": files,
            "cam_t_m": np.round(hand.cam_t, 4).tolist(), **hand_errors(hand, gt)}


def hand_errors(hand: Any, gt: dict) -> dict[str, float]:
    """A predicted hand (`HandResult`) against its ground truth (a sample JSON's hand): mean 2D
    keypoint error (px), MPJPE, PA-MPJPE and root (wrist) error (mm)."""
    kp3d, kp3d_gt = np.asarray(hand.keypoints_3d, np.float64), np.asarray(gt["keypoints_3d"], np.float64)
    errors = keypoint_errors(kp3d, kp3d_gt)  # (21,) metres
    return {"keypoints_2d_error_px": float(keypoint_errors(hand.keypoints_2d, gt["keypoints_2d"]).mean()),
            "mpjpe_mm": float(1000 * errors.mean()),
            "pa_mpjpe_mm": float(1000 * keypoint_errors(procrustes_align(kp3d, kp3d_gt), kp3d_gt).mean()),
            "root_error_mm": float(1000 * errors[0])}


def reconstruct_scene(out_dir: str | Path, model: Any = DEFAULT_MODEL, detector: str = DEFAULT_DETECTOR) -> dict:
    """Every hand of the bundled scene with `detector` then the crop `model` (or a full-image model);
    writes OUT/scene*; returns per ground-truth hand whether it was found (box IoU >= 0.5) and its errors."""
    image, meta = load_sample("scene")
    rec = with_detector(handrecon.load(model) if isinstance(model, (str, Path)) else model, detector)
    result = rec.predict(image, K=np.asarray(meta["K"]))
    files = write_result(result, image, Path(out_dir), "scene", mesh_formats=("glb",), settings=rec.settings)
    gts = meta["hands"]
    pred_boxes = np.array([h.box for h in result.hands], np.float64).reshape(-1, 4)
    match = match_hands(pred_boxes, np.array([h.score or 0.0 for h in result.hands]),
                        np.array([g["box"] for g in gts], np.float64))
    hands = []
    for gt, m in zip(gts, match):
        entry = {"side": gt["side"], "found": bool(m >= 0)}
        if m >= 0:
            hand = result.hands[m]
            entry.update(predicted_side=hand.side, score=hand.score, **hand_errors(hand, gt))
        hands.append(entry)
    return {"model": str(getattr(rec, "source", "") or model), "files": files, "hands": hands,
            "detections": len(result.hands)}


def pose_hand_model(out_dir: str | Path, seed: int = 0) -> list[dict]:
    """Pose OpenHand in DEMO_POSES for both sides, half a metre in front of the camera; write OBJ
    and GLB per pose into out_dir. Returns one entry per mesh."""
    out_dir = Path(out_dir)
    entries = []
    for side in ("right", "left"):
        model = HandModel.openhand(side=side)
        faces = model.faces.cpu().numpy()
        for i, kind in enumerate(DEMO_POSES):
            pose = sample_poses(model.data, 1, kind=kind, seed=seed + i)
            with torch.no_grad():
                out = model(pose, transl=torch.tensor([DEMO_TRANSLATION], dtype=torch.float32))
            verts, joints = out.vertices[0].numpy(), out.joints[0].numpy()
            files = {fmt: save_mesh(out_dir / f"{side}_{kind}.{fmt}", verts, faces).name for fmt in ("obj", "glb")}
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
    return entries


def run_demo(out_dir: str | Path, model: Any = DEFAULT_MODEL) -> dict:
    """The three demo parts; writes OUT/summary.json and returns it."""
    out_dir = Path(out_dir)
    rec = handrecon.load(model) if isinstance(model, (str, Path)) else model  # loaded once for both parts
    summary = {
        "frame": "OpenCV camera frame, metres (GLB files are in glTF's y-up frame)",
        "reconstruction": reconstruct_sample(out_dir, rec),
        "scene": reconstruct_scene(out_dir, rec),
        "posed_hand_model": {"hand_model": "openhand", "dir": "poses", "translation_m": list(DEMO_TRANSLATION),
                             "meshes": pose_hand_model(out_dir / "poses")},
    }
    atomic_write_json(out_dir / "summary.json", summary)
    return summary
