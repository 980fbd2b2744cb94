"""Evaluate a model on a dataset the way the benchmark does (`handrecon evaluate`).

The runner takes any predictor (`infer.predictor.Predictor`, or anything with its `predict_batch`
and `detects_hands`), gives it each image once, and scores its hands with
`eval.scoring.score_hands` (the metrics every family's ``validate`` reports too):

- ``freihand`` (default split ``evaluation``): every image is already a 224×224 hand crop, so the
  whole image goes to the model (no box), as a right hand, with the dataset's K; its
  highest-scoring hand is the prediction. Predictions are camera-space joints and vertices (metres)
  written as the official ``pred.json``, one per image in the official order.
- ``synthetic`` (default split ``val``, the held-out shards): whole images with the dataset's K. A
  crop model gets every ground-truth box and side as prompts; a full-image model finds the hands
  itself. Predicted hands are matched to the ground truth (`eval.scoring.match_hands`, IoU ≥ 0.5,
  one-to-one, highest score first); a missed hand follows the HandOS convention. ``pred.json``
  holds one prediction per ground-truth hand (zeros where missed), in dataset order. A full-image
  model is also scored as HandOS reports it (`eval.scoring.full_image_scores`): COCO box AP / AP50
  of its detections, PCK@0.05/0.1/0.15 of its 2D and of its projected 3D keypoints, and PA-MPJPE /
  PA-MPVPE over the matched hands only; where keypoints carry occlusion labels (HInt), PCK@0.1
  over the visible and the occluded keypoints too (the paper's Table 5).
Under torchrun (``torchrun --nproc_per_node=N -m handrecon.cli evaluate ...``, one or many nodes)
each rank runs the model on every N-th image; rank 0 gathers the rows, scores them and writes the
files, with the same numbers as one process (tested).

- ``dexycb`` (default split ``s0_test``) and ``hint`` (default ``test``, 2D only: New Days, VISOR,
  Ego4D): whole images, as ``synthetic``. For DexYCB ``results.txt`` is the dex-ycb-toolkit's
  hand-pose result file (`eval.submission.write_dexycb_results`), and the toolkit's three joint
  errors are reported too: ``dexycb_{abs,rr,pa}_mpjpe_mm`` and ``_auc`` (absolute, root-relative,
  Procrustes-aligned; AUC over 0-50 mm).
- ``ho3d`` (default split ``evaluation``): whole 640×480 frames, as ``synthetic`` (a crop model gets
  the annotated ``handBoundingBox``; a full-image model finds the hand, HandOS's protocol on HO3D v3,
  or with ``gt_boxes`` takes that box as its prompt, as the paper's Table X).
  ``pred.json`` is the official Codalab submission (`eval.submission.write_ho3d_submission`: OpenGL
  frame, HO3D joint order, one entry per evaluation frame). The evaluation split's 3D ground truth is
  withheld, so only recall, precision and box AP are scored there; on ``train`` (joints; vertices
  with ``mano_dir``) every metric, plus HO3D's scale-translation-aligned joint error ``st_mpjpe_mm``.

``by`` (``evaluate --by KEY``) also scores the hands in groups: by a key of each ground-truth hand's
``meta`` (the synthetic engine and the foreign set record ``pose_kind``), else of its image's (a
synthetic image's ``background``, ``occluders``, ``clutter``...; HInt's ``subset``, DexYCB's
``serial`` (camera) and ``sequence``, HO3D's ``seq``). Each group's hands are scored as the whole
set's are (`score_hands`, the same missed-hand convention; for a full-image model also
`full_image_scores`), without precision and box AP, which belong to whole images' predictions; the
groups go into ``metrics.json`` under ``breakdown``.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from handrecon.data.loaders import build_dataset
from handrecon.eval.bootstrap import DEFAULT_LEVEL, bootstrap_intervals, check_resamples, paired_intervals
from handrecon.eval.detection import compare_detector_evaluations, detection_metrics, save_detections
from handrecon.eval.metrics import dexycb_metrics, keypoint_errors, scale_translation_align
from handrecon.eval.scoring import METRIC_NAMES, HandSet, full_image_scores, match_hands, per_hand_terms, score_hands
from handrecon.eval.submission import write_dexycb_results, write_freihand_submission, write_ho3d_submission
from handrecon.geometry.boxes import check_box
from handrecon.utils.distributed import all_gather_object, current_rank
from handrecon.utils.io import atomic_write_arrays, atomic_write_json, read_arrays
from handrecon.utils.threads import prefetch

PER_HAND_FILE = "per_hand.npz"  # `evaluate(bootstrap=...)`'s per-hand terms, for `compare_evaluations`
DETECTIONS_FILE = "detections.npz"  # and a model that finds the hands itself: its boxes, for the paired AP50
SIDES_GIVEN_NOTE = ("each hand's side was given (the ground truth's), so side_accuracy counts the given sides; "
                    "--read-sides lets the model read them")

DEFAULT_SPLITS = {"freihand": "evaluation", "synthetic": "val", "dexycb": "s0_test", "hint": "test", "ho3d": "evaluation"}
MANO_DATASETS = ("ho3d", "dexycb")  # ground-truth vertices only through the user's MANO files
# what the evaluation split of HO3D v3 annotates: the hand's box and its root joint (withheld: the rest)
HO3D_WITHHELD = ("pck2d@0.1", "pck2d@0.05", "pck2d@0.15", "pck2d_proj@0.05", "pck2d_proj@0.1", "pck2d_proj@0.15",
                 "pa_mpjpe_matched_mm", "pa_mpvpe_matched_mm")


@dataclass
class EvalResult:
    """What `evaluate` did: metrics (None where not computable), notes and written files.
    num_samples: images evaluated; num_hands: ground-truth hands among them."""

    dataset: str
    split: str
    model: str
    num_samples: int
    num_hands: int = 0
    metrics: dict[str, float | None] = field(default_factory=dict)
    official: dict[str, float | None] | None = None
    notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    breakdown: dict[str, Any] | None = None  # {"by": key, "groups": {value: {"num_hands": n, "metrics": {...}}}}
    # {"level", "resamples", "resampled": "images", "metrics": {name: {"value", "low", "high"}}}
    intervals: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "split": self.split, "model": self.model, "num_samples": self.num_samples,
                "num_hands": self.num_hands, "metrics": self.metrics, "official_freihand_scores": self.official,
                "notes": self.notes, **({"breakdown": self.breakdown} if self.breakdown is not None else {}),
                **({"intervals": self.intervals} if self.intervals is not None else {})}


def evaluate(
    predictor: Any,
    dataset: str,
    root: str | Path,
    split: str | None = None,
    out: str | Path | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    whole_image: bool = False,
    dataset_options: dict[str, Any] | None = None,
    gt_boxes: bool = False,
    workers: int = 1,
    read_sides: bool = False,
    by: str | None = None,
    bootstrap: int = 0,
) -> EvalResult:
    """Run `predictor` over the images of a dataset (the first `limit` of them), write ``pred.json``
    and ``metrics.json`` into `out` (if given) and return the result. `whole_image` (synthetic
    datasets of single-hand crops): each image goes whole to the model as one hand with its
    ground-truth side, as the FreiHAND protocol does, instead of with its ground-truth box.
    dataset_options: keyword options of the dataset's loader (e.g. ``mano_dir`` for HO3D and DexYCB
    vertices). gt_boxes: give a model that finds its own hands the ground-truth boxes as prompts (the
    HandOS paper's Table X) instead of scoring its detections (a crop model always gets them).
    workers: batches through the predictor at once, each in its own thread (the same results).
    read_sides: a crop model given boxes (or whole crops) reads each hand's side itself instead of
    being given the ground truth's, so that ``side_accuracy`` measures it (a model that finds its
    own hands always reads its sides). by: also score the hands grouped by this key of their meta
    (or their image's; module docstring), into ``result.breakdown``. bootstrap: resamples (>= 100; 0:
    none) of a 95 % percentile interval of PA-MPJPE, PA-MPVPE, MPJPE and PCK@0.1, the images resampled
    (`eval.bootstrap`), into ``result.intervals`` (and each `by` group's ``intervals``)."""
    dataset = dataset.lower()
    if dataset not in DEFAULT_SPLITS:
        raise ValueError(f"evaluate supports datasets {', '.join(DEFAULT_SPLITS)}, got {dataset!r}")
    if batch_size < 1 or workers < 1:
        raise ValueError(f"batch size and workers must be >= 1, got {batch_size} and {workers}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of images, got {limit}")
    if bootstrap:
        check_resamples(bootstrap)  # before any image is read
    if by is not None and (not isinstance(by, str) or not by.strip()):
        raise ValueError(f"by (--by) names a meta key of the hands or their images, e.g. pose_kind; got {by!r}")
    if dataset_options and "mano_dir" in dataset_options and dataset not in MANO_DATASETS:
        raise ValueError(f"mano_dir (--mano-dir) applies to {' and '.join(MANO_DATASETS)}, whose ground truth is MANO "
                         f"parameters; {dataset} has its vertices on disk or none")
    whole_crops = dataset == "freihand" or whole_image
    if gt_boxes and whole_crops:
        raise ValueError("ground-truth boxes (--gt-boxes) apply to whole images with annotated boxes; "
                         f"{'FreiHAND' if dataset == 'freihand' else '--whole-image'} gives each image whole as one hand")
    split = split or DEFAULT_SPLITS[dataset]
    ds = build_dataset(dataset, root, split, **(dataset_options or {}))
    indices = list(range(len(ds)))[:limit]
    if not indices:
        raise ValueError(f"{root}: the {dataset} {split} split holds no image to evaluate")
    prompted = not whole_crops and (gt_boxes or not getattr(predictor, "detects_hands", False))
    if by is not None:
        _check_group_key(ds[indices[0]], by, root)

    rank, world = current_rank()
    mine = indices[rank::world]  # under torchrun each rank evaluates its share, rank 0 scores them all
    per_image: list[tuple[int, dict[str, Any]]] = []
    left_out: list[str] = []  # "sample id: why" of ground-truth hands no box can show, in sample order
    per_hand: dict[str, np.ndarray] = {}  # with bootstrap: the image of each hand and its metrics' terms
    detections: tuple | None = None  # with bootstrap, a full-image model: `save_detections`' arguments

    def jobs() -> Iterator[tuple[list[int], list]]:
        """(indices, samples) per batch, read here, in order (images are decoded in `predict`)."""
        for s in range(0, len(mine), batch_size):
            chunk = mine[s:s + batch_size]
            yield chunk, [ds[i] for i in chunk]

    def predict(job: tuple[list[int], list]) -> tuple[list[int], list, list | ValueError, list[str]]:
        """One batch through the predictor (on a pool thread): its samples without the hands no box
        can show (a prompted model is not asked about them, a detecting one not expected to find
        them), the results or the ValueError, and the hands left out."""
        chunk, samples = job
        dropped: list[str] = []
        boxes = sides = None
        if whole_crops:
            if not read_sides:
                sides = [["right"] if dataset == "freihand" or not smp.hands else [smp.hands[0].side] for smp in samples]
        else:
            samples = [_without_unboxable_hands(smp, dropped) for smp in samples]
            if prompted:
                boxes = [[h.box for h in smp.hands] for smp in samples]
                if not read_sides:
                    sides = [[h.side for h in smp.hands] for smp in samples]
        try:
            return chunk, samples, predictor.predict_batch([smp.image for smp in samples], [smp.K for smp in samples],
                                                           boxes, sides, batch_size=batch_size), dropped
        except ValueError as e:
            return chunk, samples, e, dropped

    # `workers` batches go through the predictor at once (`infer.batch.parallel_batches`), scored
    # in order.
    with ThreadPoolExecutor(max_workers=workers) as network:
        for chunk, samples, results, dropped in prefetch(network, predict, jobs(), ahead=workers):
            left_out += dropped
            if isinstance(results, ValueError):  # name the sample (`utils.checks.ItemError` carries its index)
                i = getattr(results, "index", None)
                where = f"sample {samples[i].sample_id!r}" if i is not None else f"images {chunk[0]}-{chunk[-1]}"
                raise ValueError(f"{root}: {where}: {results}") from None
            for index, smp, result in zip(chunk, samples, results):
                rows = _score_rows(smp, result, whole_crops)
                rows["ids"] = [smp.meta.get("index", index)] * len(rows["gt"])  # the dataset's own index (DexYCB)
                if by is not None:
                    rows["groups"] = [_group_of(hand, smp, by) for hand in rows["gt"]]
                per_image.append((index, rows))
            if on_progress is not None:
                on_progress(len(per_image), len(mine))
    per_image = sorted((item for part in all_gather_object(per_image) for item in part), key=lambda item: item[0])
    gt_hands = [g for _, r in per_image for g in r["gt"]]
    pred_rows = [p for _, r in per_image for p in r["pred"]]
    found = [f for _, r in per_image for f in r["found"]]
    hand_Ks = [k for _, r in per_image for k in r["K"]]
    image_boxes = [r["boxes"] for _, r in per_image if r["boxes"] is not None]
    num_predictions = sum(r["num_predictions"] for _, r in per_image)

    num_vertices = next((len(h.vertices) for h in pred_rows if h is not None), 0)
    P = {key: np.stack([np.asarray(getattr(h, key), np.float64) if h is not None else np.zeros(shape)
                        for h in pred_rows])
         for key, shape in (("keypoints_2d", (21, 2)), ("keypoints_3d", (21, 3)), ("vertices", (num_vertices, 3)))}
    result = EvalResult(dataset, split, getattr(predictor, "source", "") or type(predictor).__name__, len(indices),
                        sum(h is not None for h in gt_hands))
    if gt_hands and all(h is not None for h in gt_hands):
        gt_hand_model = "mano" if dataset == "freihand" else getattr(ds, "meta", {}).get("hand_model")
        pred_sides = [h.side if h is not None else "" for h in pred_rows]
        found_rows = np.array(found)
        result.metrics, result.official, result.notes = score(
            P, gt_hands, found_rows, pred_sides,
            None if whole_crops else num_predictions, getattr(predictor, "hand_model", None), gt_hand_model)
        full_image = not whole_crops and not prompted  # the model found the hands itself: HandOS's protocol
        hand_sets = _hand_sets(P, gt_hands, pred_sides)  # (prediction, ground truth), every hand stacked once
        if full_image:
            visible, Ks = np.stack([h.visibility > 0.5 for h in gt_hands]), np.stack(hand_Ks)
            gts, boxes, scores = map(list, zip(*image_boxes))
            det = detection_metrics(gts, boxes, scores)
            result.metrics.update(ap=det["ap"], ap50=det["ap50"])
            if bootstrap:
                detections = (gts, None, boxes, scores, det["threshold"])
            result.metrics.update(full_image_scores(*hand_sets, found_rows, Ks, visible))

        def hand_scores(rows: np.ndarray) -> dict[str, float | None]:
            """The per-hand metrics of the hands `rows` (`by`'s groups): `score`, and for a full-image model
            `full_image_scores` (PCK at three thresholds, of the projected 3D too; errors over the matched)."""
            sub, hands, sides = {k: v[rows] for k, v in P.items()}, [gt_hands[i] for i in rows], [pred_sides[i] for i in rows]
            metrics, _, _ = score(sub, hands, found_rows[rows], sides, None, getattr(predictor, "hand_model", None),
                                  gt_hand_model)
            if full_image:
                metrics.update(full_image_scores(*_hand_sets(sub, hands, sides), found_rows[rows], Ks[rows], visible[rows]))
            metrics.pop("precision", None)  # a whole image's predictions, not a group of hands'
            return metrics

        if by is not None:
            groups = [g for _, r in per_image for g in r["groups"]]
            result.breakdown = _breakdown(by, groups, hand_scores, root)
        gt_joints = hand_sets[1].keypoints_3d  # None unless every hand has 3D
        if dataset == "ho3d":
            _ho3d_metrics(result, P["keypoints_3d"], gt_joints)
        if dataset == "dexycb" and gt_joints is not None:
            scores = dexycb_metrics(P["keypoints_3d"], gt_joints)
            for variant, name in (("absolute", "abs"), ("root-relative", "rr"), ("procrustes", "pa")):
                result.metrics[f"dexycb_{name}_mpjpe_mm"] = scores[variant]["mpjpe"]
                result.metrics[f"dexycb_{name}_auc"] = scores[variant]["auc"]
        if bootstrap:
            images = np.array([index for index, r in per_image for _ in r["gt"]])
            terms = per_hand_terms(*hand_sets, found_rows, getattr(predictor, "hand_model", None), gt_hand_model)
            terms = {k: v for k, v in terms.items() if result.metrics.get(k) is not None and v[1].sum() > 0}

            def hand_intervals(rows: np.ndarray) -> dict[str, dict[str, float]]:
                return bootstrap_intervals({k: (num[rows], den[rows]) for k, (num, den) in terms.items()
                                            if den[rows].sum() > 0}, images[rows], bootstrap)

            result.intervals = {"level": DEFAULT_LEVEL, "resamples": int(bootstrap), "resampled": "images",
                                "metrics": hand_intervals(np.arange(len(images)))}
            per_hand = {"image": images, "gt_box": hand_sets[1].boxes,
                        **{f"{part}__{k}": v[i] for k, v in terms.items() for i, part in enumerate(("num", "den"))}}
            if result.breakdown is not None:
                labels = np.array(groups, dtype=object)
                for value, group in result.breakdown["groups"].items():
                    group["intervals"] = hand_intervals(np.flatnonzero(labels == value))
    else:
        result.metrics = dict.fromkeys(METRIC_NAMES)
        result.notes.append("no ground truth in this split: predictions written, no metrics "
                            "(for FreiHAND, submit pred.json to the official evaluation server)")
    left_out = [item for part in all_gather_object(left_out) for item in part]
    if left_out:
        result.notes.append(f"{len(left_out)} ground-truth hand(s) left out: no box can show them, as a "
                            f"prompt or a detection (first: {left_out[0]})")
    if (prompted or whole_crops) and not read_sides and not getattr(predictor, "detects_hands", False):
        result.notes.append(SIDES_GIVEN_NOTE)
    if gt_boxes and getattr(predictor, "detects_hands", False):
        result.notes.append("ground-truth boxes were the prompts (the HandOS paper's Table X protocol), not the "
                            "model's own detections: no box AP, and recall counts prompts answered")
    rotations = getattr(predictor, "test_time_rotations", (0.0,))
    if len(rotations) > 1:
        result.notes.append(f"test-time rotations: each hand seen at {', '.join(f'{a:g}' for a in rotations)} degrees, "
                            "the views averaged, weighted by their heatmap peaks")
    elif getattr(predictor, "second_look", False):
        result.notes.append("second look: hands with a heatmap peak below the threshold seen again at +-45 degrees, "
                            "the views averaged, weighted by their heatmap peaks" +
                            ("; each hand given whole also framed around its landmarks, the framings averaged"
                             if whole_crops else ""))
    precision = getattr(predictor, "settings", {}).get("precision")
    if precision == "int8":
        result.notes.append("int8: the crop model ran its int8 export (int8 convolutions, onnxruntime)")
    elif precision == "bfloat16":
        result.notes.append("bf16: the crop model ran on torch under bf16 autocast")
    if out is not None and rank == 0:
        out = Path(out)
        write = write_ho3d_submission if dataset == "ho3d" else write_freihand_submission
        write(out / "pred.json", P["keypoints_3d"], P["vertices"])
        if dataset == "dexycb":
            write_dexycb_results(out / "results.txt", [i for _, r in per_image for i in r["ids"]], P["keypoints_3d"])
            result.files["results"] = str(out / "results.txt")
        if result.intervals is not None:  # what `compare_evaluations` pairs with another model's
            atomic_write_arrays(out / PER_HAND_FILE, per_hand)
            result.files["per_hand"] = str(out / PER_HAND_FILE)
        if detections is not None:
            save_detections(out / DETECTIONS_FILE, *detections)
            result.files["detections"] = str(out / DETECTIONS_FILE)
        for name in {PER_HAND_FILE, DETECTIONS_FILE} - {Path(f).name for f in result.files.values()}:
            (out / name).unlink(missing_ok=True)  # an earlier run's, which `compare_evaluations` would pair
        atomic_write_json(out / "metrics.json", result.to_json())
        result.files.update(predictions=str(out / "pred.json"), metrics=str(out / "metrics.json"))
    return result


def compare_evaluations(a: str | Path, b: str | Path, resamples: int = 1000, seed: int = 0
                        ) -> dict[str, dict[str, float]]:
    """Paired bootstrap of two evaluations of the same hands (`evaluate` output folders, each run with
    `bootstrap`, so each holds `PER_HAND_FILE`): per metric both have, A's and B's values, B − A and
    the 95 % interval of B − A (`eval.bootstrap.paired_intervals`). ValueError naming the folder where
    a file is missing or unreadable, or where the two did not score the same hands (the same images
    and ground-truth boxes). Two models that found the hands themselves (both folders hold
    `DETECTIONS_FILE`) are also compared as detectors: AP50, precision, recall and the hand-free rate
    (`eval.detection.compare_detector_evaluations`). Two files instead (`evaluate-detector --out`
    metrics JSON files or their detections) compare two detectors alone."""
    detector = [Path(p).is_file() or Path(p).suffix in (".json", ".npz") for p in (a, b)]
    if any(detector):
        file, other = (a, b) if detector[0] else (b, a)
        if Path(other).is_dir():
            raise ValueError(f"{file} is a file (a detector evaluation) and {other} a folder: compare two "
                             "`evaluate --out` folders or two `evaluate-detector --out` files")
        return compare_detector_evaluations(a, b, resamples, seed)
    sets = []
    for folder in (Path(a), Path(b)):
        path = folder / PER_HAND_FILE
        arrays = read_arrays(path, "a per-hand file of `handrecon evaluate --bootstrap`",
                             f"run `handrecon evaluate ... --bootstrap 1000 --out {folder}` first", ("image", "gt_box"))
        names = [k for k in METRIC_NAMES if "num__" + k in arrays and "den__" + k in arrays]
        sets.append((arrays["image"], arrays["gt_box"], {k: (arrays["num__" + k], arrays["den__" + k]) for k in names}))
    (images_a, boxes_a, terms_a), (images_b, boxes_b, terms_b) = sets
    if images_a.shape != images_b.shape or not (np.array_equal(images_a, images_b) and np.array_equal(boxes_a, boxes_b)):
        raise ValueError(f"{a} and {b} did not score the same hands ({len(images_a)} and {len(images_b)} hands, "
                         "or other ground-truth boxes): evaluate both models on the same dataset, split and --limit")
    if not set(terms_a) & set(terms_b):
        raise ValueError(f"{a} and {b} share no metric to compare")
    rows = paired_intervals(terms_a, terms_b, images_a, resamples, DEFAULT_LEVEL, seed)
    if all((Path(folder) / DETECTIONS_FILE).is_file() for folder in (a, b)):  # two models that found the hands
        rows.update(compare_detector_evaluations(Path(a) / DETECTIONS_FILE, Path(b) / DETECTIONS_FILE, resamples, seed))
    return rows


def _ho3d_metrics(result: EvalResult, xyz: np.ndarray, gt_joints: np.ndarray | None) -> None:
    """HO3D's additions: the scale-translation-aligned joint error where the 3D ground truth
    `gt_joints` (N, 21, 3) is known (train), or, on the evaluation split (box and root only, None),
    no keypoint metrics and a note."""
    if gt_joints is not None:
        aligned = scale_translation_align(xyz, gt_joints, "op21")
        result.metrics["st_mpjpe_mm"] = 1000.0 * float(keypoint_errors(aligned, gt_joints).mean())
        return
    for key in HO3D_WITHHELD:
        if key in result.metrics:
            result.metrics[key] = None
    result.notes = [n for n in result.notes if not n.startswith("no 3D ground truth")]
    result.notes.append("HO3D v3 evaluation: the 3D ground truth is withheld; zip pred.json (OpenGL frame, HO3D "
                        "joint order) and submit it to the official HO3D v3 Codalab challenge for the 3D scores")


MISSING_GROUP = "(none)"


def _group_of(hand: Any, smp: Any, key: str) -> str:
    """A ground-truth hand's group for `evaluate(by=key)`: its meta's value for `key`, else its image's,
    as text (JSON for numbers, booleans, None and lists of them); `MISSING_GROUP` where neither has the
    key. A value that is no label (an array, a path) is a ValueError naming the sample."""
    meta = getattr(hand, "meta", None) or {}
    value = meta[key] if key in meta else smp.meta.get(key, MISSING_GROUP)
    if isinstance(value, np.generic):
        value = value.item()
    scalar = (str, bool, int, float, type(None))
    if not isinstance(value, scalar) and not (isinstance(value, (list, tuple)) and all(isinstance(v, scalar) for v in value)):
        raise ValueError(f"sample {smp.sample_id!r}: its meta key {key!r} (--by) holds a {type(value).__name__}, not a "
                         "label to group hands by; pick a key that holds text, a number or a list of them")
    return value if isinstance(value, str) else json.dumps(value)


def _check_group_key(smp: Any, key: str, root: str | Path) -> None:
    """Before any prediction: the first image, if it holds a hand, must carry `key` in its meta or its
    hands' (a data set carries the same keys throughout), else a ValueError naming the keys it has
    (`_breakdown` still catches a set whose hands come later)."""
    hand_keys = {k for hand in smp.hands for k in hand.meta}
    if smp.hands and key not in hand_keys and key not in smp.meta:
        raise ValueError(f"{root}: its hands and images do not carry the meta key {key!r} (--by); the first image's "
                         f"hands carry {sorted(hand_keys) or 'none'}, the image {sorted(smp.meta) or 'none'}")


def _breakdown(key: str, groups: list[str], hand_scores: Callable[[np.ndarray], dict[str, float | None]],
               root: str | Path) -> dict[str, Any]:
    """`hand_scores` of each group of hands (`_group_of`; one label per hand, in scoring order):
    {"by": key, "groups": {value: {"num_hands": n, "metrics": {...}}}}, groups in sorted order."""
    labels = np.array(groups, dtype=object)
    if (labels == MISSING_GROUP).all():
        raise ValueError(f"{root}: no hand and no image carries the meta key {key!r} (--by); the synthetic engine "
                         "records each hand's pose_kind and each image's background, occluders, clutter, ...")
    out = {}
    for value in sorted(set(groups)):
        rows = np.flatnonzero(labels == value)
        out[value] = {"num_hands": int(len(rows)), "metrics": hand_scores(rows)}
    return {"by": key, "groups": out}


def _without_unboxable_hands(smp: Any, left_out: list[str]) -> Any:
    """`smp` without the hands whose ground-truth box `geometry.boxes.check_box` refuses (a hand
    entirely outside its image, a box under `MIN_BOX_PX`); each is added to `left_out` as
    "sample id: why". Reads the image (its size)."""
    H, W = smp.image.shape[:2]
    kept = []
    for hand in smp.hands:
        try:
            check_box(hand.box, W, H)
            kept.append(hand)
        except ValueError as e:
            left_out.append(f"{smp.sample_id}: {e}")
    return smp if len(kept) == len(smp.hands) else replace(smp, hands=kept)


def _score_rows(smp: Any, result: Any, whole_crops: bool) -> dict[str, Any]:
    """One image's rows for scoring: its ground-truth hands, the matched predictions (None where
    missed), found flags, K per hand, the image's boxes for box AP, and its number of predictions."""
    hands = result.hands
    if whole_crops:  # one hand per image, the model's best, in the official order
        best = max(hands, key=_score) if hands else None
        return {"gt": [smp.hands[0] if smp.hands else None], "pred": [best], "found": [best is not None],
                "K": [result.K], "boxes": None, "num_predictions": len(hands)}
    pred_boxes = np.array([h.box for h in hands]).reshape(-1, 4)
    scores = np.array([_score(h) for h in hands])
    gt_boxes = np.array([h.box for h in smp.hands]).reshape(-1, 4)
    match = match_hands(pred_boxes, scores, gt_boxes)
    return {"gt": list(smp.hands), "pred": [hands[m] if m >= 0 else None for m in match], "found": list(match >= 0),
            "K": [result.K] * len(smp.hands), "boxes": (gt_boxes, pred_boxes, scores), "num_predictions": len(hands)}


def _hand_sets(pred: dict[str, np.ndarray], gt_hands: list, pred_sides: list[str]) -> tuple[HandSet, HandSet]:
    """The stacked predictions and ground truth as `HandSet`s (3D and vertices where all hands have them)."""
    has_3d = all(h.keypoints_3d is not None for h in gt_hands)
    verts = has_3d and all(h.vertices is not None for h in gt_hands) and len({len(h.vertices) for h in gt_hands}) == 1
    gt = HandSet(np.stack([h.keypoints_2d for h in gt_hands]).astype(np.float64),
                 np.stack([h.keypoints_3d for h in gt_hands]).astype(np.float64) if has_3d else None,
                 np.stack([h.vertices for h in gt_hands]).astype(np.float64) if verts else None,
                 np.stack([h.box for h in gt_hands]).astype(np.float64), [h.side for h in gt_hands],
                 np.stack([h.keypoints_valid for h in gt_hands]).astype(bool))
    return HandSet(pred["keypoints_2d"], pred["keypoints_3d"], pred["vertices"], gt.boxes, list(pred_sides)), gt


def _score(hand: Any) -> float:
    """A hand's score for ranking; a model without scores (None) ranks its hands in output order."""
    return 0.0 if hand.score is None else float(hand.score)


def score(pred: dict[str, np.ndarray], gt_hands: list, found: np.ndarray, pred_sides: list[str],
          num_predictions: int | None, pred_hand_model: str | None, gt_hand_model: str | None,
          ) -> tuple[dict, dict | None, list[str]]:
    """`score_hands` of the stacked predictions against the dataset's `HandAnnotation`s."""
    prediction, gt = _hand_sets(pred, gt_hands, pred_sides)
    return score_hands(prediction, gt, found, num_predictions, pred_hand_model, gt_hand_model)


def format_metric(key: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2f}" if key.endswith("_mm") else f"{value:.4f}"
