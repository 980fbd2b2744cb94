"""Reconstruct the hands of a video (`handrecon reconstruct clip.mp4`).

Any format ffmpeg reads (decoded with PyAV), and animated GIF, WebP and PNG images (decoded with
PIL, each frame shown for its own duration). Per video `NAME`:

- `NAME.jsonl`: one JSON line per frame, ``{"frame_index", "time", "image_size", "K", "hands"}`` (time: s, the
  frame's timestamp from the first frame), each hand as in the image JSON plus its ``track_id`` (stable over
  frames, `infer.tracking`) and, with smoothing on, One-Euro-filtered keypoints, vertices and translation;
- `NAME_overlay.mp4`: the overlay of every frame (meshes, skeletons, a side view; H.264);
- with a fitter (``--fit``): `NAME_track{ID}.glb`, the hand model skinned and animated by its
  fitted pose, one keyframe per frame the track is seen (`infer.rig`);
- `NAME.state.json`: how far the run got and the tracker's state. An interrupted run resumes from
  its last complete chunk of frames with the same settings (the same model, focal, smoothing and --fit),
  with the same output as an uninterrupted one; a finished video is not redone.

Behind a detector (a two-stage pipeline), a confirmed track continues at `track_threshold`
(``--track-threshold``, 0.2), below the score a new hand needs (the pipeline's; `infer.tracking`'s
`birth_score`): the detector runs at the lower threshold and the tracker drops the doubtful hands
that continue no confirmed track. There the detector's box verifier reads the 8 best candidates of
a frame instead of 20 (`TRACKED_MAX_HANDS`; its crops are what the low threshold costs), so a frame
keeps at most 8 hands. Measured in `docs/inference.md`, "Videos".

Frames go through the model `batch_size` at a time; progress reports frames per second.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from handrecon.data.schema import MAX_IMAGE_PIXELS, VIDEO_SUFFIXES, error_detail, is_animated_image, is_video
from handrecon.eval.operating_point import DEFAULT_TRACK_THRESHOLD
from handrecon.geometry.camera import default_intrinsics
from handrecon.infer.batch import nonfinite_field, render_overlay
from handrecon.infer.pipeline import TwoStagePredictor
from handrecon.infer.results import HandResult, ImageResult
from handrecon.infer.tracking import HandTracker, OneEuroConfig
from handrecon.utils.io import atomic_write_json, make_output_folder
from handrecon.utils.threads import prefetch

TRACKED_MAX_HANDS = 8  # per frame at the track threshold: the box verifier reads the 8 best candidates, not 20
STATE_VERSION = 4  # 3: the 3D fields' filters follow the hand's 2D speed; 4: tracked hands continue at track_threshold


class VideoError(ValueError):
    """A video that cannot be read or a run that cannot resume, with what to do about it."""


@dataclass
class VideoReport:
    """frames: frames with results; hands: hand detections over all frames; tracks: distinct ids;
    resumed_at: the frame a resumed run started from (0: a fresh run); files: what was written;
    frames_per_second: processing speed of this invocation; dropped: (frame, reason) of each hand
    left out because the model gave it non-finite numbers (this invocation)."""

    frames: int = 0
    hands: int = 0
    tracks: int = 0
    resumed_at: int = 0
    frames_per_second: float = 0.0
    files: list[str] = field(default_factory=list)
    dropped: list[tuple[int, str]] = field(default_factory=list)


def video_frames(path: str | os.PathLike, start: int = 0
                 ) -> tuple[Iterator[tuple[int, np.ndarray, float]], float, int | None]:
    """(iterator of (index, RGB uint8 frame, time in seconds from the first frame) from frame
    `start`, average frames per second, frame count if the container says). Frames before `start`
    are decoded and dropped. Times are the frames' timestamps (`FrameClock`), so a variable-frame-rate
    clip (a phone's, in low light) keeps its real timing. Each frame is turned upright by its display
    matrix (`upright`: a phone's portrait clip is stored sideways with a rotation to show it), as
    players show it and as EXIF orientation is applied to photos. An animated image is read by
    `animated_image_frames`."""
    if is_animated_image(path):
        return animated_image_frames(path, start)
    import av

    try:
        container = av.open(str(path))
        stream = container.streams.video[0]
    except (av.FFmpegError, IndexError, OSError) as e:
        raise VideoError(f"{path}: cannot read it as a video ({error_detail(e, path)}); any format ffmpeg reads "
                         "works") from None
    fps = float(stream.average_rate or stream.guessed_rate or 30)
    count = stream.frames or None

    def frames() -> Iterator[tuple[int, np.ndarray, float]]:
        try:
            clock = FrameClock(fps)
            for i, frame in enumerate(container.decode(stream)):
                t = clock.time(i, frame.time)
                if i >= start:
                    yield i, upright(frame.to_ndarray(format="rgb24"), frame.rotation), t
        except av.FFmpegError as e:
            raise VideoError(f"{path}: decoding failed at a frame ({e})") from None
        finally:
            container.close()

    return frames(), fps, count


MIN_FRAME_MS = 20  # GIF delays below this (0 or 1 hundredth, "as fast as possible") play at 100 ms in browsers
DEFAULT_FRAME_MS = 100


def animated_image_frames(path: str | os.PathLike, start: int = 0
                          ) -> tuple[Iterator[tuple[int, np.ndarray, float]], float, int]:
    """`video_frames` for an animated GIF, WebP or PNG: each frame composited as viewers show it
    (PIL), RGB uint8, at the time the frames before it add up to (each frame's own duration; below
    `MIN_FRAME_MS`, `DEFAULT_FRAME_MS`, as browsers play them); frames per second from the first
    frame's duration; the frame count."""
    from PIL import Image

    try:
        im = Image.open(path)
        count, (W, H) = int(im.n_frames), im.size
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise VideoError(f"{path}: cannot read it as an animated image ({error_detail(e, path)})") from None
    if W * H > MAX_IMAGE_PIXELS:
        im.close()
        raise VideoError(f"{path}: {W} x {H} frames are over handrecon's limit of {MAX_IMAGE_PIXELS / 1e6:.0f} MP")

    def duration_ms() -> float:
        ms = float(im.info.get("duration") or 0)
        return ms if ms >= MIN_FRAME_MS else DEFAULT_FRAME_MS

    fps = 1000.0 / duration_ms()

    def frames() -> Iterator[tuple[int, np.ndarray, float]]:
        t = 0.0
        try:
            for i in range(count):
                im.seek(i)
                if i >= start:
                    yield i, np.array(im.convert("RGB"), dtype=np.uint8), t
                t += duration_ms() / 1000.0
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise VideoError(f"{path}: decoding failed at a frame ({e})") from None
        finally:
            im.close()

    return frames(), fps, count


class FrameClock:
    """Each frame's time in seconds from the first frame: its timestamp, strictly after the frame
    before (a repeated or backward timestamp, as in a damaged file, is placed one average frame
    interval after it: the smoothing's time steps and the animated GLB's keyframes need it), or
    index / fps when the stream has no timestamps."""

    def __init__(self, fps: float) -> None:
        self.fps, self.origin, self.last = fps, None, None

    def time(self, index: int, stamp: float | None) -> float:
        if self.origin is None and stamp is not None and index == 0:
            self.origin = stamp
        t = index / self.fps if stamp is None or self.origin is None else stamp - self.origin
        if self.last is not None and t <= self.last:
            t = self.last + 1.0 / self.fps
        self.last = t
        return t


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """(H, W, 3) decoded frame -> as displayed: turned by its display matrix's `rotation` (degrees
    counter-clockwise, PyAV's `VideoFrame.rotation`; -90 for a phone held upright), in quarter turns."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def reconstruct_video(predictor: Any, path: str | os.PathLike, out_dir: str | os.PathLike,
                      smoothing: OneEuroConfig | None = OneEuroConfig(), focal: float | None = None,
                      box: Any = None, side: str | None = None, overlay: bool = True, fitter: Any = None,
                      batch_size: int = 8, on_progress: Callable[[int, int | None, float], None] | None = None,
                      max_frames: int | None = None, workers: int = 1,
                      track_threshold: float | None = DEFAULT_TRACK_THRESHOLD) -> VideoReport:
    """Reconstruct every frame of the video at `path` into `out_dir` (module docstring). box /
    side: one hand prompt for every frame (a crop model); on_progress(frames done, total or None,
    frames per second); max_frames: a ValueError before anything runs for a longer video;
    workers: chunks of `batch_size` frames through the predictor at once (each in its own thread);
    track_threshold: the detector score at which a tracked hand continues (a two-stage pipeline
    without `box`; None, or not below the pipeline's threshold: every hand needs the pipeline's)."""
    path, out_dir = Path(path), Path(out_dir)
    make_output_folder(out_dir)
    jsonl, state_path = out_dir / f"{path.stem}.jsonl", out_dir / f"{path.stem}.state.json"
    birth_score = None
    if (box is None and track_threshold is not None and isinstance(predictor, TwoStagePredictor)
            and track_threshold < predictor.score_threshold):
        birth_score = predictor.score_threshold
        predictor = predictor.at_threshold(track_threshold, max_hands=min(predictor.max_hands, TRACKED_MAX_HANDS))
    settings = {"source": str(path.resolve()), "model": getattr(predictor, "settings", None), "focal": focal,
                "birth_score": birth_score,
                "box": None if box is None else [float(b) for b in box], "side": side,
                "smoothing": None if smoothing is None else asdict(smoothing), "fit": fitter is not None,
                "version": STATE_VERSION}
    tracker = HandTracker(smoothing)
    report = VideoReport()
    state = _read_state(state_path)
    track_ids: set[int] = set()
    fps = 30.0
    if state is not None and state.get("settings") == settings and jsonl.is_file():
        report.resumed_at, fps = int(state["frames_done"]), float(state["fps"])
        tracker.load_state(state["tracker"])
        _truncate_lines(jsonl, report.resumed_at)
        report.hands, track_ids = int(state["hands"]), set(state["track_ids"])
    else:  # fresh, or another run's partial output: start over with these settings (once the video opens)
        state = None
    done = report.resumed_at

    def save_state(complete: bool) -> None:
        atomic_write_json(state_path, {"settings": settings, "frames_done": done, "hands": report.hands,
                                       "track_ids": sorted(track_ids), "tracker": tracker.state(), "fps": fps,
                                       "complete": complete}, indent=None)

    t0 = time.perf_counter()
    if not (state is not None and state.get("complete")):
        frames, fps, total = video_frames(path, report.resumed_at)
        if max_frames is not None and total is not None and total > max_frames:
            raise VideoError(f"{path.name}: {total} frames, more than the {max_frames} allowed here; "
                             "run `handrecon reconstruct` on it")
        if state is None:
            jsonl.write_text("")
        def predict(chunk: list[tuple[int, np.ndarray]]) -> tuple[list, list[ImageResult]]:
            H, W = chunk[0][1].shape[:2]
            K = default_intrinsics((W, H), focal=focal)
            boxes = None if box is None else [[box]] * len(chunk)
            sides = None if side is None else [[side]] * len(chunk)
            return chunk, predictor.predict_batch([f for _, f, _ in chunk], [K] * len(chunk), boxes, sides,
                                                  batch_size=len(chunk))

        # `workers` chunks go through the predictor at once (`infer.batch.parallel_batches`);
        # tracking, smoothing and writing take them in frame order.
        chunks = iter(lambda: list(itertools.islice(frames, batch_size)), [])
        with open(jsonl, "a") as out, ThreadPoolExecutor(max_workers=workers) as network:
            for chunk, results in prefetch(network, predict, chunks, ahead=workers - 1):
                for (i, _, _), result in zip(chunk, results):  # a hand with NaN or inf is left out, not tracked
                    bad = {id(h): nonfinite_field(h) for h in result.hands}
                    report.dropped += [(i, f"non-finite {why}") for why in bad.values() if why is not None]
                    result.hands = [h for h in result.hands if bad[id(h)] is None]
                ids = []
                for (i, _, t), result in zip(chunk, results):
                    frame_ids = tracker.update(result.hands, i, t, birth_score)
                    result.hands = [h for h, k in zip(result.hands, frame_ids) if k is not None]
                    ids.append([k for k in frame_ids if k is not None])
                if fitter is not None:  # on the smoothed meshes, one batched fit per chunk
                    fitter.attach_fits(results)
                lines = []
                for (i, _, t), result, frame_ids in zip(chunk, results, ids):
                    track_ids.update(frame_ids)
                    report.hands += len(result.hands)
                    record = {"frame_index": i, "time": round(t, 6), **result.to_json()}
                    for hand, track_id in zip(record["hands"], frame_ids):
                        hand["track_id"] = track_id
                    lines.append(json.dumps(record, separators=(",", ":"), allow_nan=False))
                out.write("\n".join(lines) + "\n")
                out.flush()
                os.fsync(out.fileno())
                done = chunk[-1][0] + 1
                save_state(complete=False)
                if on_progress is not None:
                    on_progress(done, total, (done - report.resumed_at) / max(time.perf_counter() - t0, 1e-9))
        save_state(complete=True)
    report.frames, report.tracks = done, len(track_ids)
    report.frames_per_second = (done - report.resumed_at) / max(time.perf_counter() - t0, 1e-9)
    report.files = [jsonl.name, state_path.name]
    if overlay:
        write_overlay_video(path, jsonl, out_dir / f"{path.stem}_overlay.mp4", predictor)
        report.files.append(f"{path.stem}_overlay.mp4")
    if fitter is not None:
        report.files += write_track_glbs(jsonl, out_dir, path.stem, fitter)
    return report


def write_track_glbs(jsonl: Path, out_dir: Path, stem: str, fitter: Any) -> list[str]:
    """One animated GLB per track of `jsonl` whose hands carry fits: `STEM_track{ID}.glb`."""
    tracks: dict[int, list[tuple[float, dict, str]]] = {}
    with open(jsonl) as lines:
        for line in lines:
            record = json.loads(line)
            for hand in record["hands"]:
                if hand.get("fit") is not None:
                    tracks.setdefault(hand["track_id"], []).append((record["time"], hand["fit"], hand["side"]))
    names = []
    for track_id, frames in sorted(tracks.items()):
        side = max({s for _, _, s in frames}, key=[s for _, _, s in frames].count)
        frames = [f for f in frames if f[2] == side]  # one rig per track: its majority side
        name = f"{stem}_track{track_id}.glb"
        fitter.save_glb(out_dir / name, [f for _, f, _ in frames], side, np.array([t for t, _, _ in frames]))
        names.append(name)
    return names


def write_overlay_video(video: Path, jsonl: Path, out: Path, predictor: Any) -> None:
    """The overlay of every frame of `video` with the results in `jsonl`, as H.264 MP4 (written to
    a temporary file, then renamed)."""
    import av

    frames, fps, _ = video_frames(video)
    tmp = out.with_name(f".{out.name}.partial.mp4")
    with open(jsonl) as lines:
        container = av.open(str(tmp), mode="w")
        try:
            stream = None
            for (i, frame, _), line in zip(frames, lines):
                result = result_from_json(json.loads(line), predictor.faces_right, predictor.faces_left)
                image = render_overlay(result, frame)
                image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]  # H.264 wants even sides
                if stream is None:
                    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
                    stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                    container.mux(packet)
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
        finally:
            container.close()
    os.replace(tmp, out)


def result_from_json(record: dict, faces_right: np.ndarray, faces_left: np.ndarray) -> ImageResult:
    """An `ImageResult` back from one line of `NAME.jsonl` (or an image's JSON)."""
    hands = [HandResult(box=np.asarray(h["box"]), side=h["side"], keypoints_2d=np.asarray(h["keypoints_2d"]),
                        keypoints_3d=np.asarray(h["keypoints_3d"]), vertices=np.asarray(h["vertices"]),
                        cam_t=np.asarray(h["cam_t"]), score=h.get("score"), fit=h.get("fit"),
                        side_score=h.get("side_score"), heatmap_peak=h.get("heatmap_peak"))
             for h in record["hands"]]
    return ImageResult(K=np.asarray(record["K"]), image_size=tuple(record["image_size"]), hands=hands,
                       faces_right=faces_right, faces_left=faces_left)


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _truncate_lines(path: Path, n: int) -> None:
    """Keep the first `n` complete lines of `path` (a crash may have left more, or half a line)."""
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    kept = [ln for ln in lines[:n] if ln]
    if len(kept) != n:
        raise VideoError(f"{path}: holds {len(kept)} complete frames but the state says {n}; delete {path} and "
                         f"{path.with_suffix('.state.json')} to start the video over")
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_bytes(b"".join(ln + b"\n" for ln in kept))
    os.replace(tmp, path)


__all__ = ["FrameClock", "VIDEO_SUFFIXES", "VideoError", "VideoReport", "animated_image_frames", "is_video",
           "reconstruct_video", "result_from_json", "video_frames", "write_overlay_video", "write_track_glbs"]
