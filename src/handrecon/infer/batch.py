"""Run a predictor over images and folders and write every output (`handrecon reconstruct`).

Per input image `NAME`: `NAME.json` (the ImageResult), `NAME_hand{i}.{obj,ply,glb}` (camera-space
meshes) and `NAME_overlay.png` (mesh and skeleton over the image, with a side view). A bad or
unreadable file is reported and skipped; the run goes on and the report lists every failure.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np
import orjson
from PIL import Image

from handrecon.data.schema import IMAGE_SUFFIXES, LoadedImage, is_video, read_image
from handrecon.geometry.camera import default_intrinsics, scale_intrinsics, scale_points
from handrecon.infer.export import save_mesh
from handrecon.geometry.boxes import check_box
from handrecon.infer.predictor import check_input_image, check_intrinsics
from handrecon.infer.results import HandResult, ImageResult
from handrecon.render.overlay import SIDE_COLORS, SIDE_MESH_COLORS, draw_skeleton, label_boxes, overlay_mesh, side_view
from handrecon.utils.distributed import all_gather_object, current_rank
from handrecon.utils.io import atomic_open, atomic_write_bytes, make_output_folder
from handrecon.utils.threads import prefetch

OVERLAY_MAX_SIDE = 2048  # px: overlays of larger photos are drawn downscaled


class PredictorLike(Protocol):
    """What a batch run needs of a model: `infer.predictor.Predictor`'s predict and predict_batch."""

    def predict(self, image: np.ndarray, K: np.ndarray | None = None, boxes: np.ndarray | None = None,
                sides: list[str] | None = None) -> ImageResult: ...

    def predict_batch(self, images: list, Ks: list | None = None, boxes: list | None = None,
                      sides: list | None = None, batch_size: int = 32) -> list[ImageResult]: ...


@dataclass
class BatchReport:
    """What a batch run did: written files per input, and (input, reason) for each failure."""

    written: dict[str, list[str]] = field(default_factory=dict)
    failed: list[tuple[str, str]] = field(default_factory=list)
    num_hands: int = 0
    unmatched_prompts: list[str] = field(default_factory=list)  # --boxes keys that name no input image
    without_hands: list[str] = field(default_factory=list)  # inputs written with no hand in them

    @property
    def ok(self) -> bool:
        return not self.failed


def collect_files(paths: Iterable[str | Path], suffixes: Iterable[str], exclude: str | Path | None = None,
                  what: str = "image") -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files and folders (recursively, sorted) into the files whose suffix is one of `suffixes`
    (given files are kept whatever their suffix), each once.

    exclude: a folder whose contents are skipped inside input folders (the run's own output folder,
    so a second run does not reconstruct its own overlays). Returns (files, problems) where
    problems are (path, reason) for inputs that do not exist or folders holding no `what`.
    """
    suffixes = frozenset(s.lower() for s in suffixes)
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    skip = Path(exclude).resolve() if exclude is not None else None
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in suffixes
                           and not (skip is not None and q.resolve().is_relative_to(skip)))
            if not found:
                problems.append((str(p), f"folder holds no {what} ({', '.join(sorted(suffixes))})"))
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            problems.append((str(p), "no such file or folder"))
    unique = list({q.resolve(): q for q in files}.values())
    return unique, problems


def collect_images(paths: Iterable[str | Path], exclude: str | Path | None = None) -> tuple[list[Path], list[tuple[str, str]]]:
    """`collect_files` for images (`IMAGE_SUFFIXES`); a given video file, or a folder of videos and no
    image, is a problem that says where videos go (folders' videos are not collected)."""
    files, problems = collect_files(paths, IMAGE_SUFFIXES, exclude)
    for i, (path, reason) in enumerate(problems):
        videos = sum(1 for q in Path(path).rglob("*") if q.is_file() and is_video(q)) if Path(path).is_dir() else 0
        if videos:
            problems[i] = (path, f"{reason}; it holds {videos} video(s): `handrecon reconstruct` reads videos")
    video = {p: is_video(p) for p in files}
    problems += [(str(p), "a video, not an image: `handrecon reconstruct` reads videos (every frame's hands and "
                          "boxes, as JSON Lines)") for p in files if video[p]]
    return [p for p in files if not video[p]], problems


def unique_stems(images: list[Path]) -> list[str]:
    """Output names, unique and independent of the input order: the file stem; where several inputs
    share a stem, their path below the shared parent folder with the suffix, joined by '_'
    (``x.jpg``, ``x.png`` -> ``x_jpg``, ``x_png``; ``a/x.png``, ``b/x.png`` -> ``a_x_png``, ``b_x_png``).
    Raises ValueError, before anything is written, if two inputs would still share a name."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for p in images:
        groups[p.stem].append(p)
    names = []
    for p in images:
        group = groups[p.stem]
        if len(group) == 1:
            names.append(p.stem)
            continue
        base = Path(os.path.commonpath([q.resolve().parent for q in group]))
        rel = p.resolve().relative_to(base).with_suffix("")
        names.append("_".join((*rel.parts, p.suffix.lstrip(".").lower())))
    owners: dict[str, list[str]] = defaultdict(list)
    for p, n in zip(images, names):
        owners[n].append(str(p))
    clash = {n: ps for n, ps in owners.items() if len(ps) > 1}
    if clash:
        n, ps = next(iter(clash.items()))
        raise ValueError(f"inputs {' and '.join(ps)} would both write outputs named {n!r}; rename one of them "
                         "or reconstruct them into different --out folders")
    return names


def write_result(
    result: ImageResult,
    image: np.ndarray,
    out_dir: Path,
    stem: str,
    mesh_formats: tuple[str, ...] = ("obj", "ply", "glb"),
    overlay: bool = True,
    fitter: Any = None,
    settings: dict | None = None,
) -> list[str]:
    """Write NAME.json, per-hand meshes and the overlay for one image. Returns the file names.
    A hand with fitted parameters (``hand.fit``, from `fitter`) gets a rigged, posed GLB.
    settings: what produced the result (the predictor's ``settings``), written as the JSON's "model".

    All or nothing: a result with non-finite numbers is refused before anything is written
    (ValueError), and if any file fails the ones already written for this image are removed."""
    check_finite(result)
    written: list[Path] = []
    try:
        json_path = out_dir / f"{stem}.json"
        # every number is finite (check_finite), so orjson may write it: 10x faster than json here
        data = {**result.to_json(), **({"model": settings} if settings else {})}
        atomic_write_bytes(json_path, orjson.dumps(data) + b"\n", durable=False)
        written.append(json_path)
        for i, hand in enumerate(result.hands):
            for fmt in mesh_formats:
                path = out_dir / f"{stem}_hand{i}.{fmt}"
                if fmt == "glb" and hand.fit is not None and fitter is not None:
                    written.append(fitter.save_glb(path, hand.fit, hand.side))
                else:
                    written.append(save_mesh(path, hand.vertices, result.faces_for(hand.side)))
        if overlay:
            png = out_dir / f"{stem}_overlay.png"
            save_png(png, render_overlay(result, image))
            written.append(png)
    except BaseException:
        for f in written:
            f.unlink(missing_ok=True)
        raise
    return [f.name for f in written]


def check_finite(result: ImageResult) -> None:
    """ValueError naming the hand and field when a result holds NaN or infinite numbers (K, the
    hands' arrays, scores and fitted parameters)."""
    if not np.isfinite(np.asarray(result.K, np.float64)).all():
        raise ValueError(f"the camera K is not finite: {np.asarray(result.K).tolist()}; nothing written")
    for i, hand in enumerate(result.hands):
        name = nonfinite_field(hand)
        if name is not None:
            raise ValueError(f"hand {i}: the model produced non-finite {name} (NaN or inf); the input is out of "
                             "range (camera, box) or the model weights are corrupt; nothing written")


def nonfinite_field(hand: HandResult) -> str | None:
    """The first field of a hand (arrays, score, fitted parameters) holding NaN or infinite
    numbers, or None when every number is finite."""
    fit = hand.fit or {}
    values = {name: getattr(hand, name) for name in ("box", "keypoints_2d", "keypoints_3d", "vertices", "cam_t")}
    values["score"] = 0.0 if hand.score is None else hand.score
    values["side_score"] = 0.0 if hand.side_score is None else hand.side_score
    values.update({f"fit {k}": v for k, v in fit.items() if k not in ("hand_model", "joint_names")})
    for name, value in values.items():
        if not np.isfinite(np.asarray(value, np.float64)).all():
            return name
    return None


def render_overlay(result: ImageResult, image: np.ndarray, max_side: int = OVERLAY_MAX_SIDE) -> np.ndarray:
    """Image with every hand's mesh blended over it (coloured by side) and its skeleton drawn, the
    hands numbered in boxes coloured by side (several hands, or a model with scores), then a side
    view panel.

    `image` shows the result's image at any size (e.g. read reduced); the overlay is drawn at most
    `max_side` px on its longer side, so its memory is bounded whatever the photo's size."""
    H, W = result.image_size
    s = min(1.0, max_side / max(H, W))
    size = (max(1, round(W * s)), max(1, round(H * s)))
    if (image.shape[1], image.shape[0]) != size:
        image = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    sx, sy = size[0] / W, size[1] / H
    K = scale_intrinsics(result.K, sx, sy)
    front = image
    for hand in result.hands:
        front = overlay_mesh(front, hand.vertices, result.faces_for(hand.side), K, alpha=0.55,
                             color=SIDE_MESH_COLORS[hand.side])
    for hand in result.hands:
        front = draw_skeleton(front, scale_points(hand.keypoints_2d, sx, sy))
    if not result.hands:
        return front
    if len(result.hands) > 1 or result.hands[0].score is not None:  # number the hands, coloured by side
        labels = [f"{i} {h.side[0].upper()}" + ("" if h.score is None else f" {h.score:.2f}")
                  for i, h in enumerate(result.hands)]
        boxes = [scale_points(np.reshape(h.box, (2, 2)), sx, sy).reshape(4) for h in result.hands]
        front = label_boxes(front, np.array(boxes), labels, [SIDE_COLORS[h.side] for h in result.hands])
    # The renderer shades both sides of a face, so one winding serves every hand in the side view.
    h = front.shape[0]
    panel = side_view([hd.vertices for hd in result.hands], result.faces_for("right"), size=(h, max(h // 2, 64)))
    return np.concatenate([front, panel], axis=1)


def reconstruct_paths(
    predictor: PredictorLike,
    paths: Iterable[str | Path],
    out_dir: str | Path,
    box: np.ndarray | None = None,
    side: str | None = None,
    focal: float | None = None,
    mesh_formats: tuple[str, ...] = ("obj", "ply", "glb"),
    overlay: bool = True,
    on_progress: Callable[[str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    batch_size: int = 16,
    fitter: Any = None,
    prompts: dict[str, list[tuple[Any, str | None]]] | None = None,
    workers: int = 1,
) -> BatchReport:
    """Reconstruct every image in `paths` (files or folders) into `out_dir`.

    box / side / focal apply to every image (box: one hand prompt; without it a crop model takes
    the whole image as the hand and a full-image model finds the hands itself; focal in pixels
    builds K with the principal point at the image centre, else the default camera). Images are
    decoded by a reader thread ahead of the network, which runs on `batch_size` images at a time,
    `workers` batches at once (a predictor whose networks run on one thread each, see
    `parallel_batches`), and written by a writer thread while the network runs the next batches;
    a bad item fails alone. Under torchrun each rank reconstructs every world-th image into
    `out_dir` and all ranks return the merged report. on_start gets the number of images once they are collected;
    on_progress each image's path once it is done. fitter (`infer.fitting.HandFitter`): adds the
    hand model's fitted pose parameters to every hand. prompts: per image file name (or the end of
    its path), its hands as (box, side) pairs (`read_box_prompts`, matched by `match_box_prompts`;
    ValueError if a key is ambiguous), instead of `box` / `side` for the images it lists; the keys
    that name no image are in the report's `unmatched_prompts`.
    """
    check_batching(batch_size, workers)
    out_dir = Path(out_dir)
    images, problems = collect_images(paths, exclude=out_dir)
    stems = unique_stems(images)  # a name clash is an error before anything runs
    prompted, unmatched = match_box_prompts(prompts, images) if prompts is not None else ({}, [])
    if images:
        make_output_folder(out_dir)  # not per item: no image could be written
    rank, world = current_rank()  # under torchrun: every rank takes every world-th image
    shard = list(range(rank, len(images), world))
    images, stems = [images[i] for i in shard], [stems[i] for i in shard]
    if on_start is not None:
        on_start(len(images))
    report = BatchReport(failed=list(problems) if rank == 0 else [], unmatched_prompts=unmatched)

    def prepare(path: Path) -> tuple[LoadedImage, FilePrompt] | Exception:
        try:
            loaded = read_image(path, reduce=True)
            if path in prompted:
                hands = prompted[path]
                return loaded, file_prompt(loaded, [b for b, _ in hands], focal=focal,
                                           sides=[s for _, s in hands])
            return loaded, file_prompt(loaded, None if box is None else [box], focal=focal,
                                       sides=None if side is None else [side])
        except (ValueError, OSError) as e:
            return e

    def write(path: Path, stem: str, item: tuple[LoadedImage, FilePrompt], result: ImageResult) -> tuple[list[str], int]:
        loaded, prompt = item
        result = to_file_pixels(result, loaded, prompt.K_file)
        return write_result(result, loaded.image, out_dir, stem, mesh_formats, overlay, fitter,
                            getattr(predictor, "settings", None)), len(result.hands)

    def attach_fits(results: list) -> None:
        if fitter is not None:
            fitter.attach_fits([r for r in results if not isinstance(r, Exception)])

    run_batches(images, stems, prepare, lambda items: _predict_chunk(predictor, items), write, report, batch_size,
                workers, on_progress, after_predict=attach_fits)
    if world > 1:  # every rank wrote its own images; each returns the merged report
        merged = BatchReport(unmatched_prompts=report.unmatched_prompts)  # the same on every rank
        for part in all_gather_object(report):
            merged.written.update(part.written)
            merged.failed += part.failed
            merged.num_hands += part.num_hands
            merged.without_hands += part.without_hands
        return merged
    return report


def check_batching(batch_size: int, workers: int) -> None:
    """ValueError unless both are positive integers (before anything runs)."""
    for name, value in (("batch size", batch_size), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def run_batches(images: list[Path], stems: list[str], read: Callable[[Path], Any],
                predict: Callable[[list], list], write: Callable[[Path, str, Any, Any], tuple[list[str], int]],
                report: BatchReport, batch_size: int = 16, workers: int = 1,
                on_progress: Callable[[str], None] | None = None,
                after_predict: Callable[[list], None] | None = None) -> None:
    """The pipeline of the folder runners (`reconstruct_paths`, `infer.detect.detect_paths`):
    read(path) -> an item or an Exception, on a reader thread at most `workers` + 1 batches ahead;
    predict(items) -> one result or Exception per item, `batch_size` items per call, `workers` calls
    at once (each in its own thread: on a CPU, batches side by side beat one batch split over the
    cores); after_predict(results) on this thread, in input order; write(path, stem, item, result)
    -> (file names written, hands), on a writer thread while the next batches run. Each item that
    fails (reading, predicting or writing: ValueError or OSError) fails alone, into `report`;
    on_progress gets each path once it is done, in input order. The callers check batch_size and
    workers (`check_batching`) before they create anything."""

    def write_chunk(done: list[tuple[Path, str, Any, Any]]) -> BatchReport:
        part = BatchReport()
        for path, stem, item, result in done:
            try:
                if isinstance(result, Exception):
                    raise result
                part.written[str(path)], hands = write(path, stem, item, result)
                part.num_hands += hands
                if not hands:
                    part.without_hands.append(str(path))
            except (ValueError, OSError) as e:
                part.failed.append((str(path), str(e)))
        return part

    def finish(chunk: list, written: Future) -> None:
        part = written.result()
        report.written.update(part.written)
        report.failed += part.failed
        report.num_hands += part.num_hands
        report.without_hands += part.without_hands
        if on_progress is not None:
            for path, _, _ in chunk:
                on_progress(str(path))

    def chunks() -> Iterator[tuple[list, list]]:
        """(chunk, its readable items) of `batch_size` images; the unreadable ones fail here."""
        items = zip(images, stems, prefetch(reader, read, images, ahead=(workers + 1) * batch_size))
        while chunk := list(itertools.islice(items, batch_size)):
            report.failed += [(str(path), str(item)) for path, _, item in chunk if isinstance(item, Exception)]
            yield chunk, [(path, stem, item) for path, stem, item in chunk if not isinstance(item, Exception)]

    def predict_chunk(job: tuple[list, list]) -> tuple[list, list, list]:
        chunk, ready = job
        return chunk, ready, predict([r[2] for r in ready])

    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=workers) as network, \
            ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for chunk, ready, results in prefetch(network, predict_chunk, chunks(), ahead=workers):
            if after_predict is not None:
                after_predict(results)
            if pending is not None:
                finish(*pending)
            pending = chunk, writer.submit(write_chunk, [(*r, result) for r, result in zip(ready, results)])
        if pending is not None:
            finish(*pending)


def parallel_batches(threads: int | None) -> tuple[int | None, int]:
    """(network threads, batches at once) for reconstructing a folder of images. `threads` given:
    that many threads for one batch at a time. Otherwise one thread per batch and a batch per core
    of this process's share of the machine (the cores it may run on, divided among torchrun's local
    ranks; at most 8): on a CPU, batches side by side beat one batch split over the cores (300
    crops on 2 cores: onnxruntime 74-81 -> 90-94 img/s, torch 39-40 -> 60-65 img/s)."""
    if threads is not None:
        return threads, 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores //= max(int(os.environ.get("LOCAL_WORLD_SIZE", 1)), 1)
    return (1, min(cores, 8)) if cores > 1 else (None, 1)


def _predict_chunk(predictor: PredictorLike, items: list) -> list:
    """predict_batch over the chunk; if it fails, each item alone, so only the bad one fails."""
    if not items:
        return []
    prompts = [p for _, p in items]
    try:
        return predictor.predict_batch([p.image for p in prompts], [p.K for p in prompts], [p.boxes for p in prompts],
                                       [p.sides for p in prompts], batch_size=len(prompts))
    except ValueError:
        out = []
        for p in prompts:
            try:
                out.append(predictor.predict(p.image, K=p.K, boxes=p.boxes, sides=p.sides))
            except ValueError as e:
                out.append(e)
        return out


@dataclass
class FilePrompt:
    """What goes to the predictor for one file read by `read_image`: the (maybe reduced) image, its
    K, box and side prompts in its pixels, and the file's own K (results are mapped back to it)."""

    image: np.ndarray
    K: np.ndarray
    boxes: list | None
    sides: list | None
    K_file: np.ndarray


def file_prompt(loaded: LoadedImage, boxes: list | None = None, sides: list[str] | None = None,
                focal: float | None = None) -> FilePrompt:
    """Checked prompts for one file (boxes in the file's pixels, one side per box or one for the
    whole image), in the pixels of the image as decoded (ValueError if invalid)."""
    H, W = loaded.size
    sx, sy = loaded.scale
    check_input_image(loaded.image)
    K_file = check_intrinsics(None if focal is None else default_intrinsics((W, H), focal=focal), W, H)
    if boxes is not None:
        boxes = [scale_points(check_box(b, W, H).reshape(2, 2), sx, sy).reshape(4) for b in boxes]
    return FilePrompt(loaded.image, scale_intrinsics(K_file, sx, sy), boxes, sides, K_file)


def read_box_prompts(path: str | os.PathLike) -> dict[str, list[tuple[list[float], str | None]]]:
    """A ``--boxes`` file: JSON ``{"IMAGE": [HAND, ...]}`` with each HAND ``[x1, y1, x2, y2]``
    (pixels) or ``{"box": [x1, y1, x2, y2], "side": "left"}``; IMAGE is a file name or the end of
    its path (``"b/x.jpg"`` when two folders hold an ``x.jpg``; see `match_box_prompts`). ValueError
    naming the key and what is wrong."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"--boxes {path}: cannot read it as JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--boxes {path}: expected an object {{\"image.jpg\": [[x1, y1, x2, y2], ...]}}")
    out: dict[str, list[tuple[list[float], str | None]]] = {}
    for name, hands in data.items():
        if not isinstance(hands, list):
            raise ValueError(f"--boxes {path}: {name!r} must map to a list of hands")
        out[name] = []
        for i, hand in enumerate(hands):
            box, side = (hand.get("box"), hand.get("side")) if isinstance(hand, dict) else (hand, None)
            ok = (isinstance(box, list) and len(box) == 4
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box))
            if not ok or side not in (None, "left", "right"):
                raise ValueError(f"--boxes {path}: {name!r} hand {i}: give [x1, y1, x2, y2] in pixels or "
                                 f"{{\"box\": [...], \"side\": \"left\"|\"right\"}}, got {hand!r}")
            out[name].append(([float(v) for v in box], side))
    return out


def match_box_prompts(prompts: dict[str, list], images: list[Path]) -> tuple[dict[Path, list], list[str]]:
    """Each image's entry of a `read_box_prompts` dict, and the keys that name no image.

    A key matches an image whose path ends with the key's parts (``"x.jpg"``, ``"b/x.jpg"``; ``\\``
    and ``/`` alike); the longest matching key wins. ValueError when a key matches several images
    and none of them has a longer key of its own (say which folder it means), or when two keys are
    the same path."""
    parts = {}
    for key in prompts:
        p = tuple(x for x in key.replace("\\", "/").split("/") if x not in ("", "."))
        if not p:
            raise ValueError(f"--boxes: {key!r} names no file")
        if p in parts:
            raise ValueError(f"--boxes: {parts[p]!r} and {key!r} name the same file")
        parts[p] = key
    by_name: dict[str, list[tuple[str, ...]]] = {}
    for p in parts:
        by_name.setdefault(p[-1], []).append(p)
    matched: dict[Path, list] = {}
    hits: dict[tuple[str, ...], list[Path]] = {}
    for image in images:
        keys = [p for p in by_name.get(image.name, []) if image.parts[-len(p):] == p]
        if keys:
            best = max(keys, key=len)
            hits.setdefault(best, []).append(image)
            matched[image] = prompts[parts[best]]
    for p, found in hits.items():
        if len(found) > 1:
            names = ", ".join(str(f) for f in found[:3]) + (" ..." if len(found) > 3 else "")
            raise ValueError(f"--boxes: {parts[p]!r} matches {len(found)} images ({names}); key each by the end of "
                             f"its path, e.g. {'/'.join(found[0].parts[-len(p) - 1:])!r}")
    return matched, [parts[p] for p in parts if p not in hits]


def to_file_pixels(result: ImageResult, loaded: LoadedImage, K_file: np.ndarray) -> ImageResult:
    """A result on the decoded image, in the file's pixels (3D is the same camera either way)."""
    result.K = K_file
    if not loaded.reduced:
        return result
    sx, sy = loaded.scale
    for hand in result.hands:
        hand.keypoints_2d = scale_points(hand.keypoints_2d, 1 / sx, 1 / sy).astype(np.float32)
        hand.box = scale_points(np.reshape(hand.box, (2, 2)), 1 / sx, 1 / sy).reshape(4).astype(np.float32)
    result.image_size = loaded.size
    return result


def predict_file_pixels(predictor: PredictorLike, loaded: LoadedImage, box: Any = None, side: str | None = None,
                        focal: float | None = None) -> ImageResult:
    """Predict on an image read (possibly reduced) by `read_image`, with the box, focal and results
    all in the file's own pixels."""
    p = file_prompt(loaded, None if box is None else [box], None if side is None else [side], focal)
    return to_file_pixels(predictor.predict(p.image, K=p.K, boxes=p.boxes, sides=p.sides), loaded, p.K_file)


def save_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG atomically (a temp file, then a rename)."""
    with atomic_open(path, "wb") as f:
        Image.fromarray(image).save(f, format="PNG")
