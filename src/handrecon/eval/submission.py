"""Benchmark submission files and the official FreiHAND evaluation (scores in mm).

FreiHAND's `pred.json` is `[xyz_list (N x 21 x 3), verts_list (N x V x 3)]` in metres, camera
frame, OP21, in the order of the evaluation set. `evaluate_freihand` computes what the official
`eval.py` writes to `scores.txt`, under the same key names, with lengths in millimetres (the
official file is in cm). HO3D v3's Codalab submission is the same JSON layout, but in the OpenGL
camera frame (y and z negated) and the HO3D (MANO21) joint order, one entry per line of
`evaluation.txt` (`write_ho3d_submission`). DexYCB's toolkit reads a text file of lines
`index,x1,y1,z1,...,z21`: the dataset index, then the 21 OP21 joints in millimetres, camera frame
(`write_dexycb_results`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from handrecon.data.loaders.common import GL_TO_CV
from handrecon.eval.metrics import F_SCORE_THRESHOLDS_M, f_scores_sets, keypoint_errors, summarize_errors
from handrecon.geometry.procrustes import apply_trafo, freihand_align_by_joint_trafo, procrustes_trafo
from handrecon.hand.keypoints import op21_to_mano21
from handrecon.utils.io import atomic_open

FREIHAND_EVAL_SIZE = 3960
FREIHAND_KEYS = (
    "xyz_mean3d", "xyz_auc3d", "xyz_al_mean3d", "xyz_al_auc3d",
    "mesh_mean3d", "mesh_auc3d", "mesh_al_mean3d", "mesh_al_auc3d",
    "f_score_5", "f_al_score_5", "f_score_15", "f_al_score_15",
)  # fmt: skip


class SubmissionError(ValueError):
    """A submission or ground-truth file is missing or malformed; the message says what and where."""


@dataclass
class FreihandSet:
    """Joints (N, 21, 3) and vertices (N, V, 3) in metres; GT may also carry K (N, 3, 3) and scale (N,)."""

    xyz: np.ndarray
    verts: np.ndarray
    K: np.ndarray | None = None
    scale: np.ndarray | None = None


def write_freihand_submission(path: str | Path, xyz: np.ndarray, verts: np.ndarray) -> None:
    """Write `pred.json` = [xyz (N,21,3), verts (N,V,3)] (metres) atomically, after validating shapes."""
    xyz = _check_array(np.asarray(xyz, np.float64), "xyz", (21, 3), str(path))
    verts = _check_array(np.asarray(verts, np.float64), "verts", (None, 3), str(path))
    if len(xyz) != len(verts):
        raise SubmissionError(f"{path}: {len(xyz)} joint sets but {len(verts)} vertex sets; they must match")
    with atomic_open(path, "w") as f:
        json.dump([xyz.tolist(), verts.tolist()], f)


def write_ho3d_submission(path: str | Path, xyz: np.ndarray, verts: np.ndarray) -> None:
    """Write HO3D v3's `pred.json` from joints (N, 21, 3) in OP21 and vertices (N, V, 3), metres in
    the OpenCV camera frame (handrecon's convention): reordered to HO3D's MANO21 and flipped to
    OpenGL (y, z negated), as the official evaluation reads them. Zip it to submit."""
    xyz = _check_array(np.asarray(xyz, np.float64), "xyz", (21, 3), str(path))
    verts = _check_array(np.asarray(verts, np.float64), "verts", (None, 3), str(path))
    write_freihand_submission(path, op21_to_mano21(xyz) * GL_TO_CV, verts * GL_TO_CV)


def write_dexycb_results(path: str | Path, indices: np.ndarray, xyz: np.ndarray) -> None:
    """Write the dex-ycb-toolkit's hand-pose result file: one line per hand, its sample index in the
    official split order and its joints (N, 21, 3) in metres (OpenCV camera frame, OP21), written
    in millimetres; 64 comma-separated fields per line, as `hpe_eval` reads them."""
    xyz = _check_array(np.asarray(xyz, np.float64), "xyz", (21, 3), str(path))
    indices = np.asarray(indices, np.int64).reshape(-1)
    if len(indices) != len(xyz):
        raise SubmissionError(f"{path}: {len(indices)} sample indices but {len(xyz)} joint sets; they must match")
    with atomic_open(path, "w") as f:
        for i, joints in zip(indices.tolist(), xyz * 1000.0):
            f.write(f"{i}," + ",".join(f"{v:.4f}" for v in joints.ravel()) + "\n")


def load_freihand_submission(path: str | Path, expected_count: int | None = None) -> FreihandSet:
    """Read and validate a FreiHAND `pred.json`. Raises SubmissionError naming the problem."""
    data = _read_json(Path(path), "prediction file")
    if not isinstance(data, list) or len(data) != 2:
        kind = f"a list of {len(data)} elements" if isinstance(data, list) else f"a JSON {type(data).__name__}"
        raise SubmissionError(f"{path}: expected a 2-element list [xyz_list, verts_list], got {kind}")
    xyz = _to_array(data[0], "xyz", (21, 3), str(path))
    verts = _to_array(data[1], "verts", (None, 3), str(path))
    if len(xyz) != len(verts):
        raise SubmissionError(f"{path}: {len(xyz)} joint sets but {len(verts)} vertex sets; they must match")
    if expected_count is not None and len(xyz) != expected_count:
        raise SubmissionError(f"{path}: {len(xyz)} samples, expected {expected_count} (one per evaluation image, in order)")
    return FreihandSet(xyz, verts)


def load_freihand_gt(gt_dir: str | Path, set_name: str = "evaluation") -> FreihandSet:
    """Read `{set_name}_xyz.json`, `{set_name}_verts.json` (and `_K`, `_scale` when present) from `gt_dir`."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        problem = (f"is a file; give the folder holding {set_name}_xyz.json and {set_name}_verts.json"
                   if gt_dir.exists() else "does not exist")
        raise SubmissionError(f"ground-truth folder {gt_dir} {problem}")
    for key in ("xyz", "verts"):
        if not (gt_dir / f"{set_name}_{key}.json").is_file():
            raise SubmissionError(f"{gt_dir / f'{set_name}_{key}.json'} is missing; the FreiHAND ground truth "
                                  f"needs {set_name}_xyz.json and {set_name}_verts.json")
    arrays = {}
    for key, tail in (("xyz", (21, 3)), ("verts", (None, 3)), ("K", (3, 3)), ("scale", ())):
        file = gt_dir / f"{set_name}_{key}.json"
        if file.is_file():
            arrays[key] = _to_array(_read_json(file, "ground-truth file"), key, tail, str(file))
    counts = {k: len(v) for k, v in arrays.items()}
    if len(set(counts.values())) != 1:
        raise SubmissionError(f"{gt_dir}: ground-truth files disagree on the sample count: {counts}")
    return FreihandSet(**arrays)


def evaluate_freihand(pred: FreihandSet, gt: FreihandSet) -> dict[str, float | None]:
    """The official FreiHAND scores under their `scores.txt` names; *_mean3d in mm, AUC and F in [0, 1].

    Like the official script: joints are aligned with a fit on the joints; when the predicted
    vertex count equals GT's, vertices get their own fit and the mesh errors are reported,
    otherwise vertices are moved with the joint fit (`align_by_trafo`) and the mesh_* keys are None.
    F-scores (5 and 15 mm) are computed on the raw and on the aligned vertices.
    """
    if len(pred.xyz) != len(gt.xyz):
        raise SubmissionError(f"prediction has {len(pred.xyz)} samples but the ground truth has {len(gt.xyz)}")
    if pred.xyz.shape[1:] != gt.xyz.shape[1:]:
        raise SubmissionError(f"prediction joints are {pred.xyz.shape[1:]} per sample, ground truth {gt.xyz.shape[1:]}")
    scores: dict[str, float | None] = dict.fromkeys(FREIHAND_KEYS)
    xyz_trafo = procrustes_trafo(pred.xyz, gt.xyz)
    for prefix, p in (("xyz_", pred.xyz), ("xyz_al_", apply_trafo(pred.xyz, xyz_trafo))):
        s = summarize_errors(keypoint_errors(p, gt.xyz))
        scores[prefix + "mean3d"], scores[prefix + "auc3d"] = s.mean * 1000.0, s.auc
    if pred.verts.shape == gt.verts.shape:
        verts_al = apply_trafo(pred.verts, procrustes_trafo(pred.verts, gt.verts))
        for prefix, p in (("mesh_", pred.verts), ("mesh_al_", verts_al)):
            s = summarize_errors(keypoint_errors(p, gt.verts))
            scores[prefix + "mean3d"], scores[prefix + "auc3d"] = s.mean * 1000.0, s.auc
    else:
        verts_al = freihand_align_by_joint_trafo(pred.verts, xyz_trafo)
    f_raw, f_al = f_scores_sets([pred.verts, verts_al], gt.verts, F_SCORE_THRESHOLDS_M).mean(1)
    for t, f, fa in zip(F_SCORE_THRESHOLDS_M, f_raw, f_al):
        mm = round(t * 1000)
        scores[f"f_score_{mm}"], scores[f"f_al_score_{mm}"] = float(f), float(fa)
    return scores


def _read_json(path: Path, what: str):
    if not path.is_file():
        problem = "is a folder, not a JSON file" if path.is_dir() else "does not exist"
        raise SubmissionError(f"{what} {path} {problem}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SubmissionError(f"{what} {path} is not valid JSON: {e}") from None
    except RecursionError:
        raise SubmissionError(f"{what} {path} is nested too deeply to be a submission (lists of lists of numbers "
                              "expected)") from None
    except OSError as e:
        raise SubmissionError(f"cannot read {what} {path}: {e.strerror or e}") from None


def _to_array(data, name: str, tail: tuple, where: str) -> np.ndarray:
    """Nested lists -> float64 array (N, *tail); a None in `tail` matches any size (same for all)."""
    if not isinstance(data, list):
        raise SubmissionError(f"{where}: '{name}' must be a list with one entry per sample, got a JSON {type(data).__name__}")
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.ndim != 1 + len(tail):
        _raise_first_bad_entry(data, name, tail, where)
    return _check_array(arr, name, tail, where)


def _check_array(arr: np.ndarray, name: str, tail: tuple, where: str) -> np.ndarray:
    if arr.ndim != 1 + len(tail) or any(t is not None and t != s for t, s in zip(tail, arr.shape[1:])):
        raise SubmissionError(f"{where}: '{name}' has shape {arr.shape}, expected {_shape_text(tail, 'N')}")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(arr), -1).any(1))[0, 0])
        raise SubmissionError(f"{where}: '{name}' has {int(bad.sum())} NaN/inf values (first in sample {first})")
    return arr


def _shape_text(tail: tuple, lead: str | None = None) -> str:
    dims = ([lead] if lead else []) + ["V" if t is None else str(t) for t in tail]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _raise_first_bad_entry(data: list, name: str, tail: tuple, where: str):
    want = _shape_text(tail)
    first_shape = None
    for i, entry in enumerate(data):
        try:
            shape = np.asarray(entry, dtype=np.float64).shape
        except (ValueError, TypeError):
            raise SubmissionError(f"{where}: '{name}' sample {i} is not a rectangular array of numbers") from None
        ok = len(shape) == len(tail) and all(t is None or t == s for t, s in zip(tail, shape))
        if not ok or (first_shape is not None and shape != first_shape):
            raise SubmissionError(f"{where}: '{name}' sample {i} has shape {shape}, expected {want}"
                                  + (f" like sample 0 {first_shape}" if ok else ""))
        first_shape = shape
    raise SubmissionError(f"{where}: '{name}' is not an array of shape {_shape_text(tail, 'N')}")


def format_scores(scores: dict[str, float | None]) -> list[tuple[str, str]]:
    """(key, value) rows for display: lengths in mm, AUC and F-scores to 4 decimals, None as 'n/a'."""
    rows = []
    for k, v in scores.items():
        if v is None or (isinstance(v, float) and math.isnan(v)):
            rows.append((k, "n/a"))
        else:
            rows.append((k, f"{v:.2f} mm" if k.endswith("mean3d") else f"{v:.4f}"))
    return rows
