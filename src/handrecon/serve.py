"""The web page (`handrecon serve`): a gradio app over the same models and writers as the CLI.

Upload an image or a short video, choose the model (and, for a crop model, test-time rotations),
and get the overlay (every hand numbered and coloured by side), an interactive 3D view of the
camera-space meshes, the JSON and a GLB (a skinned, posed hand per hand with "fit"; for videos the
JSON Lines and the overlay video). Models
are loaded on first use and kept. The endpoints ``/reconstruct_image`` and ``/reconstruct_video``
are also an API (``gradio_client``).
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from handrecon.eval.operating_point import DEFAULT_SCORE_THRESHOLD
from handrecon.infer.batch import render_overlay, write_result
from handrecon.infer.export import save_scene_glb
from handrecon.infer.fitting import HandFitter
from handrecon.infer.load import TEST_TIME_ROTATIONS, load
from handrecon.infer.pipeline import PIPELINE_SEPARATOR, TwoStagePredictor, is_pipeline
from handrecon.infer.registry import DEFAULT_DETECTOR, DEFAULT_MODEL
from handrecon.infer.tracking import OneEuroConfig
from handrecon.infer.video import reconstruct_video
from handrecon.render.overlay import SIDE_COLORS

WHOLE_IMAGE_SUFFIX = " (whole image is the hand)"
# offered by default: the crop model (after the hand detector, and on the whole image) and the one-stage HandOS
PAGE_MODELS = (DEFAULT_MODEL, "handos-openhand")
PAGE_TILES = 3  # "small hands in a large photo": the grid `reconstruct --tiles 3` documents
MAX_VIDEO_FRAMES = 900  # a web upload is a short clip; longer videos belong to `handrecon reconstruct`


class ModelPool:
    """Predictors by name (`model_choices`) and test-time rotations on or off, loaded on first use
    and kept (thread-safe)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads, self._models, self._fitters, self._lock = threads, {}, {}, threading.Lock()

    def get(self, name: str, tta: bool = False) -> Any:
        """The predictor `name` (with `TEST_TIME_ROTATIONS` if `tta`); ValueError saying why when it
        does not load (a model that finds its own hands refuses test-time rotations)."""
        with self._lock:
            if (name, tta) not in self._models:
                try:
                    self._models[name, tta] = load(name.removesuffix(WHOLE_IMAGE_SUFFIX), threads=self.threads,
                                                   backend="auto", test_time_rotations=TEST_TIME_ROTATIONS if tta else None)
                except (OSError, RuntimeError, ValueError) as e:  # not found, a bad card or weights, a bad name
                    raise ValueError(f"cannot load model {name!r}{' with test-time rotations' if tta else ''}: {e}") from None
            return self._models[name, tta]

    def fitter(self, predictor: Any) -> HandFitter:
        key = predictor.spec["hand_model"]
        with self._lock:
            if key not in self._fitters:
                self._fitters[key] = HandFitter(key)
            return self._fitters[key]


def model_choices(models: list[str], pool: ModelPool) -> list[str]:
    """What the page offers: a crop model after the hand detector (``DETECTOR+MODEL``) and on the
    whole image (`WHOLE_IMAGE_SUFFIX`); a pipeline or full-image model as it is. Telling them apart
    loads each model into `pool` (kept there): one that does not load is a ValueError before the
    page starts; a pipeline loads when it is first chosen, and a failure is shown on the page."""
    choices = []
    for m in models:
        if is_pipeline(m) or pool.get(m).detects_hands:
            choices.append(m)
        else:
            choices += [f"{DEFAULT_DETECTOR}{PIPELINE_SEPARATOR}{m}", m + WHOLE_IMAGE_SUFFIX]
    return choices


def _predictor(pool: ModelPool, name: str, tta: bool = False, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
               thorough: bool = False, tiles: bool = False) -> Any:
    """The model chosen on the page; a detector + crop model pipeline at `score_threshold`, scoring
    hand presence with the crop model when `thorough` (`infer.pipeline`), its detector reading
    `PAGE_TILES` x `PAGE_TILES` tiles too when `tiles` (one request at a time: `serve` queues them)."""
    try:
        predictor = pool.get(name, tta)
    except ValueError as e:  # shown on the page, not as a bare "Error"
        raise gr.Error(str(e)) from None
    if isinstance(predictor, TwoStagePredictor) and (score_threshold, thorough) != (predictor.score_threshold,
                                                                                    predictor.hand_presence):
        try:
            predictor = predictor.at_threshold(score_threshold, hand_presence=thorough)
        except ValueError as e:  # out of [0, 1]: the pipeline's own check says so
            raise gr.Error(str(e)) from None
    if isinstance(predictor, TwoStagePredictor) and hasattr(predictor.detector, "tiles"):
        predictor.detector.tiles = PAGE_TILES if tiles else 1
    elif tiles:
        gr.Warning("small hands (tiles) applies to a detector + crop model; this model reads the whole image")
    return predictor


def _workdir(root: Path) -> Path:
    d = root / uuid.uuid4().hex[:12]
    d.mkdir(parents=True)
    return d


def reconstruct_image(pool: ModelPool, root: Path, image: np.ndarray | None, model: str, fit: bool,
                      tta: bool = False, score_threshold: float = DEFAULT_SCORE_THRESHOLD, thorough: bool = False,
                      tiles: bool = False) -> tuple[np.ndarray, str | None, dict, list[str]]:
    """One uploaded RGB image -> (overlay, GLB of every hand or None, the JSON, files to download);
    score_threshold, thorough and tiles: the hand score's threshold and scoring (`reconstruct
    --thorough`) and the detector's tiles (`reconstruct --tiles`) of a detector + crop model pipeline."""
    if image is None:
        raise gr.Error("upload an image first")
    image = np.ascontiguousarray(np.asarray(image, np.uint8)[..., :3])
    predictor = _predictor(pool, model, tta, score_threshold, thorough, tiles)
    fitter = pool.fitter(predictor) if fit else None
    out = _workdir(root)
    try:
        result = predictor.predict(image)
        if fitter is not None:
            fitter.attach_fits([result])
        files = [str(out / f) for f in write_result(result, image, out, "result", overlay=False, fitter=fitter,
                                                     mesh_formats=("glb",) if fit else (),
                                                     settings=predictor.settings)]
    except ValueError as e:  # a bad image, or non-finite outputs (write_result refuses them)
        raise gr.Error(str(e)) from None
    scene = None
    if not result.hands and isinstance(predictor, TwoStagePredictor):
        gr.Warning(f"No hand found at score >= {predictor.score_threshold:g}. A hand that fills the photo or lies "
                   "on a busy background can score lower: lower the hand score threshold, or choose the crop "
                   "model on the whole image.")
    if result.hands:
        scene = str(save_scene_glb(out / "hands.glb", [(h.vertices, result.faces_for(h.side), SIDE_COLORS[h.side])
                                                         for h in result.hands]))
        files.append(scene)
    return render_overlay(result, image), scene, result.to_json(), files


def reconstruct_clip(pool: ModelPool, root: Path, video: str | None, model: str, smooth: bool,
                     tta: bool = False, score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> tuple[str, list[str], str]:
    """One uploaded video -> (overlay video, files to download, a one-line summary)."""
    if not video:
        raise gr.Error("upload a video first")
    predictor = _predictor(pool, model, tta, score_threshold)
    out = _workdir(root)
    try:
        report = reconstruct_video(predictor, video, out, OneEuroConfig() if smooth else None,
                                   max_frames=MAX_VIDEO_FRAMES)
    except ValueError as e:
        raise gr.Error(str(e)) from None
    stem = Path(video).stem
    files = [str(out / f) for f in report.files if not f.endswith(".state.json")]
    summary = (f"{report.frames} frame(s), {report.hands} hand detection(s) in {report.tracks} track(s), "
               f"{report.frames_per_second:.1f} frames/s")
    return str(out / f"{stem}_overlay.mp4"), files, summary


def build_app(models: list[str] | None = None, threads: int | None = None, workdir: str | Path | None = None) -> gr.Blocks:
    """The page. models: names `handrecon.load` opens (default `PAGE_MODELS`: the two-stage
    full-image pipeline, the crop model on the whole image and the one-stage HandOS); results are
    written under `workdir` (default: a temporary folder)."""
    pool = ModelPool(threads)
    choices = model_choices(models or list(PAGE_MODELS), pool)
    root = Path(workdir or tempfile.mkdtemp(prefix="handrecon-serve-"))
    root.mkdir(parents=True, exist_ok=True)
    with gr.Blocks(title="handrecon") as app:
        gr.Markdown("# handrecon\n3D hand reconstruction: every hand's box, side, 2D and 3D keypoints and "
                    "camera-space mesh. Upload an image or a short video.")
        model = gr.Dropdown(choices, value=choices[0], label="model")
        tta = gr.Checkbox(False, label="test-time augmentation (crop models: 8 turned views per hand, averaged by sharpness; "
                                       "the detector also reads the mirror image; more accurate, ~2x slower on "
                                       "photos, ~6x on hand crops)",
                          elem_id="tta")
        thorough = gr.Checkbox(False, label="find more hands (detector + crop model: the crop model also reads the "
                                            "detector's weaker candidates and scores every hand; ~2.5-3.5x slower)",
                               elem_id="thorough")
        tiles = gr.Checkbox(False, label=f"small hands in a large photo (detector + crop model: the detector also reads "
                                         f"a {PAGE_TILES}x{PAGE_TILES} grid of tiles; ~5x the detector's time)",
                            elem_id="tiles")
        threshold = gr.Slider(0.05, 0.95, value=DEFAULT_SCORE_THRESHOLD, step=0.05, elem_id="score-threshold",
                              label="hand score threshold (detector + crop model): lower finds more hands, and more "
                                    "false ones")
        with gr.Tab("image"):
            with gr.Row():
                image = gr.Image(type="numpy", label="image", elem_id="input-image")
                overlay = gr.Image(type="numpy", label="overlay", elem_id="overlay", interactive=False)
            fit = gr.Checkbox(False, label="fit the hand model (pose parameters, rigged GLB)")
            run_image = gr.Button("reconstruct", variant="primary", elem_id="run-image")
            with gr.Row():
                view = gr.Model3D(label="3D view (camera space)", elem_id="view3d", clear_color=(1, 1, 1, 1))
                result_json = gr.JSON(label="result", elem_id="result-json")
            image_files = gr.File(label="download", file_count="multiple", elem_id="image-files")
        with gr.Tab("video"):
            with gr.Row():
                video = gr.Video(label="video", elem_id="input-video")
                video_overlay = gr.Video(label="overlay", elem_id="video-overlay", interactive=False)
            smooth = gr.Checkbox(True, label="temporal smoothing (One-Euro)")
            run_video = gr.Button("reconstruct video", variant="primary", elem_id="run-video")
            video_summary = gr.Textbox(label="summary", elem_id="video-summary")
            video_files = gr.File(label="download", file_count="multiple", elem_id="video-files")
        run_image.click(lambda im, m, f, t, s, th, ti: reconstruct_image(pool, root, im, m, f, t, s, th, ti),
                        [image, model, fit, tta, threshold, thorough, tiles], [overlay, view, result_json, image_files],
                        api_name="reconstruct_image")
        run_video.click(lambda v, m, sm, t, s: reconstruct_clip(pool, root, v, m, sm, t, s),
                        [video, model, smooth, tta, threshold], [video_overlay, video_files, video_summary],
                        api_name="reconstruct_video")
    app.handrecon_workdir = root  # where results go (tests and `serve` allow gradio to serve it)
    return app


def serve(models: list[str] | None = None, host: str = "127.0.0.1", port: int = 7860, threads: int | None = None,
          block: bool = True) -> tuple[gr.Blocks, str]:
    """Start the page on http://host:port; returns (app, local URL). block: serve until interrupted."""
    app = build_app(models, threads)
    app.queue(default_concurrency_limit=1)  # one reconstruction at a time: the CPU is the bottleneck
    _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=not block,
                           allowed_paths=[str(app.handrecon_workdir)], footer_links=["api"])
    return app, url

