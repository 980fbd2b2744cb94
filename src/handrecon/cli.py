"""The `handrecon` command. Each subcommand is a thin wrapper over a library function."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional

import typer

from handrecon.eval.operating_point import DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD, DEFAULT_TRACK_THRESHOLD
from handrecon.infer.registry import DEFAULT_DETECTOR, DEFAULT_MODEL

SECOND_LOOK_HELP = ("A crop model looks again: a hand given as the whole image (--crop) also framed around its "
                    "landmarks, and turned +-45 degrees where its keypoint heatmaps are not sharp (about one in five "
                    "on unfamiliar images); the views averaged, the sharper counting more (default; --tta sees every "
                    "hand turned instead). --one-look: a single view per hand, faster (docs/inference.md, 'A second look').")
TILES_HELP = ("Also read each image as an N x N grid of overlapping tiles, each at the detector's input size, and pool "
              "the candidates, served at a threshold calibrated for it: finds small hands in large photos (hands "
              "under ~15 % of the image height: foreign wide shots AP50 0.26 -> 0.50 with 3; docs/detection.md, "
              "'Small hands in large photos'); N*N+1 detector passes. 1: the whole image only (default).")
BF16_HELP = ("Serve the crop model on torch under bf16 autocast, channels-last: on a CPU with AMX about 1.7x faster "
             "networks than the float32 export; refused on a CPU without native bf16 (AVX512-BF16 or AMX), "
             "where it would be emulated; its accuracy in the model card.")
LARGE_PHOTO_PX = 1000  # a photo at least this long on its long side gets the --tiles hint when no hand is found
TEST_TIME_FLIP_HELP = ("Test-time flip: the network also reads each image's mirror image and the candidates are "
                       "pooled; finds more hands (foreign scenes AP50 0.59 -> 0.61), twice the network time.")

app = typer.Typer(
    name="handrecon",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="3D hand reconstruction from single RGB images (HandOS, M3DHMR).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is plain text: Rich markup would eat "[serve]" and "[[x1, y1, x2, y2]"
)


def _print_version(requested: bool = True) -> None:
    """`handrecon --version` and `handrecon version`: print the version and exit."""
    if requested:
        # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
        from handrecon.version import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def main(
    show_version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """3D hand reconstruction from single RGB images (HandOS, M3DHMR)."""


@app.command()
def version() -> None:
    """Print the handrecon version."""
    _print_version()


@app.command()
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Output directory."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Shipped model name or checkpoint path."),
) -> None:
    """Run the demo: reconstruct the bundled sample image and pose the bundled hand model."""
    # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
    from rich.console import Console
    from rich.table import Table

    from handrecon.demo import run_demo
    from handrecon.utils.io import make_output_folder

    try:
        make_output_folder(out)  # before the model loads
    except ValueError as e:
        typer.echo(f"error: --out: {e}", err=True)
        raise typer.Exit(2) from None
    predictor = _load_model_or_exit(model)
    try:
        summary = run_demo(out, predictor)
    except OSError as e:
        typer.echo(f"error: cannot write the demo outputs to {out}: {e.strerror or e} (is a parent path a file, or "
                   "not writable?)", err=True)
        raise typer.Exit(2) from None
    r = summary["reconstruction"]
    console = Console()
    table = Table(title=f"sample reconstruction ({r['model']}) vs ground truth")
    for col in ("side", "camera-space root (m)", "2D error (px)", "MPJPE (mm)", "PA-MPJPE (mm)", "root error (mm)"):
        table.add_column(col)
    table.add_row(r["side"], " ".join(f"{x:+.3f}" for x in r["cam_t_m"]), f"{r['keypoints_2d_error_px']:.1f}",
                  f"{r['mpjpe_mm']:.1f}", f"{r['pa_mpjpe_mm']:.1f}", f"{r['root_error_mm']:.1f}")
    console.print(table)
    console.print(f"outputs: {', '.join(str(out / f) for f in r['files'])}")
    scene = summary["scene"]
    table = Table(title=f"multi-hand scene ({scene['model']}): {scene['detections']} hand(s) found, "
                        f"{len(scene['hands'])} in the ground truth")
    for col in ("hand", "found", "score", "side (predicted)", "2D error (px)", "PA-MPJPE (mm)"):
        table.add_column(col)
    for i, h in enumerate(scene["hands"]):
        found = h["found"]
        table.add_row(f"{i} {h['side']}", "yes" if found else "missed", f"{h['score']:.2f}" if found else "-",
                      h["predicted_side"] if found else "-", f"{h['keypoints_2d_error_px']:.1f}" if found else "-",
                      f"{h['pa_mpjpe_mm']:.1f}" if found else "-")
    console.print(table)
    console.print(f"outputs: {', '.join(str(out / f) for f in scene['files'] if f.endswith('.png'))}")
    posed = summary["posed_hand_model"]["meshes"]
    console.print(f"posed OpenHand: {len(posed)} meshes ({', '.join(sorted({m['pose'] for m in posed}))}; "
                  f"both sides) in {out / 'poses'}/")
    typer.echo(f"summary: {out / 'summary.json'}")


@app.command()
def train(
    config: Path = typer.Argument(..., metavar="CONFIG.yaml", help="YAML training config (schema: configs/README.md)."),
    overrides: Optional[list[str]] = typer.Argument(None, metavar="KEY=VALUE", help="Dotted overrides, e.g. optim.lr=1e-4 data.batch_size=8."),
    resume: Optional[str] = typer.Option(None, "--resume", help="'auto' (last complete checkpoint of the run dir) or a checkpoint path."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (overrides the config's `output`)."),
) -> None:
    """Train a model from a YAML config; run it under torchrun for DistributedDataParallel."""
    # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
    from handrecon.card import CheckpointError
    from handrecon.train import ConfigError, load_config
    from handrecon.train import train as run_training

    try:
        cfg = load_config(config, overrides or [])
        if out is not None:
            cfg.output = str(out)
        result = run_training(cfg, resume=resume)
    except (ConfigError, CheckpointError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if result.rank == 0:
        metrics = " ".join(f"{k}={v:.4g}" for k, v in result.metrics.items())
        typer.echo(f"done: step {result.step}, run dir {result.run_dir}, last {result.last_checkpoint} {metrics}".rstrip())


@app.command("evaluate-submission")
def evaluate_submission(
    pred: Path = typer.Option(..., "--pred", help="Submission file (FreiHAND: pred.json holding xyz_list and verts_list, metres)."),
    gt_dir: Path = typer.Option(..., "--gt-dir", help="Ground-truth folder (FreiHAND: evaluation_xyz.json, evaluation_verts.json)."),
    benchmark: str = typer.Option("freihand", "--benchmark", help="Benchmark whose official evaluation to run: freihand."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the scores (official key names, lengths in mm) to this JSON file."),
) -> None:
    """Score a benchmark submission with the official metrics; print a table, optionally write JSON."""
    # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
    from rich.console import Console
    from rich.table import Table

    from handrecon.eval.submission import (
        SubmissionError, evaluate_freihand, format_scores, load_freihand_gt, load_freihand_submission,
    )
    from handrecon.utils.io import atomic_write_json

    if benchmark != "freihand":
        typer.echo(f"error: unknown benchmark {benchmark!r}; supported: freihand", err=True)
        raise typer.Exit(2)
    try:
        gt = load_freihand_gt(gt_dir)
        scores = evaluate_freihand(load_freihand_submission(pred, expected_count=len(gt.xyz)), gt)
    except SubmissionError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    table = Table(title=f"FreiHAND, {len(gt.xyz)} samples")
    if scores["mesh_mean3d"] is None:
        table.caption = "mesh_*: n/a, the predicted vertex count differs from the ground truth's"
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in format_scores(scores):
        table.add_row(key, value)
    Console().print(table)
    if out is not None:
        atomic_write_json(out, scores)
        typer.echo(f"scores: {out}")


@app.command()
def synth(
    preset: str = typer.Option("crop", "--preset", help="crop (one centred hand, 224x224, M3DHMR) or scene (full images, 1-4 hands, HandOS)."),
    num: int = typer.Option(..., "--num", help="Number of images."),
    out: Path = typer.Option(..., "--out", help="Output folder; re-running into it resumes (finished shards are skipped)."),
    seed: int = typer.Option(0, "--seed", help="Dataset seed: same seed, same data (whatever --workers)."),
    shard_size: int = typer.Option(500, "--shard-size", help="Images per shard (the unit of resume and of work)."),
    workers: int = typer.Option(1, "--workers", help="Worker processes, one renderer context each."),
    backgrounds: Optional[list[Path]] = typer.Option(None, "--backgrounds", help="Folder of background photographs (80 % of the backgrounds; procedural ones for the rest); repeat for several folders."),
    image_size: Optional[str] = typer.Option(None, "--image-size", help="Override the preset's image size: 'S' or 'HxW' pixels."),
    image_format: Optional[str] = typer.Option(None, "--image-format", help="jpg or png (default: the preset's, jpg)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a SynthConfig field, FIELD=VALUE (YAML value), e.g. --set orientation=mixed --set 'hand_size=[0.4, 0.8]'; repeatable."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Render a synthetic dataset (sharded, resumable; docs/synthetic.md)."""
    # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
    from handrecon.data.schema import DatasetError
    from handrecon.data.synth.config import parse_overrides
    from handrecon.data.synth.config import preset as get_preset
    from handrecon.data.synth.writer import generate

    overrides: dict = {}
    try:
        overrides.update(parse_overrides(set_ or []))
        if image_size:
            parts = image_size.lower().split("x")
            if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
                raise ValueError(f"--image-size must be 'S' or 'HxW' in pixels (e.g. 224 or 384x512), got {image_size!r}")
            hw = [int(p) for p in parts]
            overrides["image_size"] = (hw[0], hw[0]) if len(hw) == 1 else (hw[0], hw[1])
        if image_format:
            overrides["image_format"] = image_format
        cfg = get_preset(preset, **overrides)
        folders = os.pathsep.join(str(b) for b in backgrounds) if backgrounds else None
        summary = generate(out, cfg, num, seed, shard_size, workers, folders, progress=not quiet)
    except (ValueError, DatasetError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:
        typer.echo(f"error: cannot write to {out}: {e.strerror or e} (is a parent path a file, or not writable?)", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"done: {summary.images_written} images in {summary.seconds:.1f} s ({summary.images_per_second:.1f} img/s), "
        f"{summary.shards - summary.shards_skipped} shard(s) written, {summary.shards_skipped} already complete -> {out}"
    )


@app.command("show-dataset")
def show_dataset(
    dataset: str = typer.Option(..., "--dataset", help="Loader name: freihand, ho3d, dexycb, hint, coco_wholebody, onehand10k, synthetic."),
    root: Path = typer.Option(..., "--root", help="Dataset root folder."),
    split: Optional[str] = typer.Option(None, "--split", help="Split (default: the loader's)."),
    num: int = typer.Option(16, "--num", help="Number of samples in the grid."),
    out: Path = typer.Option(Path("grid.png"), "--out", help="Output image (.png, or .jpg / .jpeg)."),
    seed: int = typer.Option(0, "--seed", help="Seed choosing the samples."),
    cell: int = typer.Option(256, "--cell", help="Largest side of each tile in pixels."),
    mano_dir: Optional[Path] = typer.Option(None, "--mano-dir", help="Folder with MANO_RIGHT.pkl/MANO_LEFT.pkl, to draw MANO meshes."),
) -> None:
    """Write a grid image of dataset samples with skeletons and meshes overlaid."""
    # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
    from handrecon.data.schema import DatasetError
    from handrecon.data.show import show_dataset as run

    try:
        path = run(dataset, root, out, split, num, seed, cell, mano_dir)
    except (ValueError, DatasetError, IndexError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:
        typer.echo(f"error: cannot write {out}: {e.strerror or e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"grid: {path}")



def _check_threads_or_exit(threads: Optional[int]) -> None:
    """A one-line error and exit code 2 unless --threads is unset or a positive integer."""
    from handrecon.infer.predictor import check_threads

    try:
        check_threads(threads)
    except ValueError as e:
        typer.echo(f"error: --threads: {e}", err=True)
        raise typer.Exit(2) from None


def _load_model_or_exit(model: str, threads: Optional[int] = None, backend: str = "torch", tta: bool = False,
                        second_look: bool = True, int8: Optional[bool] = False, bf16: bool = False):
    """handrecon.load (with `TEST_TIME_ROTATIONS` if `tta`; a crop model's second look at unsure
    hands unless `second_look` is False; `int8` and `bf16` as `load` takes them), or a one-line
    error and exit code 2."""
    # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
    from handrecon.card import CheckpointError
    from handrecon.infer.load import TEST_TIME_ROTATIONS, load

    try:
        return load(model, threads=threads, backend=backend, test_time_rotations=TEST_TIME_ROTATIONS if tta else None,
                    second_look=None if second_look else False, int8=int8, bf16=bf16)
    except (FileNotFoundError, CheckpointError, ValueError) as e:
        typer.echo(f"error: cannot load model {model!r}{' with --tta' if tta else ''}: {e}", err=True)
        raise typer.Exit(2) from None


def _with_detector_or_exit(predictor, detector: str, score_threshold: float, threads: Optional[int] = None,
                           thorough: bool = False):
    """`infer.pipeline.with_detector`, or a one-line error and exit code 2."""
    # deferred imports: `handrecon --help` starts in 0.2 s
    from handrecon.infer.pipeline import with_detector

    try:
        return with_detector(predictor, detector, score_threshold, threads, hand_presence=thorough)
    except (OSError, ValueError) as e:
        typer.echo(f"error: cannot load detector {detector!r}: {e}", err=True)
        raise typer.Exit(2) from None


def _set_tiles_or_exit(predictor, tiles: int, model: str) -> None:
    """A two-stage pipeline's detector reads each image as a `tiles` x `tiles` grid too (``--tiles``);
    a one-line error and exit code 2 for `tiles` > 1 on anything else (HandOS, a crop model alone)."""
    if tiles == 1:
        return
    detector = getattr(predictor, "detector", None) if hasattr(predictor, "at_threshold") else None  # a pipeline's
    if not hasattr(detector, "tiles"):
        typer.echo(f"error: --tiles applies to a detector in front of a crop model; {model!r} has none (a model "
                   "that finds hands itself reads the whole image; a crop model alone is given its hands)", err=True)
        raise typer.Exit(2)
    detector.tiles = tiles


def _echo_without_hands(paths: list[str], score_threshold: float, crop_model: bool, thorough: bool = False,
                        tiles: int = 1) -> None:
    """A stderr note on the inputs in which the detector found no hand, and what to try: the served
    threshold is set for precision, and hands that fill the photo or lie on a busy background often
    score below it (docs/detection.md); behind a crop model, `--thorough` unless it was given; for a
    large photo (`LARGE_PHOTO_PX` on its long side) read whole, `--tiles 3`."""
    if not paths:
        return
    names = ", ".join(Path(p).name for p in paths[:5]) + (" ..." if len(paths) > 5 else "")
    more = "; --thorough finds more at the same precision, in 2-4x the time" if crop_model and not thorough else ""
    crop = "; --crop reads an image as one hand crop" if crop_model else ""
    tiled = ("; in a large photo, --tiles 3 also reads it as a grid of tiles and finds its small hands"
             if tiles == 1 and any(_long_side(p) >= LARGE_PHOTO_PX for p in paths) else "")
    typer.echo(f"note: no hand found in {len(paths)} image(s) at score >= {score_threshold:g} ({names}). Hands that "
               f"fill the photo or lie on a busy background can score lower: --score-threshold 0.3 finds more of "
               f"them, and more false hands{more}{crop}{tiled}.", err=True)


def _long_side(path: str) -> int:
    """An image file's longer side in pixels, from its header (0 when unreadable)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return max(im.size)
    except (OSError, ValueError):
        return 0


def _echo_failures(failed: list[tuple[str, str]]) -> None:
    """One stderr line per failed input: its path, then why (once, where the reason already names it)."""
    for path, reason in failed:
        typer.echo(f"  failed: {reason if reason.startswith(path) else f'{path}: {reason}'}", err=True)


@app.command()
def reconstruct(
    paths: list[Path] = typer.Argument(..., metavar="PATH", help="Images, videos and/or folders (searched recursively for both)."),
    out: Path = typer.Option(..., "--out", help="Output folder: per image NAME.json, NAME_hand0.{obj,ply,glb}, NAME_overlay.png."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Shipped model name, checkpoint or run directory, .onnx file, or DETECTOR+MODEL. A crop model runs after --detector unless boxes or --crop are given."),
    detector: str = typer.Option(DEFAULT_DETECTOR, "--detector", help="What finds the hands for a crop model: a shipped detector name or KIND:DIR (see `handrecon detect`)."),
    score_threshold: float = typer.Option(DEFAULT_SCORE_THRESHOLD, "--score-threshold", help="The detector's minimum hand score (two-stage pipeline)."),
    crop: bool = typer.Option(False, "--crop", help="The whole image is one hand crop (FreiHAND-style): no detector."),
    box: Optional[tuple[float, float, float, float]] = typer.Option(None, "--box", help="Hand box x1 y1 x2 y2 in pixels: no detector, the crop model reconstructs this hand."),
    side: Optional[str] = typer.Option(None, "--side", help="left or right, for --box and --crop (default: the crop model reads it from the crop and its mirror; giving it saves that second view)."),
    focal: Optional[float] = typer.Option(None, "--focal", help="Focal length in pixels (default: 1.2 x the larger image side, principal point at the centre)."),
    formats: str = typer.Option("obj,ply,glb", "--formats", help="Mesh formats, comma-separated (obj, ply, glb); empty for none."),
    no_overlay: bool = typer.Option(False, "--no-overlay", help="Do not write overlay PNGs."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the network, one batch at a time (default: one thread per batch and a batch per core)."),
    backend: str = typer.Option("auto", "--backend", help="auto: a crop model runs on onnxruntime (exported once into the cache) when the extra onnx is installed; torch: always torch."),
    int8: Optional[bool] = typer.Option(None, "--int8/--float32", help="Which export of a crop model onnxruntime serves, each made once into the cache: int8 convolutions (the default where it runs on onnxruntime: faster, the same accuracy as measured in the model card) or float32; --int8 insists on it."),
    bf16: bool = typer.Option(False, "--bf16", help=BF16_HELP),
    fit: bool = typer.Option(False, "--fit", help="Also fit the hand model to every hand (inverse kinematics): pose, shape and translation in the JSON."),
    tta: bool = typer.Option(False, "--tta", help="Test-time augmentation: a crop model sees each hand 8 times (turned by every multiple of 45 degrees) and averages the views, the sharper counting more, and its detector also reads each image's mirror image; more accurate, 8x the crop network's time and 2x the detector's."),
    second_look: bool = typer.Option(True, "--second-look/--one-look", help=SECOND_LOOK_HELP),
    thorough: bool = typer.Option(False, "--thorough", help="Full images: the crop model also reads the detector's weaker candidates and every hand is scored with its keypoint sharpness; finds about twice the hands on unfamiliar images at the same precision (docs/inference.md, 'Hand presence'), for 2-4x the time."),
    tiles: int = typer.Option(1, "--tiles", min=1, max=8, help=TILES_HELP),
    boxes_file: Optional[Path] = typer.Option(None, "--boxes", help='JSON of hand boxes per image file name (or the end of its path, "b/a.jpg", where two folders hold an a.jpg): {"a.jpg": [[x1, y1, x2, y2], {"box": [...], "side": "left"}]}; a box without a side is read by the crop model with the detector side head\'s reading as a prior, an unlisted image goes to the detector.'),
    no_smooth: bool = typer.Option(False, "--no-smooth", help="Videos: no temporal smoothing (hands are still tracked)."),
    min_cutoff: float = typer.Option(1.0, "--min-cutoff", help="Videos: One-Euro filter cut-off at rest, Hz (lower: smoother, more lag)."),
    beta: float = typer.Option(0.05, "--beta", help="Videos: One-Euro speed coefficient, Hz per px/s of 2D keypoint speed (higher: less lag in fast motion)."),
    track_threshold: float = typer.Option(DEFAULT_TRACK_THRESHOLD, "--track-threshold", help="Videos behind a detector: a confirmed track (three confident frames) continues at this detector score; a new hand needs --score-threshold. A value >= --score-threshold turns it off (faster: about half the time)."),
) -> None:
    """Reconstruct every hand of images and videos: per image JSON, camera-space meshes and an
    overlay; per video (mp4, mov, avi, mkv, webm, ...) JSON Lines with tracked, smoothed hands, an
    overlay video, and resumption of an interrupted run. Full images by default: a crop model runs
    on the boxes --detector finds (with each hand's score and side); --box, --boxes or --crop
    give it the hands instead."""
    # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
    from rich.progress import Progress

    from handrecon.infer.batch import reconstruct_paths
    from handrecon.infer.export import MESH_FORMATS

    mesh_formats = tuple(f.strip().lower() for f in formats.split(",") if f.strip())
    bad = [f for f in mesh_formats if f not in MESH_FORMATS]
    what = (f"--formats: unknown {', '.join(bad)} (use {', '.join(MESH_FORMATS)})" if bad else
            f"--side must be left or right, got {side!r}" if side not in (None, "left", "right") else
            f"--focal must be a positive focal length in pixels, got {focal}"
            if focal is not None and not (math.isfinite(focal) and focal > 0) else
            f"--score-threshold and --track-threshold must be in [0, 1], got {score_threshold} and {track_threshold}"
            if not (0.0 <= score_threshold <= 1.0 and 0.0 <= track_threshold <= 1.0) else None)
    if what:
        typer.echo(f"error: {what}", err=True)
        raise typer.Exit(2)
    _check_threads_or_exit(threads)
    from handrecon.infer.batch import read_box_prompts
    from handrecon.utils.distributed import start_cpu_group

    rank, world = start_cpu_group()  # under torchrun the images and videos are shared out between ranks
    try:
        prompts = None if boxes_file is None else read_box_prompts(boxes_file)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if crop and (box is not None or prompts is not None):
        typer.echo("error: --crop (the whole image is one hand) cannot be combined with --box or --boxes", err=True)
        raise typer.Exit(2)
    if side is not None and box is None and not crop:
        typer.echo("error: --side applies to --box or --crop; a detector gives each hand its side", err=True)
        raise typer.Exit(2)
    from handrecon.data.schema import IMAGE_SUFFIXES, VIDEO_SUFFIXES, is_video
    from handrecon.infer.batch import collect_files, parallel_batches
    from handrecon.infer.pipeline import is_pipeline

    inputs, problems = collect_files(paths, IMAGE_SUFFIXES | set(VIDEO_SUFFIXES), exclude=out, what="image or video")
    video = {p: is_video(p) for p in inputs}  # folders' videos and animated images too
    videos, images = [p for p in inputs if video[p]], [p for p in inputs if not video[p]]
    threads, workers = parallel_batches(threads)  # one network thread per batch and a batch per core
    predictor = _load_model_or_exit(model, threads, backend, tta, second_look, int8, bf16)
    if crop and predictor.detects_hands:
        typer.echo(f"error: --crop needs a crop model; {model!r} finds the hands itself", err=True)
        raise typer.Exit(2)
    two_stage = not predictor.detects_hands or is_pipeline(model)  # a crop model behind a detector
    if not crop and box is None:  # with --boxes too: unlisted images are found, sides not given are read
        if not two_stage and score_threshold != DEFAULT_SCORE_THRESHOLD:
            typer.echo(f"warning: --score-threshold applies to a detector and a crop model; {model!r} filters its "
                       "own queries", err=True)
        predictor = _with_detector_or_exit(predictor, detector, score_threshold, threads, thorough)
        _set_tiles_or_exit(predictor, tiles, model)
    elif thorough or tiles > 1:
        typer.echo(f"warning: {'--thorough' if thorough else '--tiles'} applies to full images behind a detector; "
                   "with --box or --crop no hands are searched for", err=True)
    fitter = None
    if fit:
        from handrecon.infer.fitting import HandFitter

        fitter = HandFitter(predictor.spec["hand_model"])
    from handrecon.utils.io import make_output_folder

    try:
        make_output_folder(out)  # once, not per video
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    videos = videos[rank::world]
    if videos:  # tracking and decoding are imported only for videos (scipy.optimize alone takes 0.24 s)
        from handrecon.infer.tracking import OneEuroConfig
        from handrecon.infer.video import VideoError, reconstruct_video

        try:
            smoothing = None if no_smooth else OneEuroConfig(min_cutoff, beta)
        except ValueError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
    failed: list[tuple[str, str]] = list(problems) if rank == 0 else []
    for video in videos:
        try:
            with Progress(transient=True) as progress:
                task = progress.add_task(f"{video.name}", total=None)

                def advance(done: int, total: int | None, fps: float, task=task, progress=progress) -> None:
                    progress.update(task, completed=done, total=total, description=f"{video.name} {fps:.1f} frames/s")

                rep = reconstruct_video(predictor, video, out, smoothing, focal=focal, box=box, side=side,
                                        overlay=not no_overlay, fitter=fitter, on_progress=advance, workers=workers,
                                        track_threshold=track_threshold)
            if rep.resumed_at and rep.resumed_at == rep.frames:
                speed = "already complete"
            else:
                speed = f"{rep.frames_per_second:.1f} frames/s" + (f", resumed at frame {rep.resumed_at}" if rep.resumed_at else "")
            typer.echo(f"{video}: {rep.frames} frame(s), {rep.hands} hand detection(s) in {rep.tracks} track(s), "
                       f"{speed} -> {out}/{video.stem}.jsonl")
            if rep.dropped:
                frames = ", ".join(str(i) for i, _ in rep.dropped[:10]) + (" ..." if len(rep.dropped) > 10 else "")
                typer.echo(f"  {len(rep.dropped)} hand(s) left out: the model gave non-finite numbers "
                           f"({rep.dropped[0][1]}) in frame(s) {frames}", err=True)
        except (VideoError, ValueError, OSError) as e:
            failed.append((str(video), str(e)))
    if images or not videos:  # with no input at all, the summary still says 0 image(s) and what failed
        try:
            with Progress(transient=True) as progress:
                task = progress.add_task("reconstructing", total=None)
                report = reconstruct_paths(predictor, images, out, box=box, side=side, focal=focal,
                                           mesh_formats=mesh_formats, overlay=not no_overlay, fitter=fitter,
                                           prompts=prompts, workers=workers,
                                           on_progress=lambda _: progress.advance(task),
                                           on_start=lambda n: progress.update(task, total=n))
        except ValueError as e:  # raised before any image runs (e.g. two inputs, one output name)
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        if rank == 0:
            typer.echo(f"{len(report.written)} image(s) reconstructed, {report.num_hands} hand(s), "
                       f"{len(report.failed) + len(problems)} failed -> {out}/")
            failed += report.failed
            if not crop and box is None:
                _echo_without_hands(report.without_hands, score_threshold, two_stage, thorough, tiles)
            if report.unmatched_prompts:
                keys = ", ".join(report.unmatched_prompts[:5]) + (" ..." if len(report.unmatched_prompts) > 5 else "")
                typer.echo(f"warning: --boxes {boxes_file}: {len(report.unmatched_prompts)} entr"
                           f"{'y names' if len(report.unmatched_prompts) == 1 else 'ies name'} no input image: {keys}",
                           err=True)
    _echo_failures(failed)
    if failed:
        raise typer.Exit(1)


@app.command()
def detect(
    paths: list[Path] = typer.Argument(..., metavar="PATH", help="Images and/or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Output folder: per image NAME.json (boxes, scores) and NAME_boxes.png."),
    detector: str = typer.Option(DEFAULT_DETECTOR, "--detector", help="Shipped detector name, or KIND:DIR for a transformers checkpoint in a local folder (grounding-dino, mm-grounding-dino, deformable-detr, rt-detr, rt-detr-v2)."),
    score_threshold: float = typer.Option(DEFAULT_SCORE_THRESHOLD, "--score-threshold", help="Keep hands scoring at least this (HandOS's query filter uses 0.1)."),
    nms_iou: float = typer.Option(DEFAULT_NMS_IOU, "--nms-iou", help="Drop a box overlapping a better one by more than this IoU (HandOS uses 0.9; 1 = no NMS)."),
    no_overlay: bool = typer.Option(False, "--no-overlay", help="Do not write the box overlays."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the network, one batch at a time (default: one thread per batch and a batch per core)."),
    tta: bool = typer.Option(False, "--tta", help=TEST_TIME_FLIP_HELP),
    tiles: int = typer.Option(1, "--tiles", min=1, max=8, help=TILES_HELP),
) -> None:
    """Find every hand in images: boxes and scores per image (JSON) and an overlay."""
    # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
    from rich.progress import Progress

    from handrecon.infer.batch import parallel_batches
    from handrecon.infer.detect import build_detector, detect_paths

    if not 0.0 <= score_threshold <= 1.0 or not 0.0 < nms_iou <= 1.0:
        typer.echo(f"error: --score-threshold must be in [0, 1] and --nms-iou in (0, 1], got {score_threshold} and {nms_iou}", err=True)
        raise typer.Exit(2)
    _check_threads_or_exit(threads)
    threads, workers = parallel_batches(threads)  # one network thread per batch and a batch per core
    try:
        model = build_detector(detector, threads)
    except ValueError as e:  # DetectorError and unknown names are ValueErrors with what to do
        typer.echo(f"error: --detector {detector}: {e}", err=True)
        raise typer.Exit(2) from None
    model.test_time_flip, model.tiles = tta, tiles
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("detecting", total=None)
            report = detect_paths(model, paths, out, score_threshold, nms_iou, overlay=not no_overlay, workers=workers,
                                  detector_name=detector, on_progress=lambda _: progress.advance(task),
                                  on_start=lambda n: progress.update(task, total=n))
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:
        typer.echo(f"error: cannot write to {out}: {e.strerror or e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{len(report.written)} image(s), {report.num_hands} hand(s) found, {len(report.failed)} failed -> {out}/")
    _echo_without_hands(report.without_hands, score_threshold, crop_model=False, tiles=tiles)
    _echo_failures(report.failed)
    if not report.ok:
        raise typer.Exit(1)


@app.command("evaluate-detector")
def evaluate_detector_cmd(
    root: Path = typer.Option(..., "--root", help="Scenes in handrecon's synthetic format (handrecon synth --preset scene, the foreign scene set)."),
    detector: str = typer.Option(DEFAULT_DETECTOR, "--detector", help="Shipped detector name, or KIND:DIR (see `handrecon detect`)."),
    split: str = typer.Option("all", "--split", help="all, train or val (the last shard)."),
    threshold: float = typer.Option(DEFAULT_SCORE_THRESHOLD, "--score-threshold", help="Operating point for precision, recall and the no-hand false-positive rate."),
    nms_iou: float = typer.Option(DEFAULT_NMS_IOU, "--nms-iou", help="NMS IoU before AP and the operating point (the default is what `detect` and the pipeline serve)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the metrics JSON here (M.json), and every image's detections beside it (M.detections.npz) for `compare-evals`."),
    tta: bool = typer.Option(False, "--tta", help=TEST_TIME_FLIP_HELP),
    tiles: int = typer.Option(1, "--tiles", min=1, max=8, help=TILES_HELP),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Also give 95%% intervals of AP50, precision, recall and the no-hand rate at the threshold from this many resamples of the images (>= 100; 0: none)."),
) -> None:
    """COCO box AP / AP50 / AP75 / recall of a hand detector (pycocotools), precision and the
    false-positive rate on images without a hand; with a side head, side accuracy (detected hands
    and ground-truth boxes)."""
    # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
    from rich.progress import Progress

    from handrecon.data.schema import DatasetError
    from handrecon.eval.detection import detections_file, evaluate_detector
    from handrecon.infer.detect import build_detector
    from handrecon.utils.io import atomic_write_json

    try:
        model = build_detector(detector)
        model.test_time_flip, model.tiles = tta, tiles
        with Progress(transient=True) as progress:
            task = progress.add_task("evaluating", total=limit)
            metrics = evaluate_detector(model, root, split, threshold, limit, lambda _: progress.advance(task), nms_iou,
                                        bootstrap, detections_file(out) if out is not None else None)
    except (ValueError, DatasetError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if out is not None:
        atomic_write_json(out, {"detector": detector, "test_time_flip": tta, "tiles": tiles, "root": str(root),
                                "split": split, "detections": str(detections_file(out)), **metrics})
    typer.echo("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
                         if not isinstance(v, dict)))
    for label, row in metrics.get("recall_by_height", {}).items():
        typer.echo(f"hands at {label} of the image height: {row['hands']}, found at IoU 0.5 {row['recall50']:.3f} "
                   f"(at the threshold {row['recall50_at_threshold']:.3f})")
    for key, interval in metrics.get("intervals", {}).items():
        typer.echo(f"{key} {interval['value']:.4f}, 95 % interval [{interval['low']:.4f}, {interval['high']:.4f}] "
                   f"({bootstrap} resamples of the images)")


# the columns of `evaluate --by`'s table (every group's metrics are in metrics.json)
BREAKDOWN_COLUMNS = ("pa_mpjpe_mm", "pa_mpvpe_mm", "pck2d@0.05", "pck2d@0.1", "pck2d@0.15", "recall")
# `compare-evals`: metrics where less is better, besides the errors in millimetres
LOWER_IS_BETTER = ("no_hand_fp_rate",)


@app.command()
def evaluate(
    checkpoint: str = typer.Option(..., "--checkpoint", help="Checkpoint or run directory, shipped model name, or .onnx file."),
    dataset: str = typer.Option(..., "--dataset", help="freihand (whole 224 crops), synthetic, ho3d, dexycb or hint (whole images: a crop model gets the GT boxes, a full-image model finds the hands)."),
    root: Path = typer.Option(..., "--root", help="Dataset root folder."),
    split: Optional[str] = typer.Option(None, "--split", help="Split (default: freihand evaluation, synthetic val, ho3d evaluation, dexycb s0_test, hint test)."),
    out: Path = typer.Option(Path("eval_out"), "--out", help="Folder for pred.json (official submission format) and metrics.json."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per network batch."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate only the first N images (quick checks)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the network, one batch at a time (default: one thread per batch and a batch per core)."),
    whole_image: bool = typer.Option(False, "--whole-image", help="Synthetic single-hand crops: give each image whole to the model (with its GT side), as FreiHAND does, not its GT box."),
    mano_dir: Optional[Path] = typer.Option(None, "--mano-dir", help="ho3d, dexycb: folder with your MANO_RIGHT.pkl / MANO_LEFT.pkl, for ground-truth vertices (without it: joints only)."),
    gt_boxes: bool = typer.Option(False, "--gt-boxes", help="A model that finds its own hands (HandOS) gets the ground-truth boxes as prompts (the paper's Table X), not its detections."),
    read_sides: bool = typer.Option(False, "--read-sides", help="A crop model given boxes or whole crops reads each hand's side itself (from the crop and its mirror) instead of being given the ground truth's, so that side_accuracy measures it."),
    tta: bool = typer.Option(False, "--tta", help="Test-time augmentation: a crop model sees each hand 8 times (turned by every multiple of 45 degrees) and averages the views, the sharper counting more; more accurate, 8x the network time."),
    second_look: bool = typer.Option(True, "--second-look/--one-look", help=SECOND_LOOK_HELP),
    thorough: bool = typer.Option(False, "--thorough", help="A DETECTOR+MODEL pipeline scores every hand with the crop model's keypoint sharpness (reconstruct --thorough)."),
    int8: bool = typer.Option(False, "--int8", help="Evaluate the crop model as `reconstruct` serves it by default: its int8 export on onnxruntime (default: the checkpoint on torch, float32)."),
    bf16: bool = typer.Option(False, "--bf16", help="Evaluate the crop model as `reconstruct --bf16` serves it: on torch under bf16 autocast (CPUs with AVX512-BF16 or AMX)."),
    tiles: int = typer.Option(1, "--tiles", min=1, max=8, help="A DETECTOR+MODEL pipeline's detector also reads each image as an N x N grid of tiles (reconstruct --tiles)."),
    by: Optional[str] = typer.Option(None, "--by", help="Also score the hands in groups by this meta key of each hand (or its image): pose_kind on synthetic and foreign sets, subset on HInt, serial or sequence on DexYCB, seq on HO3D; a table row per group, and metrics.json's breakdown."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Also give a 95%% interval of PA-MPJPE, PA-MPVPE, MPJPE and PCK@0.1 (and of each --by group's) from this many bootstrap resamples of the images (>= 100; 1000 is usual; 0: none); metrics.json's intervals."),
) -> None:
    """Evaluate a model on a benchmark: official submission file, metrics JSON and a table."""
    # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from handrecon.data.schema import DatasetError
    from handrecon.eval.runner import evaluate as run_evaluation
    from handrecon.eval.runner import format_metric
    from handrecon.utils.distributed import start_cpu_group

    _check_threads_or_exit(threads)
    rank, _ = start_cpu_group()  # under torchrun every rank evaluates a share, rank 0 scores and reports
    from handrecon.infer.batch import parallel_batches

    threads, workers = parallel_batches(threads)  # one network thread per batch and a batch per core
    rec = _load_model_or_exit(checkpoint, threads, "auto" if int8 else "torch", tta, second_look, int8, bf16)
    if thorough:
        if not hasattr(rec, "at_threshold"):
            typer.echo(f"error: --thorough applies to a DETECTOR+MODEL pipeline, not {checkpoint!r}", err=True)
            raise typer.Exit(2)
        rec = rec.at_threshold(rec.score_threshold, hand_presence=True)
    _set_tiles_or_exit(rec, tiles, checkpoint)
    try:
        with Progress(transient=True, disable=rank > 0) as progress:
            task = progress.add_task(f"evaluating on {dataset}", total=None)
            result = run_evaluation(rec, dataset, root, split, out, batch_size, limit,
                                    on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                                    whole_image=whole_image,
                                    dataset_options={"mano_dir": mano_dir} if mano_dir is not None else None,
                                    gt_boxes=gt_boxes, workers=workers, read_sides=read_sides, by=by,
                                    bootstrap=bootstrap)
    except (ValueError, DatasetError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if rank > 0:
        return
    table = Table(title=f"{result.dataset} {result.split}: {result.num_samples} images, {result.num_hands} hands, "
                        f"model {result.model}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    intervals = result.intervals["metrics"] if result.intervals is not None else {}
    if intervals:
        table.add_column(f"{100 * result.intervals['level']:g} % interval", justify="right")
    for key, value in result.metrics.items():
        table.add_row(key, format_metric(key, value), *([_format_interval(key, intervals.get(key))] if intervals else []))
    Console().print(table)
    if result.breakdown is not None:
        groups = result.breakdown["groups"]
        keys = [k for k in BREAKDOWN_COLUMNS if any(g["metrics"].get(k) is not None for g in groups.values())]
        table = Table(title=f"by {result.breakdown['by']}")
        for column in (result.breakdown["by"], "hands", *keys):
            table.add_column(column, justify="left" if column == result.breakdown["by"] else "right")
        for value, group in groups.items():
            table.add_row(value, str(group["num_hands"]),
                          *(" ".join(filter(None, (format_metric(k, group["metrics"].get(k)),
                                                   _format_interval(k, group.get("intervals", {}).get(k)))))
                            for k in keys))
        Console().print(table)
    if intervals:
        typer.echo(f"intervals: percentile bootstrap, {result.intervals['resamples']} resamples of the images")
    for note in result.notes:
        typer.echo(f"note: {note}")
    for what, path in result.files.items():
        typer.echo(f"{what}: {path}")


@app.command("compare-evals")
def compare_evals(
    a: Path = typer.Argument(..., help="Model A: an `evaluate --bootstrap N --out A` folder, or an `evaluate-detector --out A.json` file."),
    b: Path = typer.Argument(..., help="Model B, the same kind, on the same dataset."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples of the images (>= 100)."),
) -> None:
    """Is model B better than model A? The paired bootstrap of two evaluations of the same images: per
    metric A, B, B - A and its 95% interval (both models scored on each resample of the images). Crop
    models: PA-MPJPE, PA-MPVPE, MPJPE, PCK; detectors: AP50 and, each at its own threshold, precision,
    recall and the hand-free rate."""
    from rich.console import Console
    from rich.table import Table

    from handrecon.eval.runner import compare_evaluations, format_metric

    try:
        rows = compare_evaluations(a, b, resamples)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"A: {a}{_detector_settings(a)}\nB: {b}{_detector_settings(b)}\n"
               f"paired bootstrap, {resamples} resamples of the images")
    table = Table()
    for column in ("metric", "A", "B", "B - A", "95 % interval", "B is"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, r in rows.items():
        millimetres = key.endswith("_mm")
        if r["low"] > 0 or r["high"] < 0:  # the interval of B - A leaves 0 out
            verdict = "better" if (r["high"] < 0) == (millimetres or key in LOWER_IS_BETTER) else "worse"
        else:
            verdict = "unclear"
        diff = f"{r['difference']:+.3f}" if millimetres else f"{r['difference']:+.4f}"
        span = f"[{r['low']:+.3f}, {r['high']:+.3f}]" if millimetres else f"[{r['low']:+.4f}, {r['high']:+.4f}]"
        table.add_row(key, format_metric(key, r["a"]), format_metric(key, r["b"]), diff, span, verdict)
    console = Console()
    (console if console.is_terminal else Console(width=120)).print(table)  # a file or pipe gets whole rows


def _detector_settings(path: Path) -> str:
    """What an `evaluate-detector --out` JSON file measured, as ' (DETECTOR --tta --tiles N, threshold T)';
    '' for anything else (a folder, the .npz, an unreadable file: `compare-evals` reports those itself)."""
    try:
        run = json.loads(path.read_text()) if path.suffix == ".json" and path.is_file() else {}
        flags = " --tta" * bool(run.get("test_time_flip")) + (f" --tiles {run['tiles']}" if run.get("tiles", 1) > 1 else "")
        return f" ({run['detector']}{flags}, threshold {float(run['threshold']):g})"
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return ""


def _format_interval(key: str, interval: dict[str, float] | None) -> str:
    """`evaluate`'s "low-high" cell of a metric's bootstrap interval ("" without one)."""
    if interval is None:
        return ""
    from handrecon.eval.runner import format_metric

    return f"[{format_metric(key, interval['low'])}, {format_metric(key, interval['high'])}]"


@app.command()
def serve(
    model: Optional[list[str]] = typer.Option(None, "--model", help="Models to offer (repeatable; default: the crop model after the hand detector and on the whole image, and the one-stage handos-openhand)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(7860, "--port", help="Port."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for the networks."),
) -> None:
    """Start the web page: upload an image or a short video, choose the model, see the overlay and
    the 3D meshes, download JSON and GLB (needs the `serve` extra: pip install "handrecon[serve]")."""
    try:
        # deferred imports: gradio takes seconds to import, and is an optional extra
        from handrecon.serve import serve as start
    except ImportError as e:
        typer.echo(f"error: the web page needs gradio ({e}); install it with: pip install \"handrecon[serve]\"", err=True)
        raise typer.Exit(2) from None
    _check_threads_or_exit(threads)
    if not 1 <= port <= 65535:
        typer.echo(f"error: --port must be in 1-65535, got {port}", err=True)
        raise typer.Exit(2)
    try:
        _, url = start(model, host, port, threads, block=False)
    except ValueError as e:  # a --model that does not load
        typer.echo(f"error: --model: {e}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:
        typer.echo(f"error: cannot listen on {host}:{port}: {e.strerror or e}; choose another --port", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"handrecon web page on {url} (Ctrl+C to stop)")
    import time

    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command("export-onnx")
def export_onnx_command(
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Shipped model name, checkpoint or run directory."),
    out: Path = typer.Option(..., "--out", help="Output .onnx file."),
    int8: bool = typer.Option(False, "--int8", help="Quantise the convolutions to int8 (crop models; faster on CPUs "
                              "with VNNI/AMX; accuracy cost in the model card)."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="With --int8: a folder of hand crops to "
                                               "calibrate on (default: 64 crops rendered by the synthetic engine)."),
) -> None:
    """Export a model's network to ONNX (dynamic batch, opset 17) for onnxruntime inference."""
    # deferred imports: `handrecon --help` starts in 0.2 s instead of 1.9 s (torch)
    from handrecon.infer.torch_backend import export_onnx

    if calibration is not None and not int8:
        typer.echo("error: --calibration calibrates the int8 quantisation; add --int8", err=True)
        raise typer.Exit(2)
    rec = _load_model_or_exit(model)
    try:
        images = None if calibration is None else _calibration_images(calibration)
        path = export_onnx(rec, out, int8=int8, calibration=images,
                           calibration_source="" if calibration is None else f"{len(images)} images of {calibration}")
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    size = rec.spec["input_size"]
    typer.echo(f"exported: {path} (input 1x3x{size}x{size} normalised, batch axis dynamic"
               f"{'; convolutions int8' if int8 else ''}); use it with handrecon.load({str(path)!r})")


def _calibration_images(folder: Path) -> list:
    """The readable images of a calibration folder (ValueError when there is none); unreadable ones are
    reported and skipped."""
    from handrecon.data.schema import load_image
    from handrecon.infer.batch import collect_images

    if not folder.is_dir():
        raise ValueError(f"--calibration {folder}: not a folder; give a folder of hand crops (PNG/JPEG)")
    images = []
    for path in collect_images([folder])[0]:
        try:
            images.append(load_image(path))
        except ValueError as e:
            typer.echo(f"skipped {path}: {e}", err=True)
    if not images:
        raise ValueError(f"--calibration {folder}: no readable image (PNG/JPEG) in it")
    return images

if __name__ == "__main__":
    app()
