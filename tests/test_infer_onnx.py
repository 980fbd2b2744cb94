"""ONNX export and onnxruntime inference: same network outputs and same predictions as torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import assert_same_hand_mesh
from PIL import Image
from test_pipeline import CandidateDetector
from test_predictor import SIZE, photo, tiny_checkpoint

import handrecon
from handrecon.infer.load import load_onnx
from handrecon.infer.onnx import METADATA_KEY, OnnxNetwork, metadata
from handrecon.infer.pipeline import TwoStagePredictor
from handrecon.infer.predictor import SECOND_STAGE_ROWS
from handrecon.infer.torch_backend import export_onnx


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    torch_rec = handrecon.load(tiny_checkpoint(d / "ck", seed=1), second_look=False)  # one look: tests/test_second_look.py
    path = export_onnx(d / "ck", d / "model.onnx")
    return torch_rec, handrecon.load(path, threads=1, second_look=False), path


def test_export_embeds_metadata(models):
    torch_rec, _, path = models
    proto = onnx.load(str(path))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert meta["card"] == torch_rec.card and meta["card"]["inference"]["input_size"] == SIZE
    assert meta["refine_root"] is True
    assert [i.name for i in proto.graph.input] == ["image"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_onnxruntime_matches_torch_network(models):
    torch_rec, ort_rec, _ = models
    assert isinstance(ort_rec.network, OnnxNetwork) and ort_rec.model is None
    x = np.random.default_rng(0).normal(size=(3, 3, SIZE, SIZE)).astype(np.float32)  # batch 3: dynamic axis
    a, b = torch_rec.network(x), ort_rec.network(x)
    for key in ("uv_px", "verts", "joints"):
        assert b[key].shape == a[key].shape
        np.testing.assert_allclose(b[key], a[key], atol=1e-4, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_onnx_predict_matches_torch_predict(models, side, monkeypatch):
    torch_rec, ort_rec, _ = models
    for rec in (torch_rec, ort_rec):  # closed-form root: see test_predict_batch_matches_predict
        monkeypatch.setattr(rec, "refine_root", False)
    image = photo(seed=4)
    a = torch_rec.predict(image, boxes=[(30, 20, 110, 100)], sides=[side])
    b = ort_rec.predict(image, boxes=[(30, 20, 110, 100)], sides=[side])
    ha, hb = a.hands[0], b.hands[0]
    assert hb.side == side
    np.testing.assert_allclose(hb.keypoints_2d, ha.keypoints_2d, atol=1e-3)
    np.testing.assert_allclose(hb.vertices, ha.vertices, atol=1e-4)
    np.testing.assert_allclose(hb.cam_t, ha.cam_t, atol=1e-4)
    np.testing.assert_array_equal(b.faces_for(side), a.faces_for(side))


def test_foreign_onnx_file_is_refused(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "other.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    with pytest.raises(ValueError, match="not a handrecon export|not exported by"):
        load_onnx(path)
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ValueError, match="cannot load"):
        load_onnx(tmp_path / "junk.onnx")


def test_onnx_metadata_that_lies_is_refused(models, tmp_path):
    """A handrecon export whose metadata was edited (an older format, a card of another family, a
    graph without the outputs the card's family has) gives a one-line error, not a crash later."""
    torch_rec, _, path = models

    def with_meta(value, name):
        proto = onnx.load(str(path))
        for p in proto.metadata_props:
            if p.key == METADATA_KEY:
                p.value = value
        out = tmp_path / name
        onnx.save(proto, str(out))
        return out

    old = json.dumps({"format": "handrecon-onnx", "format_version": 1, "card": torch_rec.card})
    with pytest.raises(ValueError, match="another handrecon version"):
        load_onnx(with_meta(old, "old.onnx"))
    with pytest.raises(ValueError, match="unknown inference adapter 'nope'"):
        load_onnx(with_meta(metadata({**torch_rec.card, "architecture": "nope"}, True), "nope.onnx"))
    with pytest.raises(ValueError, match="not valid JSON"):
        load_onnx(with_meta("{", "broken.onnx"))
    card = torch_rec.card
    for bad, match in (({"input_size": SIZE * 2}, "graph takes"), ({"input_size": -1}, "input_size must be"),
                       ({"crop": {"rule": "box", "scale": -1}}, "crop scale"),
                       ({"normalization": {"mean": [0, 0], "std": [1, 1, 1]}}, "normalization")):
        lying = {**card, "inference": {**card["inference"], **bad}}
        with pytest.raises(ValueError, match=match):
            load_onnx(with_meta(metadata(lying, True), "lying.onnx"))
    with pytest.raises(ValueError, match="lacks the outputs"):
        load_onnx(_without_output(path, "joints", tmp_path / "short.onnx"))


def _without_output(path: Path, name: str, out: Path) -> Path:
    """A copy of the exported graph at `path` without its output `name` (as an older export)."""
    proto = onnx.load(str(path))
    proto.graph.output.remove(next(o for o in proto.graph.output if o.name == name))
    onnx.save(proto, str(out))
    return out


def test_an_export_without_the_side_reading_still_serves(models, tmp_path):
    """A graph exported before `heatmap_peak` existed loads; a side not given is then the prior's
    sign, else "right" (no reading), where the full graph reads it from the crop and its mirror."""
    torch_rec, onnx_rec, path = models
    old = load_onnx(_without_output(path, "heatmap_peak", tmp_path / "old.onnx"))
    assert not old.adapter.reads_sides and onnx_rec.adapter.reads_sides
    image, box = photo(seed=4), [(30, 20, 110, 100)]
    guessed = old.predict(image, boxes=box).hands[0]
    assert guessed.side == "right" and guessed.side_score is None  # a guess, not a reading
    assert old.predict(image, boxes=box, side_priors=[[2.0]]).hands[0].side == "left"
    np.testing.assert_allclose(old.predict(image, boxes=box, sides=["left"]).hands[0].vertices,
                               onnx_rec.predict(image, boxes=box, sides=["left"]).hands[0].vertices, atol=1e-6)
    read, want = onnx_rec.predict(image, boxes=box).hands[0], torch_rec.predict(image, boxes=box).hands[0]
    assert read.side == want.side
    assert_same_hand_mesh(read.vertices, read.cam_t, want.vertices, want.cam_t)
    assert read.heatmap_peak is not None and old.predict(image, boxes=box).hands[0].heatmap_peak is None
    # behind a detector: the detector's own scores at the threshold, as before the hand score
    hands = TwoStagePredictor(CandidateDetector(), old, score_threshold=0.5, hand_presence=True).predict(photo(seed=5)).hands
    assert [h.score for h in hands] == [0.95, 0.6]


def _decoded_rows(rec, monkeypatch) -> list[int]:
    """Spy on a staged network: the number of rows each second-stage (mesh decoder) call gets."""
    counts, second = [], rec.network.second_stage

    def spy(link):
        counts.append(len(next(iter(link.values()))))
        return second(link)

    monkeypatch.setattr(rec.network, "second_stage", spy)
    return counts


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("rotations", [(0.0,), (0.0, -45.0, 45.0)])
def test_the_mesh_decoder_runs_on_the_winning_reading_only(models, backend, rotations, monkeypatch):
    """Reading a side puts every crop and its mirror through the network; the mesh decoder (the
    second stage) then runs only on the reading that won: half the crops, with the same hands
    (sides, scores, vertices) as the whole network on every crop. A side given: one reading, all rows."""
    torch_rec, onnx_rec, _ = models
    rec = torch_rec if backend == "torch" else onnx_rec
    assert rec.network.staged
    monkeypatch.setattr(rec.adapter, "test_time_rotations", rotations)
    # closed-form root: the robust refinement of random weights' joints turns the decoder's batch-size
    # rounding (1e-7 m) into mm (test_predictor.py, test_predict_batch_matches_predict_and_names_bad_items); the network outputs match to 1e-7
    monkeypatch.setattr(rec, "refine_root", False)
    images = [photo(seed=20 + i) for i in range(3)]
    boxes = [[(30, 20, 110, 100), (5, 5, 60, 70)], [(40, 30, 120, 110)], [(10, 40, 70, 100), (60, 10, 150, 90)]]
    sides = [[None, "left"], [None], [None, None]]
    monkeypatch.setattr(rec.network, "staged", False)
    whole = rec.predict_batch(images, boxes=boxes, sides=sides)
    monkeypatch.setattr(rec.network, "staged", True)
    counts = _decoded_rows(rec, monkeypatch)
    staged = rec.predict_batch(images, boxes=boxes, sides=sides)
    assert sum(counts) == 5 * len(rotations)  # 5 hands; 9 readings went through the encoder
    assert max(counts) <= SECOND_STAGE_ROWS
    for a, b in zip(whole, staged):
        for ha, hb in zip(a.hands, b.hands):
            assert (hb.side, hb.side_score, hb.heatmap_peak) == (ha.side, ha.side_score, ha.heatmap_peak)
            np.testing.assert_allclose(hb.vertices, ha.vertices, atol=1e-6)
            np.testing.assert_allclose(hb.keypoints_2d, ha.keypoints_2d, atol=1e-4)
    counts.clear()
    rec.predict_batch(images, boxes=boxes, sides=[["right"] * len(b) for b in boxes])
    assert sum(counts) == 5 * len(rotations)


def test_an_export_without_the_stage_link_serves_in_one_piece(models, tmp_path):
    """A graph exported before the network's two stages (no ``landmark_features`` output) loads and
    runs whole, with the same hands."""
    _, onnx_rec, path = models
    old = load_onnx(_without_output(path, "landmark_features", tmp_path / "one_piece.onnx"))
    assert not old.network.staged and onnx_rec.network.staged
    image, box = photo(seed=4), [(30, 20, 110, 100)]
    a, b = old.predict(image, boxes=box).hands[0], onnx_rec.predict(image, boxes=box).hands[0]
    assert (a.side, a.side_score) == (b.side, b.side_score)
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-6)


def test_the_cut_sub_graphs_are_kept_and_a_damaged_one_is_cut_again(models, tmp_path, monkeypatch):
    """The two stages' sub-graphs are cut from a file once and kept in the cache (a later load opens
    them without onnx); a damaged kept file serves the graph whole once, then is cut again."""
    import onnx.utils

    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    _, onnx_rec, path = models
    image, box = photo(seed=4), [(30, 20, 110, 100)]
    expected = onnx_rec.predict(image, boxes=box).hands[0].vertices
    assert load_onnx(path).network.staged
    kept = sorted((tmp_path / "cache" / "subgraphs").glob("*.onnx"))
    assert len(kept) == 2

    def no_cutting(*args, **kwargs):
        raise AssertionError("cut again")

    with monkeypatch.context() as m:
        m.setattr(onnx.utils, "Extractor", no_cutting)
        again = load_onnx(path)
        assert again.network.staged
        np.testing.assert_allclose(again.predict(image, boxes=box).hands[0].vertices, expected, atol=1e-6)
        kept[1].write_bytes(b"damaged")
        whole = load_onnx(path)
        assert not whole.network.staged and not kept[1].exists()
        np.testing.assert_allclose(whole.predict(image, boxes=box).hands[0].vertices, expected, atol=1e-6)
    assert load_onnx(path).network.staged and kept[1].is_file()


def test_a_staged_load_never_opens_the_whole_graph_once_its_interface_is_kept(models, tmp_path, monkeypatch):
    """The file's interface (inputs, outputs, metadata) is read once into the cache; later loads of a
    model served in two stages open only the two sub-graphs' sessions, with the same hands; a
    damaged kept interface is read again, and a graph served whole opens its session on first use."""
    import handrecon.infer.onnx as onnx_backend

    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    _, onnx_rec, path = models
    image, box = photo(seed=4), [(30, 20, 110, 100)]
    expected = onnx_rec.predict(image, boxes=box).hands[0].vertices
    opened = []

    def counting(p, threads=None):
        opened.append(Path(p).name)
        return ort_session(p, threads)

    ort_session = onnx_backend.ort_session
    monkeypatch.setattr(onnx_backend, "ort_session", counting)
    load_onnx(path)  # first load: the whole graph's session reads the interface
    assert Path(path).name in opened
    kept = list((tmp_path / "cache" / "subgraphs").glob("*-interface.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text())["outputs"] == onnx_rec.network.output_names
    opened.clear()
    again = load_onnx(path)
    assert again.network.staged and len(opened) == 2 and Path(path).name not in opened
    np.testing.assert_allclose(again.predict(image, boxes=box).hands[0].vertices, expected, atol=1e-6)
    assert again.network.read_metadata(path)["card"] == onnx_rec.card
    for damaged in ("{damaged", '{"outputs": []}'):  # not JSON; JSON without the interface
        kept[0].write_text(damaged)
        opened.clear()
        assert load_onnx(path).network.staged and Path(path).name in opened  # read again
    assert json.loads(kept[0].read_text())["inputs"][0][0] == "image"
    one_piece = _without_output(path, "landmark_features", tmp_path / "one_piece.onnx")
    assert load_onnx(one_piece).network._session is not None  # opened to read its interface
    whole = load_onnx(one_piece)
    assert not whole.network.staged and whole.network._session is None  # interface kept: opened on first use
    np.testing.assert_allclose(whole.predict(image, boxes=box).hands[0].vertices, expected, atol=1e-6)


def test_shipped_fp16_model_onnx_matches_torch_with_root_refinement(tmp_path):
    """The shipped model (fp16 weights, read as float32) exported to ONNX gives the same hands as
    torch through the whole pipeline, robust root refinement on, on held-out synthetic hands."""
    from handrecon.data.synth import SynthEngine, preset

    torch_rec = handrecon.load("m3dhmr-openhand")
    assert torch_rec.refine_root and torch_rec.card["weights_dtype"] == "float16"
    ort_rec = handrecon.load(export_onnx("m3dhmr-openhand", tmp_path / "shipped.onnx"), threads=1)
    assert ort_rec.refine_root and ort_rec.spec == torch_rec.spec
    engine = SynthEngine(preset("crop"))
    samples = [engine.sample(i, 1000) for i in range(8)]
    args = ([s.image for s in samples], [s.K for s in samples], [[s.hands[0].box] for s in samples],
            [[s.hands[0].side] for s in samples])
    for a, b in zip(torch_rec.predict_batch(*args), ort_rec.predict_batch(*args)):
        ha, hb = a.hands[0], b.hands[0]
        np.testing.assert_allclose(hb.keypoints_2d, ha.keypoints_2d, atol=0.05)  # px
        np.testing.assert_allclose(hb.cam_t, ha.cam_t, atol=1e-3)  # m
        np.testing.assert_allclose(hb.vertices, ha.vertices, atol=1e-3)


def test_an_exported_graph_refuses_extra_inputs(models):
    """Box prompts (HandOS) are extra network inputs that an exported graph does not have: a clear error."""
    _, onnx_rec, _ = models
    with pytest.raises(ValueError, match="serve it from its checkpoint"):
        onnx_rec.network(np.zeros((1, 3, onnx_rec.spec["input_size"], onnx_rec.spec["input_size"]), np.float32),
                         prompt_boxes=np.zeros((1, 4), np.float32))


def test_auto_backend_runs_a_crop_model_from_its_cached_export(tmp_path, monkeypatch):
    """backend="auto" (reconstruct, serve): the checkpoint is exported once into the cache under its
    card's digest and served by onnxruntime, the float32 export (`int8=False`) with the torch model's
    predictions; the next load opens the kept file without exporting; a damaged file is exported
    again; without onnx, torch."""
    import handrecon.infer.load as load_module
    import handrecon.infer.torch_backend as torch_backend
    import handrecon.utils.onnx as onnx_utils

    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    ckpt = tiny_checkpoint(tmp_path / "ck", seed=3)
    torch_rec = handrecon.load(ckpt)
    auto = handrecon.load(ckpt, backend="auto", threads=1, int8=False)
    assert isinstance(auto.network, OnnxNetwork) and auto.source == str(ckpt)
    assert auto.network.staged  # the optimised cached graph splits into its two stages too
    kept = list((tmp_path / "cache" / "models").glob("*.onnx"))
    assert len(kept) == 1
    image = photo()
    a, b = torch_rec.predict(image, boxes=[(30, 20, 90, 80)]), auto.predict(image, boxes=[(30, 20, 90, 80)])
    np.testing.assert_allclose(b.hands[0].vertices, a.hands[0].vertices, atol=1e-4)
    np.testing.assert_allclose(b.hands[0].keypoints_2d, a.hands[0].keypoints_2d, atol=1e-2)

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(torch_backend, "export_onnx", no_export)
    assert isinstance(handrecon.load(ckpt, backend="auto", int8=False).network, OnnxNetwork)  # the kept export
    kept[0].write_bytes(b"damaged")
    assert not isinstance(handrecon.load(ckpt, backend="auto", int8=False).network, OnnxNetwork)  # export failed: torch
    monkeypatch.undo()
    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    assert isinstance(handrecon.load(ckpt, backend="auto", int8=False).network, OnnxNetwork)  # exported again
    monkeypatch.setattr(load_module, "onnx_export_available", lambda: False)
    assert not isinstance(handrecon.load(ckpt, backend="auto", int8=False).network, OnnxNetwork)
    assert onnx_utils.onnx_export_available()
    with pytest.raises(ValueError, match="backend must be one of"):
        handrecon.load(ckpt, backend="tensorrt")


# Runs the CLI with every import of torch refused: serving an exported model must not need torch.
WITHOUT_TORCH = """
import sys

class RefuseTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} was imported while serving an exported model")

sys.meta_path.insert(0, RefuseTorch())
from handrecon.cli import app
app()
"""


def run_without_torch(args: list[str], cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HANDRECON_CACHE": str(cache)}
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_an_exported_model_is_served_without_importing_torch(models, tmp_path, monkeypatch):
    """`reconstruct` on an .onnx file, and on a checkpoint whose export is in the cache (backend
    auto), runs with torch refused (start-up: no torch import, ~1 s instead of ~3 s) and writes what
    the torch model predicts: JSON, meshes and the overlay."""
    torch_rec, _, path = models
    image = photo(seed=6)
    Image.fromarray(image).save(tmp_path / "photo.png")
    want = torch_rec.predict(image, boxes=[(30, 20, 110, 100)], sides=["right"]).hands[0]
    done = run_without_torch(["reconstruct", str(tmp_path / "photo.png"), "--model", str(path), "--box", "30", "20",
                              "110", "100", "--side", "right", "--one-look", "--out", str(tmp_path / "out")], tmp_path / "cache")
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "photo.json", "photo_hand0.obj", "photo_hand0.ply", "photo_hand0.glb", "photo_overlay.png"}
    hand = json.loads((tmp_path / "out" / "photo.json").read_text())["hands"][0]
    np.testing.assert_allclose(hand["vertices"], want.vertices, atol=1e-4)
    np.testing.assert_allclose(hand["keypoints_2d"], want.keypoints_2d, atol=1e-2)

    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    ckpt = tiny_checkpoint(tmp_path / "ck", seed=1)
    for int8 in (False, None):  # exports into the cache: the float32 export, and the int8 one served by default
        assert isinstance(handrecon.load(ckpt, backend="auto", int8=int8).network, OnnxNetwork)
    want = torch_rec.predict(image).hands[0]
    for flags, precision in (([], "int8"), (["--float32"], "float32")):
        out = tmp_path / f"auto_{precision}"
        done = run_without_torch(["reconstruct", str(tmp_path / "photo.png"), "--model", str(ckpt), "--crop",
                                  "--formats", "", "--no-overlay", "--one-look", "--out", str(out), *flags],
                                 tmp_path / "cache")
        assert done.returncode == 0, done.stderr[-2000:]
        written = json.loads((out / "photo.json").read_text())
        assert written["model"]["precision"] == precision
        hand = written["hands"][0]
        if precision == "float32":
            assert_same_hand_mesh(hand["vertices"], hand["cam_t"], want.vertices, want.cam_t)
        else:  # the mesh about its root to int8 rounding; not its placement: this random model's heatmaps are
            # near flat, and int8 rounding moves some peaks to another cell, so the keypoints root recovery fits
            relative = np.subtract(hand["vertices"], hand["cam_t"])
            want_relative = want.vertices - want.cam_t
            np.testing.assert_allclose(relative, want_relative, atol=0.01 * np.abs(want_relative).max())


def _int8_export(models, tmp_path, calibration, name="int8.onnx"):
    torch_rec, _, _ = models
    return export_onnx(torch_rec, tmp_path / name, int8=True, calibration=calibration, calibration_source="test crops")


def test_int8_export_quantises_the_convolutions_and_keeps_the_outputs(models, tmp_path):
    """`export_onnx(int8=True)`: every convolution but the landmark heads' (kept float32,
    `int8_float_nodes`) reads int8 weights (one scale per output channel) through
    DequantizeLinear, the metadata says so, and on crops it was not calibrated on the network's
    outputs stay within a small fraction of their spread (a calibration that ignored the inputs'
    range, on blank crops, does much worse: the bound is not vacuous)."""
    from onnx import numpy_helper

    torch_rec, fp32_rec, _ = models
    path = _int8_export(models, tmp_path, [photo(seed=10 + i) for i in range(16)])
    proto = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    producer = {o: n for n in proto.graph.node for o in n.output}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    heads = [n for n in convs if n.name.startswith(("/encoder/head1/", "/encoder/head2/"))]
    assert len(heads) == 2 and len(convs) > 20
    for conv in heads:  # float32 weights, read directly
        assert conv.input[1] not in producer and inits[conv.input[1]].dtype == np.float32
    for conv in (n for n in convs if n not in heads):
        dq = producer[conv.input[1]]
        assert dq.op_type == "DequantizeLinear"
        weight, scale = inits[dq.input[0]], inits[dq.input[1]]
        assert weight.dtype == np.int8 and scale.shape == (weight.shape[0],)
    assert not any(n.op_type == "MatMul" and n.input[1] in producer and producer[n.input[1]].op_type == "DequantizeLinear"
                   for n in proto.graph.node)  # the mesh decoder stays float32
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])
    assert meta["card"] == torch_rec.card and meta["refine_root"] is True
    assert meta["quantization"]["ops"] == ["Conv"] and meta["quantization"]["calibration_images"] == 16
    assert meta["quantization"]["float32"] == [n.name for n in heads]
    int8_rec = handrecon.load(path, threads=1)
    assert int8_rec.network.staged
    x = fp32_rec.prepare([photo(seed=100 + i) for i in range(6)], [None] * 6, [None] * 6, [None] * 6).inputs
    a, b = fp32_rec.network(x), int8_rec.network(x)

    def relative_errors(b):  # max abs error / spread of the float32 outputs (measured: 0.08, 0.002, 0.002 on a Xeon with VNNI; 0.14, 0.002, 0.002 with 7-bit weights on an AVX2-only EPYC, where full-range weights saturate: 0.58)
        return np.array([np.abs(b[k] - a[k]).max() / (a[k].std() + 1e-12) for k in ("uv_px", "verts", "joints")])

    err = relative_errors(b)
    assert (err < [0.25, 0.01, 0.01]).all(), err
    blank = handrecon.load(_int8_export(models, tmp_path, [np.full((SIZE, SIZE, 3), 128, np.uint8)], "blank.onnx"))
    assert (relative_errors(blank.network(x)) > 5 * err).all()  # measured: 30x, 7x, 7x (Xeon); 19x, 8x, 8x (EPYC)
    res = int8_rec.predict(photo(seed=4), boxes=[(30, 20, 110, 100)])
    assert res.hands[0].vertices.shape == (778, 3) and np.isfinite(res.hands[0].vertices).all()


def test_int8_export_refuses_bad_calibration(models, tmp_path):
    with pytest.raises(ValueError, match="calibration inputs must be"):
        from handrecon.infer.quantize import quantize_int8

        quantize_int8(models[2], tmp_path / "x.onnx", np.zeros((0, 3, SIZE, SIZE), np.float32), "image")
    assert not (tmp_path / "x.onnx").exists()


def test_auto_backend_serves_the_int8_export_by_default(tmp_path, monkeypatch):
    """`load(..., backend="auto")` (`reconstruct`) serves the crop model's int8 export, made once
    into the cache beside the float32 one (another key), staged; it says so in its settings and
    stays near the torch model. `int8=False` (`--float32`) serves the float32 export; where the int8
    one cannot be made, the float32 one serves. Insisting on int8 (`int8=True`, `--int8`) off
    onnxruntime, or of an .onnx file, is a clear error."""
    from typer.testing import CliRunner

    import handrecon.infer.torch_backend as torch_backend
    from handrecon.cli import app

    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    ckpt = tiny_checkpoint(tmp_path / "ck", seed=5)
    torch_rec = handrecon.load(ckpt)
    plain = handrecon.load(ckpt, backend="auto", threads=1, int8=False)
    int8 = handrecon.load(ckpt, backend="auto", threads=1)
    assert plain.precision == "float32" and int8.precision == "int8" and int8.settings["precision"] == "int8"
    assert isinstance(int8.network, OnnxNetwork) and int8.network.staged
    assert len(list((tmp_path / "cache" / "models").glob("*.onnx"))) == 2
    assert handrecon.load(ckpt, backend="auto", threads=1, int8=True).precision == "int8"  # the same cached file
    assert len(list((tmp_path / "cache" / "models").glob("*.onnx"))) == 2
    assert handrecon.load(ckpt).precision == "float32"  # torch, the Python default backend: float32
    x = plain.prepare([photo(seed=30 + i) for i in range(4)], [None] * 4, [None] * 4, [None] * 4).inputs
    a, b = torch_rec.network(x), int8.network(x)
    assert 0 < np.abs(b["verts"] - a["verts"]).max() < 0.01 * a["verts"].std() + 1e-3
    Image.fromarray(photo(seed=7)).save(tmp_path / "crop.png")
    for flags, precision in (([], "int8"), (["--int8"], "int8"), (["--float32"], "float32"),
                             (["--backend", "torch"], "float32")):
        out = tmp_path / f"out{len(flags)}{precision}"
        done = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "crop.png"), "--model", str(ckpt), "--crop",
                                        "--formats", "", "--no-overlay", "--out", str(out), *flags])
        assert done.exit_code == 0, done.output
        assert json.loads((out / "crop.json").read_text())["model"]["precision"] == precision, flags
    refused = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "crop.png"), "--model", str(ckpt), "--crop",
                                       "--int8", "--backend", "torch", "--out", str(tmp_path / "no")])
    assert refused.exit_code == 2 and "onnxruntime on the CPU" in refused.output

    def float_only(model, out, int8=False, **kw):
        if int8:
            raise RuntimeError("no renderer for the calibration crops")
        return export(model, out, **kw)

    export = torch_backend.export_onnx
    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "fresh"))
    monkeypatch.setattr(torch_backend, "export_onnx", float_only)
    for ask in (None, True):
        fallback = handrecon.load(ckpt, backend="auto", int8=ask)
        assert isinstance(fallback.network, OnnxNetwork) and fallback.precision == "float32"
    with pytest.raises(ValueError, match="onnxruntime on the CPU"):
        handrecon.load(ckpt, int8=True)
    exported = export(torch_rec, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="served as it was exported"):
        handrecon.load(exported, backend="auto", int8=True)
    assert handrecon.load(exported, backend="auto").precision == "float32"  # a file serves as it was exported
