import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from helpers import OneByOne
from PIL import Image

from handrecon.infer.batch import collect_images, reconstruct_paths, unique_stems
from handrecon.infer.results import HandResult, ImageResult

TETRA_V = np.array([[0, 0, 0.5], [0.05, 0, 0.5], [0, 0.05, 0.5], [0, 0, 0.55]], dtype=np.float32)
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


class FakePredictor(OneByOne):
    """Places a small tetrahedron at 0.5 m; records the K it was given."""

    def __init__(self):
        self.calls = []

    def predict(self, image, K=None, boxes=None, sides=None):
        h, w = image.shape[:2]
        side = sides[0] if sides else None
        if K is None:
            K = np.array([[300.0, 0, (w - 1) / 2], [0, 300.0, (h - 1) / 2], [0, 0, 1]])
        self.calls.append(K)
        uv = TETRA_V[:, :2] / TETRA_V[:, 2:] * K[0, 0] + K[:2, 2]
        kp2d = np.resize(uv, (21, 2))
        kp3d = np.resize(TETRA_V, (21, 3))
        hand = HandResult(
            box=np.array([0, 0, w, h], np.float32), side=side or "right", keypoints_2d=kp2d,
            keypoints_3d=kp3d, vertices=TETRA_V, cam_t=TETRA_V[0],
        )
        return ImageResult(K=K, image_size=(h, w), hands=[hand], faces_right=TETRA_F, faces_left=TETRA_F[:, ::-1])


def _write_images(root):
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a/x.png", "b/x.jpg", "a/y.png"):
        Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(root / name)
    (root / "a" / "broken.jpg").write_bytes(b"not an image")


def test_collect_images_and_unique_stems(tmp_path):
    _write_images(tmp_path)
    images, problems = collect_images([tmp_path, tmp_path / "missing.png"])
    assert [p.name for p in images] == ["broken.jpg", "x.png", "y.png", "x.jpg"]
    assert problems == [(str(tmp_path / "missing.png"), "no such file or folder")]
    assert unique_stems(images) == ["broken", "a_x_png", "y", "b_x_jpg"]
    assert unique_stems(images[::-1]) == unique_stems(images)[::-1]  # stable: independent of the order
    again, _ = collect_images([tmp_path / "a" / "y.png", tmp_path, tmp_path / "a" / "y.png"])
    assert len(again) == 4  # each file once
    (tmp_path / "clip.mp4").write_bytes(b"")  # a given video is named as one (was "not an image"), a folder's is left
    images, problems = collect_images([tmp_path, tmp_path / "clip.mp4"])
    assert len(images) == 4 and problems == [(str(tmp_path / "clip.mp4"), "a video, not an image: `handrecon reconstruct` "
                                              "reads videos (every frame's hands and boxes, as JSON Lines)")]
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mov").write_bytes(b"")
    _, problems = collect_images([tmp_path / "clips"])  # a folder of videos says where they go
    assert problems == [(str(tmp_path / "clips"), "folder holds no image (.bmp, .gif, .jpeg, .jpg, .png, .tif, .tiff, "
                                                  ".webp); it holds 1 video(s): `handrecon reconstruct` reads videos")]


def test_outputs_of_same_stem_inputs_never_overwrite_each_other(tmp_path):
    """x.jpg, x.png and x_2.png in one folder: three images, three distinct sets of outputs."""
    root = tmp_path / "in"
    root.mkdir()
    rng = np.random.default_rng(1)
    for h, name in ((41, "x.jpg"), (42, "x.png"), (43, "x_2.png")):
        Image.fromarray(rng.integers(0, 255, (h, 60, 3), dtype=np.uint8)).save(root / name)
    report = reconstruct_paths(FakePredictor(), [root], tmp_path / "out", mesh_formats=("obj",), overlay=False)
    assert report.ok and len(report.written) == 3
    names = [n for files in report.written.values() for n in files]
    assert len(names) == len(set(names)) == 6
    for stem, h in (("x_jpg", 41), ("x_png", 42), ("x_2", 43)):  # each output belongs to its own input
        assert json.loads((tmp_path / "out" / f"{stem}.json").read_text())["image_size"][0] == h
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names)


def test_an_unresolvable_name_clash_is_an_error_before_anything_runs(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    for name in ("x.jpg", "x.png", "x_png.png"):  # x.png -> "x_png", the name x_png.png has already
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / name)
    pred = FakePredictor()
    try:
        reconstruct_paths(pred, [root], tmp_path / "out")
    except ValueError as e:
        assert "x_png" in str(e) and "rename" in str(e)
    else:
        raise AssertionError("a name clash must be an error")
    assert pred.calls == [] and not (tmp_path / "out").exists()


def test_output_folder_inside_the_input_folder_is_skipped(tmp_path):
    _write_images(tmp_path)
    first = reconstruct_paths(FakePredictor(), [tmp_path], tmp_path / "out")
    second = reconstruct_paths(FakePredictor(), [tmp_path], tmp_path / "out")
    assert set(first.written) == set(second.written) and len(second.written) == 3


def test_a_non_finite_result_writes_nothing(tmp_path):
    class NaNPredictor(FakePredictor):
        def predict(self, image, K=None, boxes=None, sides=None):
            res = super().predict(image, K, boxes, sides)
            res.hands[0].vertices = res.hands[0].vertices * np.float32("nan")
            return res

    _write_images(tmp_path / "in")
    report = reconstruct_paths(NaNPredictor(), [tmp_path / "in"], tmp_path / "out")
    assert len(report.failed) == 4 and all("non-finite vertices" in why for p, why in report.failed if "broken" not in p)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_reconstruct_paths_writes_outputs_and_reports_failures(tmp_path):
    _write_images(tmp_path / "in")
    pred = FakePredictor()
    report = reconstruct_paths(pred, [tmp_path / "in", tmp_path / "nope"], tmp_path / "out", focal=500.0, side="left")
    failed = dict(report.failed)
    assert set(failed) == {str(tmp_path / "in" / "a" / "broken.jpg"), str(tmp_path / "nope")}
    assert "cannot read image" in failed[str(tmp_path / "in" / "a" / "broken.jpg")]
    assert not report.ok and report.num_hands == 3 and len(report.written) == 3
    # --focal builds K with the principal point at the image centre.
    np.testing.assert_allclose(pred.calls[0], [[500, 0, 39.5], [0, 500, 31.5], [0, 0, 1]])
    out = tmp_path / "out"
    data = json.loads((out / "b_x_jpg.json").read_text())
    assert data["hands"][0]["side"] == "left" and len(data["hands"][0]["keypoints_2d"]) == 21
    for fmt in ("obj", "ply", "glb"):
        mesh = trimesh.load(out / f"a_x_png_hand0.{fmt}", force="mesh", process=False)
        assert len(mesh.faces) == 4
    overlay = np.asarray(Image.open(out / "y_overlay.png"))
    assert overlay.shape[0] == 64 and overlay.shape[1] > 80  # image plus side-view panel
    assert not list(out.glob(".*tmp"))


def test_batched_run_equals_one_by_one_and_bad_items_fail_alone(tmp_path):
    """reconstruct_paths runs the network on batches of images decoded ahead by a reader thread:
    the outputs equal image-by-image runs, and a bad image (1 x 1 px, unreadable) fails alone."""
    import handrecon
    from helpers import random_checkpoint

    model = handrecon.load(random_checkpoint(tmp_path / "ck", {"backbone_kwargs": {"width": 16}}, input_size=64))
    model.refine_root = False  # closed form: bit-stable across batch sizes
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8)).save(src / f"img{i}.png")
    Image.new("RGB", (1, 1)).save(src / "tiny.png")
    (src / "broken.png").write_bytes(b"not a png")
    one = reconstruct_paths(model, [src], tmp_path / "one", overlay=False, mesh_formats=(), batch_size=1)
    many = reconstruct_paths(model, [src], tmp_path / "many", overlay=False, mesh_formats=(), batch_size=16)
    side_by_side = reconstruct_paths(model, [src], tmp_path / "side_by_side", overlay=False, mesh_formats=(),
                                     batch_size=2, workers=3)  # three batches through the network at once
    for report in (one, many, side_by_side):
        assert len(report.written) == 5 and {Path(p).name for p, _ in report.failed} == {"tiny.png", "broken.png"}
    assert list(side_by_side.written) == list(one.written)  # reported in input order
    for i in range(5):
        a = json.loads((tmp_path / "one" / f"img{i}.json").read_text())["hands"][0]
        for other in ("many", "side_by_side"):
            b = json.loads((tmp_path / other / f"img{i}.json").read_text())["hands"][0]
            np.testing.assert_allclose(a["vertices"], b["vertices"], atol=2e-5)
            np.testing.assert_allclose(a["keypoints_2d"], b["keypoints_2d"], atol=1e-2)
    with pytest.raises(ValueError, match="workers"):
        reconstruct_paths(model, [src], tmp_path / "x", workers=0)


def test_parallel_batches_splits_the_cores_between_batches(monkeypatch):
    """Images: one network thread per batch and a batch per core (shared among torchrun's local
    ranks); an explicit --threads keeps one batch at a time on that many threads."""
    import os

    from handrecon.infer.batch import parallel_batches

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert parallel_batches(None) == (1, 4) and parallel_batches(3) == (3, 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert parallel_batches(None) == (1, 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert parallel_batches(None) == (None, 1)  # one core: the network may use it as it likes


def test_prefetch_keeps_order_and_runs_at_most_ahead():
    """Decoding runs ahead of the network by a bounded number of images (a folder of 100 000
    photos must not be decoded into memory while the network works on the first batch)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from handrecon.utils.threads import prefetch

    started, lock = [], threading.Lock()

    def work(i):
        with lock:
            started.append(i)
        return i * i

    with ThreadPoolExecutor(max_workers=1) as pool:
        out = []
        for k, value in enumerate(prefetch(pool, work, range(50), ahead=4)):
            out.append(value)
            assert len(started) <= k + 1 + 4  # never more than `ahead` beyond what was consumed
    assert out == [i * i for i in range(50)]
