"""Evaluate a model on a dataset the way the benchmark does (`handrecon evaluate`).

Protocols:

- ``freihand`` (default split ``evaluation``): every image is already a 224×224 hand crop, so the
  whole image goes to the model (no box), as a right hand, with the dataset's K. Predictions are
  camera-space joints and vertices (metres) written as the official ``pred.json``.
- ``synthetic`` (default split ``val``, the held-out shards): every annotated hand, cropped around
  its ground-truth box with the training crop, with its ground-truth side and the image's K.

Metrics (``metrics.json``, printed as a table), with the official FreiHAND semantics
(`eval.submission.evaluate_freihand`): PA-MPJPE and PA-MPVPE (mm, each set aligned by its own
Procrustes fit), F@5 / F@15 of the aligned mesh, AUC of the aligned-joint PCK over 0-50 mm,
MPJPE in camera space (mm, no alignment); 2D PCK@0.1 of the ground-truth box's long side
(`eval.metrics.pck_2d`, valid keypoints); the camera-space root (wrist) error and its depth part.
Vertex metrics need the prediction and the ground truth on one topology: when the vertex counts
differ (an OpenHand model on MANO ground truth) they are left out (null) with a note, never
computed across topologies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from handrecon.utils.io import atomic_write_json

DEFAULT_SPLITS = {"freihand": "evaluation", "synthetic": "val"}
PCK_2D_THRESHOLD = 0.1
METRIC_NAMES = ("pa_mpjpe_mm", "pa_mpvpe_mm", "f@5", "f@15", "auc", "mpjpe_mm", "pck2d@0.1",
                "root_error_mm", "root_depth_error_mm")


@dataclass
class EvalResult:
    """What `evaluate` did: metrics (None where not computable), notes and written files."""

    dataset: str
    split: str
    model: str
    num_samples: int
    metrics: dict[str, float | None] = field(default_factory=dict)
    official: dict[str, float | None] | None = None
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": self.split, "model": self.model, "num_samples": self.num_samples,
                "metrics": self.metrics, "official_freihand_scores": self.official, "notes": self.notes}


def evaluation_items(ds, dataset: str) -> list[tuple[int, int | None]]:
    """(sample index, hand index or None) pairs in dataset order, one per prediction."""
    if dataset == "freihand":  # one prediction per image, in the official order
        return [(i, 0 if ds[i].hands else None) for i in range(len(ds))]
    return [(i, j) for i in range(len(ds)) for j in range(len(ds[i].hands))]


def evaluate(
    model: Any,
    dataset: str,
    root: str | Path,
    split: str | None = None,
    out: str | Path | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Run `model` (a Reconstructor, or anything `handrecon.load` accepts) over a dataset, write
    ``pred.json`` and ``metrics.json`` into `out` (if given) and return the result."""
    from handrecon.data.loaders import build_dataset
    from handrecon.eval.submission import write_freihand_submission
    from handrecon.infer.predictor import Reconstructor, load

    dataset = dataset.lower()
    if dataset not in DEFAULT_SPLITS:
        raise ValueError(f"evaluate supports datasets {', '.join(DEFAULT_SPLITS)}, got {dataset!r}")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of samples, got {limit}")
    split = split or DEFAULT_SPLITS[dataset]
    rec = model if isinstance(model, Reconstructor) else load(model)
    ds = build_dataset(dataset, root, split)
    items = evaluation_items(ds, dataset)[:limit]
    if not items:
        raise ValueError(f"{root}: the {dataset} {split} split holds no hand to evaluate")

    pred: dict[str, list] = {"xyz": [], "verts": [], "uv": []}
    gt: dict[str, list] = {"xyz": [], "verts": [], "uv": [], "valid": [], "box": []}
    for s in range(0, len(items), batch_size):
        chunk = items[s:s + batch_size]
        samples = [ds[i] for i, _ in chunk]
        hands = [smp.hands[j] if j is not None else None for smp, (_, j) in zip(samples, chunk)]
        boxes = [None if dataset == "freihand" else h.box for h in hands]
        sides = ["right" if dataset == "freihand" else h.side for h in hands]
        results = rec.predict_batch([smp.image for smp in samples], boxes, sides, [smp.K for smp in samples],
                                    batch_size=batch_size)
        for r, h in zip(results, hands):
            ph = r.hands[0]
            pred["xyz"].append(ph.keypoints_3d)
            pred["verts"].append(ph.vertices)
            pred["uv"].append(ph.keypoints_2d)
            if h is not None:
                gt["xyz"].append(h.keypoints_3d)
                gt["verts"].append(h.vertices)
                gt["uv"].append(h.keypoints_2d)
                gt["valid"].append(h.keypoints_valid)
                gt["box"].append(h.box)
        if on_progress is not None:
            on_progress(min(s + batch_size, len(items)), len(items))

    result = EvalResult(dataset, split, rec.source or str(model), len(items))
    P = {k: np.stack(v).astype(np.float64) for k, v in pred.items()}
    gt_hand_model = "mano" if dataset == "freihand" else getattr(ds, "meta", {}).get("hand_model")
    if len(gt["uv"]) == len(items):
        result.metrics, result.official, result.notes = score(P, gt, rec.hand_model, gt_hand_model)
    else:
        result.metrics = dict.fromkeys(METRIC_NAMES)
        result.notes.append("no ground truth in this split: predictions written, no metrics "
                            "(for FreiHAND, submit pred.json to the official evaluation server)")
    if out is not None:
        out = Path(out)
        write_freihand_submission(out / "pred.json", P["xyz"], P["verts"])
        atomic_write_json(out / "metrics.json", result.to_json())
        result.files = {"predictions": str(out / "pred.json"), "metrics": str(out / "metrics.json")}
    return result


def score(pred: dict[str, np.ndarray], gt: dict[str, list], pred_hand_model: str | None = None,
          gt_hand_model: str | None = None) -> tuple[dict, dict | None, list[str]]:
    """(metrics, official FreiHAND scores, notes) of predictions against ground truth (see module
    doc). Vertex metrics need equal vertex counts and, where both are known, the same hand model."""
    from handrecon.eval.metrics import keypoint_errors, pck_2d
    from handrecon.eval.submission import FreihandSet, evaluate_freihand

    notes: list[str] = []
    metrics: dict[str, float | None] = dict.fromkeys(METRIC_NAMES)
    uv = np.stack(gt["uv"]).astype(np.float64)
    valid = np.stack(gt["valid"]).astype(bool)
    metrics["pck2d@0.1"] = pck_2d(pred["uv"], uv, np.stack(gt["box"]), PCK_2D_THRESHOLD, valid)
    if any(x is None for x in gt["xyz"]):
        notes.append("no 3D ground truth: 3D metrics not computed")
        return metrics, None, notes
    xyz = np.stack(gt["xyz"]).astype(np.float64)
    has_verts = all(v is not None for v in gt["verts"])
    same_count = has_verts and all(v.shape == pred["verts"].shape[1:] for v in gt["verts"])
    same_model = pred_hand_model is None or gt_hand_model is None or pred_hand_model == gt_hand_model
    same_topology = same_count and same_model
    if same_topology:
        official = evaluate_freihand(FreihandSet(pred["xyz"], pred["verts"]),
                                     FreihandSet(xyz, np.stack(gt["verts"]).astype(np.float64)))
    else:  # joints stand in for both vertex sets; their vertex and F-scores are dropped below
        official = evaluate_freihand(FreihandSet(pred["xyz"], pred["xyz"]), FreihandSet(xyz, xyz))
        for key in official:
            if key.startswith(("mesh_", "f_")):
                official[key] = None
        if has_verts:
            notes.append(f"the model's mesh ({pred_hand_model or 'unknown hand model'}, {pred['verts'].shape[1]} "
                         f"vertices) and the ground truth's ({gt_hand_model or 'unknown hand model'}, "
                         f"{gt['verts'][0].shape[0]} vertices) are different topologies: vertex metrics "
                         "(PA-MPVPE, F-scores) are not comparable and are left out; joint metrics only")
        else:
            notes.append("no ground-truth vertices: vertex metrics (PA-MPVPE, F-scores) left out")
    metrics.update({
        "pa_mpjpe_mm": official["xyz_al_mean3d"], "pa_mpvpe_mm": official["mesh_al_mean3d"],
        "f@5": official["f_al_score_5"], "f@15": official["f_al_score_15"], "auc": official["xyz_al_auc3d"],
        "mpjpe_mm": official["xyz_mean3d"],
    })
    root = pred["xyz"][:, 0] - xyz[:, 0]
    metrics["root_error_mm"] = 1000.0 * float(keypoint_errors(pred["xyz"][:, :1], xyz[:, :1]).mean())
    metrics["root_depth_error_mm"] = 1000.0 * float(np.abs(root[:, 2]).mean())
    return metrics, official, notes


def format_metric(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2f}" if key.endswith("_mm") else f"{value:.4f}"
