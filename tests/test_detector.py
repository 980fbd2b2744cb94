"""The frozen detector layer under HandOS: each transformers adapter from a tiny random config,
what it returns, that it stays frozen, and local-only loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from handrecon.models.handos.detector import (  # noqa: E402
    DETECTOR_KINDS,
    DetectorConfig,
    DetectorError,
    load_detector,
    save_detector,
    wrap_detector,
)
from helpers import TINY_DETR_QUERIES as Q  # noqa: E402
from helpers import TINY_DETR_WIDTH as D  # noqa: E402
from helpers import load_script  # noqa: E402
from helpers import tiny_detr as tiny_model  # noqa: E402

@pytest.fixture(scope="module", params=DETECTOR_KINDS)
def detector(request):
    return wrap_detector(request.param, tiny_model(request.param), DetectorConfig(input_size=160))


def test_outputs_hold_what_handos_reads(detector):
    images = [np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8),
              np.random.default_rng(1).integers(0, 255, (160, 100, 3), np.uint8)]
    prep = detector.prepare(images)
    assert prep.pixel_values.shape == (2, 3, 160, 160) and prep.pixel_mask[0, 120:].sum() == 0
    out = detector(prep.pixel_values, prep.pixel_mask)
    B, L1 = 2, out.queries.shape[1]
    assert out.boxes.shape == (B, Q, 4) and out.scores.shape == (B, Q)
    assert ((out.scores >= 0) & (out.scores <= 1)).all()
    assert out.queries.shape == (B, L1, Q, D) and L1 >= 3  # Q_0 and one per decoder layer
    assert out.reference_boxes.shape == (B, L1, Q, 4)
    assert (out.reference_boxes >= 0).all() and (out.reference_boxes <= 1).all()
    torch.testing.assert_close(out.reference_boxes[:, -1], out.boxes)  # the last layer's boxes are the output
    levels = len(out.spatial_shapes)
    assert out.level_start_index.tolist() == [0, *np.cumsum([h * w for h, w in out.spatial_shapes.tolist()])[:-1]]
    total = int(out.spatial_shapes.prod(1).sum())
    for layer, memory in out.memory.items():
        assert memory.shape == (B, total, D)
    assert out.memory_at(-1) is out.memory[max(out.memory)]
    assert out.valid_ratios.shape == (B, levels, 2)
    assert [m.shape[-1] for m in out.backbone_maps] == [160 // s for s in (4, 8, 16, 32)]
    if detector.kind not in ("rt-detr", "rt-detr-v2"):  # masked detectors see how much of image 0 is real
        assert out.valid_ratios[0, 0, 1] < 0.8 and out.valid_ratios[0, 0, 0] == 1
        assert len(out.memory) == 2  # every encoder layer
    with pytest.raises(DetectorError, match="encoder memory after layers"):
        out.memory_at(7)


def test_the_detector_stays_frozen(detector):
    holder = torch.nn.ModuleDict({"det": detector, "head": torch.nn.Linear(D, 1)})
    holder.train()
    assert not detector.model.training and detector.training
    assert not any(p.requires_grad for p in detector.parameters())
    prep = detector.prepare([np.zeros((64, 64, 3), np.uint8)])
    out = detector(prep.pixel_values, prep.pixel_mask)
    assert not out.queries.requires_grad and not out.memory_at(-1).requires_grad


def test_the_same_input_is_computed_once(detector, monkeypatch):
    """A frozen detector keeps its last output for the same pixels (and mask, where it reads one):
    the model runs once for a repeat, again for a changed pixel, a changed mask (masked detectors
    only) or the first input changed in place afterwards (the kept input is a copy)."""
    calls = []
    forward = type(detector.model).forward
    monkeypatch.setattr(type(detector.model), "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))
    prep = detector.prepare([np.random.default_rng(5).integers(0, 255, (120, 160, 3), np.uint8)])
    first = detector(prep.pixel_values, prep.pixel_mask)
    again = detector(prep.pixel_values.clone(), prep.pixel_mask.clone())
    assert len(calls) == 1 and again is first
    changed = prep.pixel_values.clone()
    changed[0, 0, 0, 0] += 0.5
    torch.testing.assert_close(detector(changed, prep.pixel_mask).boxes.shape, first.boxes.shape)
    assert len(calls) == 2
    detector(prep.pixel_values, prep.pixel_mask)  # only the last input is kept
    detector(prep.pixel_values, torch.ones_like(prep.pixel_mask))  # a mask that calls every pixel real
    assert len(calls) == (4 if detector.reads_pixel_mask else 3)
    pixels = prep.pixel_values.clone()
    detector(pixels, prep.pixel_mask)
    n = len(calls)
    pixels += 1.0  # the caller reuses its buffer: not the input the kept output was computed from
    detector(pixels, prep.pixel_mask)
    assert len(calls) == n + 1
    detector.forget()  # a benchmark timing fresh passes
    detector(pixels, prep.pixel_mask)
    assert len(calls) == n + 2


def test_bench_detector_times_fresh_network_passes(detector, monkeypatch):
    """benchmarks/bench_detector.py (and bench_handos.py, through the same `_timing.fresh_times`) times the
    network, not the kept output a repeated input returns (it once timed lookups: 0.2 ms at 320 px)."""
    bench = load_script("benchmarks/bench_detector.py")
    calls = []
    forward = type(detector.model).forward
    monkeypatch.setattr(type(detector.model), "forward", lambda self, *a, **k: calls.append(1) or forward(self, *a, **k))
    prep = detector.prepare([np.random.default_rng(6).integers(0, 255, (120, 160, 3), np.uint8)])
    times = bench.fresh_times(detector, lambda: detector(prep.pixel_values, prep.pixel_mask), repeats=3, warmup=1)
    assert len(times) == 3 and len(calls) == 4
    bench.fresh_times(detector, lambda: detector.detect([np.zeros((60, 80, 3), np.uint8)]), repeats=2, warmup=0)
    assert len(calls) == 6


def test_detect_gives_boxes_in_image_pixels(detector):
    image = np.random.default_rng(2).integers(0, 255, (90, 200, 3), np.uint8)
    found = detector.detect([image], score_threshold=0.0, nms_iou=1.0)[0]
    assert found.boxes.shape == (Q, 4) and (np.diff(found.scores) <= 0).all()
    assert (found.boxes[:, [0, 2]] <= 200).all() and (found.boxes[:, [1, 3]] <= 90).all()
    assert len(detector.detect([image], score_threshold=1.01)[0].boxes) == 0


def test_save_and_load_from_a_local_folder(detector, tmp_path):
    folder = save_detector(detector, tmp_path / "det")
    again = load_detector(f"{detector.kind}:{folder}")
    assert type(again) is type(detector)
    image = np.random.default_rng(3).integers(0, 255, (100, 120, 3), np.uint8)
    a = detector.detect([image], score_threshold=0.0)[0]
    b = again.detect([image], score_threshold=0.0)[0]
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    assert load_detector(str(folder)).config == detector.config  # a folder saved by handrecon knows its kind


def test_weights_stored_in_float16_run_in_float32(tmp_path):
    """A checkpoint saved in float16 (as hub checkpoints often are) loads as float32, the dtype every
    CPU kernel has (transformers 5 would keep the stored dtype), and detects as the float32 one does."""
    det = wrap_detector("rt-detr", tiny_model("rt-detr"), DetectorConfig(input_size=96))
    half = wrap_detector("rt-detr", tiny_model("rt-detr").half(), DetectorConfig(input_size=96))
    again = load_detector(str(save_detector(half, tmp_path / "half")))
    assert {p.dtype for p in again.model.parameters()} == {torch.float32}
    image = np.random.default_rng(3).integers(0, 255, (80, 100, 3), np.uint8)
    a, b = det.detect([image], score_threshold=0.0)[0], again.detect([image], score_threshold=0.0)[0]
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-2)


def test_loading_errors_are_clear(tmp_path):
    with pytest.raises(DetectorError, match="does not exist.*never downloads"):
        load_detector(f"rt-detr:{tmp_path / 'missing'}")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text("{}")
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(DetectorError, match="model.safetensors"):
        load_detector(f"grounding-dino:{tmp_path / 'bin'}")
    with pytest.raises(DetectorError, match="KIND:DIR"):
        load_detector("yolo:/x")
    with pytest.raises(DetectorError, match="must be a transformers"):
        wrap_detector("rt-detr", tiny_model("deformable-detr"))


def test_cli_detect(tmp_path):
    """`handrecon detect` over a folder with a detector from a local folder: JSON + overlay per
    image, a bad file reported while the rest go on, one-line errors for bad detectors and flags."""
    from PIL import Image
    from typer.testing import CliRunner

    from handrecon.cli import app

    folder = save_detector(wrap_detector("rt-detr", tiny_model("rt-detr"), DetectorConfig(input_size=128)),
                           tmp_path / "det")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), np.uint8)).save(images / "a.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (60, 60, 3), np.uint8)).save(images / "b.jpg")
    (images / "broken.png").write_bytes(b"not an image")
    runner = CliRunner()
    r = runner.invoke(app, ["detect", str(images), "--out", str(tmp_path / "out"), "--detector", f"rt-detr:{folder}",
                            "--score-threshold", "0", "--nms-iou", "1"])
    assert r.exit_code == 1, r.output  # one file failed
    assert "2 image(s)" in r.output and "broken.png" in r.output and "Traceback" not in r.output
    assert next(line for line in r.output.splitlines() if "broken.png" in line).count("broken.png") == 1
    import json

    result = json.loads((tmp_path / "out" / "a.json").read_text())
    assert result["size"] == [120, 90] and len(result["hands"]) == Q
    boxes = np.array([h["box"] for h in result["hands"]])
    assert (boxes[:, [0, 2]] <= 120).all() and (boxes[:, [1, 3]] <= 90).all() and (boxes[:, 2:] >= boxes[:, :2]).all()
    assert (tmp_path / "out" / "a_boxes.png").is_file() and (tmp_path / "out" / "b.json").is_file()
    assert "no hand found" not in r.output  # every image got boxes at threshold 0
    r = runner.invoke(app, ["detect", str(images / "a.png"), "--out", str(tmp_path / "o1"), "--detector",
                            f"rt-detr:{folder}", "--score-threshold", "1"])
    assert r.exit_code == 0 and "note: no hand found in 1 image(s) at score >= 1 (a.png)" in r.output, r.output
    assert "--thorough" not in r.output  # `detect` runs no crop model
    assert "--crop" not in r.output  # detect has no crop model
    r = runner.invoke(app, ["detect", str(images / "a.png"), "--out", str(tmp_path / "flip"), "--detector",
                            f"rt-detr:{folder}", "--score-threshold", "0", "--nms-iou", "1", "--tta"])
    flipped = json.loads((tmp_path / "flip" / "a.json").read_text())
    assert r.exit_code == 0 and flipped["test_time_flip"] is True and len(flipped["hands"]) == 2 * Q
    assert result["test_time_flip"] is False
    for args, message in ((["--detector", f"rt-detr:{tmp_path / 'nowhere'}"], "never downloads"),
                          (["--detector", "yolo"], "unknown hand detector 'yolo'"),
                          (["--detector", "m3dhmr-openhand"], "goes to --model"),  # not "the config's imports:"
                          (["--detector", f"rt-detr:{folder}", "--nms-iou", "0"], "--nms-iou")):
        r = runner.invoke(app, ["detect", str(images / "a.png"), "--out", str(tmp_path / "o2"), *args])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


def test_square_inputs_are_letterboxed_as_in_training():
    """A square-input detector sees exactly what its training data and HandOS see: `letterbox`
    (black padding before normalising)."""
    from handrecon.models.handos.detections import letterbox
    from handrecon.utils.image import normalize_images

    det = wrap_detector("rt-detr", tiny_model("rt-detr"), DetectorConfig(input_size=96, square=True))
    image = np.random.default_rng(0).integers(0, 255, (60, 90, 3), np.uint8)
    canvas, s = letterbox(image, 96)
    prep = det.prepare([image])
    assert prep.scale[0] == pytest.approx(s)
    np.testing.assert_array_equal(prep.pixel_values.numpy(), normalize_images(canvas[None]))


def test_test_time_flip_pools_the_mirror_images_queries(detector):
    """With test_time_flip the queries read on the mirror image join the image's own, flipped back
    into its pixels: exactly the plain detections of the image and of its mirror image, flipped."""
    image = np.random.default_rng(3).integers(0, 255, (90, 200, 3), np.uint8)
    plain = detector.detect([image], score_threshold=0.0, nms_iou=1.0)[0]
    mirror = detector.detect([np.ascontiguousarray(image[:, ::-1])], score_threshold=0.0, nms_iou=1.0)[0]
    detector.test_time_flip = True
    try:
        both = detector.detect([image, image], score_threshold=0.0, nms_iou=1.0)
    finally:
        detector.test_time_flip = False
    flipped = mirror.boxes.copy()
    flipped[:, [0, 2]] = 200 - mirror.boxes[:, [2, 0]]
    expected = np.concatenate([plain.boxes, flipped])
    for found in both:
        assert found.boxes.shape == (2 * Q, 4) and (np.diff(found.scores) <= 0).all()
        order = np.lexsort(found.boxes.T), np.lexsort(expected.T)
        np.testing.assert_allclose(found.boxes[order[0]], expected[order[1]], atol=1e-3)
    assert detector.describe()["test_time_flip"] is False


def test_torch_detector_reads_many_views_in_bounded_calls_with_the_same_hands(monkeypatch):
    """Tiles over a batch (2 images x 17 views) go through the network at most MAX_VIEWS_PER_RUN at
    a time (memory grows with the batch), and find exactly what one call over every view finds."""
    from handrecon.models.handos import detector as detector_module

    det = wrap_detector("rt-detr", tiny_model("rt-detr"), DetectorConfig(input_size=96, square=True))
    det.tiles = 4
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 255, (70, 110, 3), np.uint8), rng.integers(0, 255, (120, 50, 3), np.uint8)]
    batches = []
    forward = det._forward
    monkeypatch.setattr(det, "_forward", lambda pixels, mask: batches.append(len(pixels)) or forward(pixels, mask))
    chunked = det.detect(images, score_threshold=0.0, nms_iou=0.8)
    assert batches == [32, 2], batches
    monkeypatch.setattr(detector_module, "MAX_VIEWS_PER_RUN", 1000)
    det.forget()
    whole = det.detect(images, score_threshold=0.0, nms_iou=0.8)
    assert batches[2:] == [34]
    for a, b in zip(chunked, whole):
        np.testing.assert_array_equal(a.query, b.query)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_onnx_detector_matches_torch_and_is_cached(tmp_path, monkeypatch):
    """A square RT-DETR exported once to the cache finds the same hands on onnxruntime as in torch;
    the next load reads the export, a damaged export is replaced, changed weights get their own."""
    pytest.importorskip("onnxruntime")
    from handrecon.models.handos import onnx_detector as od
    from handrecon.models.handos import onnx_export

    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    det = wrap_detector("rt-detr", tiny_model("rt-detr"), DetectorConfig(input_size=96, square=True))
    folder = save_detector(det, tmp_path / "det")
    fast = od.detector_for_boxes(folder)
    assert isinstance(fast, od.OnnxDetector) and fast.config == det.config
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 255, (70, 110, 3), np.uint8), rng.integers(0, 255, (120, 50, 3), np.uint8)]
    for flip, tiles in ((False, 1), (True, 1), (False, 4)):  # flip and tiles alike on both backends; 2 x 17 views
        fast.test_time_flip = det.test_time_flip = flip  # are more than onnxruntime reads in one call (MAX_VIEWS_PER_RUN)
        fast.tiles = det.tiles = tiles
        for a, b in zip(fast.detect(images, score_threshold=0.0, nms_iou=0.8), det.detect(images, score_threshold=0.0, nms_iou=0.8)):
            np.testing.assert_array_equal(a.query, b.query)
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    fast.test_time_flip = det.test_time_flip = False
    fast.tiles = det.tiles = 1
    assert fast.detect([]) == [] and det.detect([]) == []  # an empty batch (a folder's last) is no error
    exports = list((tmp_path / "cache" / "detectors").glob("*.onnx"))
    assert len(exports) == 1
    import onnx  # the kept export is optimised once (fused operators: fewer nodes than the plain export)

    plain = onnx_export.export_detector_onnx(det, tmp_path / "plain.onnx")
    assert len(onnx.load(str(exports[0])).graph.node) < len(onnx.load(str(plain)).graph.node)

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_export, "export_detector_onnx", no_export)
    assert isinstance(od.detector_for_boxes(folder), od.OnnxDetector)  # read from the cache
    monkeypatch.undo()
    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    exports[0].write_bytes(b"damaged")
    again = od.detector_for_boxes(folder)
    np.testing.assert_allclose(again.detect(images[:1], 0.0)[0].scores, det.detect(images[:1], 0.0)[0].scores, atol=1e-5)
    with torch.no_grad():
        next(det.model.parameters()).add_(0.1)
    save_detector(det, folder)
    od.detector_for_boxes(folder)
    assert len(list((tmp_path / "cache" / "detectors").glob("*.onnx"))) == 2


def test_onnx_detector_limits_are_clear(tmp_path, monkeypatch):
    """Only square RT-DETRs export (others stay on torch); a file that is not a detector export is
    refused with what to do; without onnxruntime the shipped loader keeps the torch detector."""
    pytest.importorskip("onnxruntime")
    from handrecon.models.handos import onnx_detector as od
    from handrecon.models.handos import onnx_export
    from handrecon.models.handos.hand_detector import hand_detector_for_boxes

    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    masked = wrap_detector("deformable-detr", tiny_model("deformable-detr"), DetectorConfig(input_size=96))
    with pytest.raises(DetectorError, match="only square-input RT-DETR"):
        onnx_export.export_detector_onnx(masked, tmp_path / "x.onnx")
    assert type(od.detector_for_boxes(save_detector(masked, tmp_path / "masked"))).__name__ == "DeformableDetrDetector"
    square = wrap_detector("rt-detr", tiny_model("rt-detr"), DetectorConfig(input_size=64, square=True))
    path = onnx_export.export_detector_onnx(square, tmp_path / "d.onnx")
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "plain.onnx"))
    with pytest.raises(ValueError, match="not a handrecon detector export"):
        od.OnnxDetector(tmp_path / "plain.onnx")
    folder = save_detector(square, tmp_path / "square")
    monkeypatch.setattr(od, "onnx_export_available", lambda: False)
    assert type(hand_detector_for_boxes(str(folder))).__name__ == "RTDetrDetector"


def test_a_failed_export_keeps_the_torch_detector(tmp_path, monkeypatch):
    """An unwritable cache (a file where the folder should be) gives the torch detector, loaded
    once, and a warning, not an error."""
    pytest.importorskip("onnxruntime")
    from handrecon.models.handos import detector as torch_detectors
    from handrecon.models.handos import onnx_detector as od

    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    monkeypatch.setenv("HANDRECON_CACHE", str(blocker))
    folder = save_detector(wrap_detector("rt-detr", tiny_model("rt-detr"), DetectorConfig(input_size=64, square=True)),
                           tmp_path / "det")
    loads = []
    load = torch_detectors.load_detector
    monkeypatch.setattr(torch_detectors, "load_detector", lambda spec: loads.append(spec) or load(spec))
    assert type(od.detector_for_boxes(folder)).__name__ == "RTDetrDetector" and len(loads) == 1


def test_the_two_stage_pipeline_with_a_side_head_runs_without_torch(tmp_path, monkeypatch):
    """With its exports in the cache, a square RT-DETR and its side head serve on onnxruntime
    (same boxes, scores, sides and p_left as in torch), and `reconstruct` on a full image with an
    exported crop model runs with every import of torch refused."""
    pytest.importorskip("onnxruntime")
    from PIL import Image
    from test_infer_onnx import run_without_torch
    from test_predictor import tiny_checkpoint

    from handrecon.checkpoint import save_checkpoint
    from handrecon.models.handos import onnx_detector as od
    from handrecon.models.handos.side_head import SideClassifier
    from handrecon.infer.torch_backend import export_onnx

    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    det = wrap_detector("rt-detr", tiny_model("rt-detr"), DetectorConfig(input_size=96, square=True))
    folder = save_detector(det, tmp_path / "det")
    torch.manual_seed(0)
    save_checkpoint(folder / "side_head", SideClassifier(width=4, input_size=32).eval(), {},
                    {"architecture": "hand_side", "kwargs": {"width": 4, "input_size": 32}})
    slow, fast = load_detector(str(folder)), od.detector_for_boxes(folder)
    assert isinstance(fast, od.OnnxDetector) and isinstance(fast.side_head, od.OnnxSideHead)
    image = np.random.default_rng(5).integers(0, 255, (80, 120, 3), np.uint8)
    a, b = fast.detect([image], 0.0, 0.8)[0], slow.detect([image], 0.0, 0.8)[0]
    assert a.sides == b.sides and len(a.sides) == len(a.boxes) > 0
    np.testing.assert_allclose(a.p_left, b.p_left, atol=5e-4)  # a ResNet-18 with a keypoint head: fused conv-BN sums differ ~1e-4

    Image.fromarray(image).save(tmp_path / "photo.png")
    crop = export_onnx(tiny_checkpoint(tmp_path / "ck", seed=1), tmp_path / "crop.onnx")
    done = run_without_torch(["reconstruct", str(tmp_path / "photo.png"), "--model", str(crop), "--detector",
                              f"handrecon-hand-detector:{folder}", "--score-threshold", "0", "--formats", "",
                              "--out", str(tmp_path / "out")], tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-2000:]
    hands = json.loads((tmp_path / "out" / "photo.json").read_text())["hands"]
    kept = fast.detect([image], 0.0, 0.5)[0]  # the pipeline's NMS
    assert len(hands) == len(kept.boxes)
    from handrecon.infer.load import load_onnx
    from handrecon.infer.pipeline import side_head_prior

    own = load_onnx(crop).predict(image, boxes=kept.boxes, side_priors=side_head_prior(kept.p_left)).hands
    order = [int(np.argmin(np.abs(kept.boxes - np.array(h["box"])).sum(1))) for h in hands]  # hands come best first
    assert sorted(order) == list(range(len(kept.boxes)))
    assert [h["side"] for h in hands] == [own[i].side for i in order]  # the crop model's reading, the head's prior
    assert [h["side_score"] for h in hands] == pytest.approx([own[i].side_score for i in order], abs=1e-4)
    done = run_without_torch(["detect", str(tmp_path / "photo.png"), "--detector", f"handrecon-hand-detector:{folder}",
                              "--score-threshold", "0", "--out", str(tmp_path / "found")], tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads((tmp_path / "found" / "photo.json").read_text())["hands"]
    assert [h["side"] for h in found] == kept.sides  # `detect` reports the side head's own reading
    expected = [round(p if s == "left" else 1 - p, 4) for s, p in zip(kept.sides, kept.p_left)]
    assert [h["side_score"] for h in found] == pytest.approx(expected, abs=1e-4)


def test_detect_paths_in_batches_side_by_side_equals_one_by_one(tmp_path):
    """`handrecon detect`'s runner batches images (and runs batches side by side): a square
    detector's boxes and scores per image are those of one image at a time."""
    from PIL import Image

    from handrecon.infer.detect import detect_paths

    det = wrap_detector("rt-detr", tiny_model("rt-detr"), DetectorConfig(input_size=96, square=True))
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(3)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (60 + 10 * i, 90, 3), np.uint8)).save(images / f"im{i}.png")
    one = detect_paths(det, [images], tmp_path / "one", 0.0, 0.8, overlay=False, batch_size=1)
    many = detect_paths(det, [images], tmp_path / "many", 0.0, 0.8, overlay=False, batch_size=2, workers=2)
    assert list(one.written) == list(many.written) and one.num_hands == many.num_hands > 0
    for i in range(5):
        a, b = (json.loads((tmp_path / d / f"im{i}.json").read_text())["hands"] for d in ("one", "many"))
        np.testing.assert_allclose([h["box"] for h in a], [h["box"] for h in b], atol=1e-2)
        np.testing.assert_allclose([h["score"] for h in a], [h["score"] for h in b], atol=1e-4)


def test_detections_come_back_in_the_images_pixels():
    """`detections.find_hands` (both detectors' reading of their outputs) undoes the letterbox: a
    query box in the padded 256 px input of a 200-px-wide image lands at input px / (256 / 200)."""
    from handrecon.models.handos.detections import find_hands

    image = np.zeros((100, 200, 3), np.uint8)
    boxes = np.array([[[0.5, 0.25, 0.25, 0.125], [0.9, 0.9, 0.1, 0.1]]], np.float32)  # cx, cy, w, h of the input
    found = find_hands([image], boxes, np.array([[0.9, 0.2]], np.float32), (256, 256), np.array([256 / 200]),
                       score_threshold=0.5, nms_iou=0.5, max_hands=10)[0]
    np.testing.assert_allclose(found.boxes, [[75.0, 37.5, 125.0, 62.5]], atol=1e-4)
    assert found.query.tolist() == [0] and found.scores.tolist() == pytest.approx([0.9])


def test_detect_defaults_to_the_served_operating_point():
    """`detect()` with no thresholds keeps what `handrecon detect`, the pipeline and
    `evaluate-detector` keep (score 0.5, NMS 0.5), in torch and onnxruntime alike: a Python caller
    gets the measured operating point, not more and overlapping boxes."""
    import inspect

    from handrecon.eval.operating_point import DEFAULT_NMS_IOU, DEFAULT_SCORE_THRESHOLD
    from handrecon.models.handos.detector import Detector
    from handrecon.models.handos.onnx_detector import OnnxDetector

    for cls in (Detector, OnnxDetector):
        p = inspect.signature(cls.detect).parameters
        assert (p["score_threshold"].default, p["nms_iou"].default) == (DEFAULT_SCORE_THRESHOLD, DEFAULT_NMS_IOU), cls


def test_loading_one_detector_kind_imports_no_other_architecture():
    """A detector's transformers class is imported only for its own kind: serving our RT-DETR does
    not pay for importing Grounding DINO or Deformable DETR (~2 s of start-up on 2 cores)."""
    import subprocess
    import sys

    code = ("import sys; from handrecon.models.handos.hand_detector import load_hand_detector; load_hand_detector(); "
            "print(sorted(m for m in sys.modules if m.startswith('transformers.models.')"
            " and ('grounding_dino' in m or 'deformable_detr' in m)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out
