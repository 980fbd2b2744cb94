"""`handrecon reconstruct`, `evaluate` and `export-onnx` through typer's CliRunner with a tiny
random-weights checkpoint written by the test."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from PIL import Image
from test_loaders_freihand import write_freihand
from test_predictor import tiny_checkpoint
from typer.testing import CliRunner

from handrecon.cli import app
from handrecon.infer.load import TEST_TIME_ROTATIONS

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ck") / "ck")


def write_images(root):
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(root / "a.png")
    Image.fromarray(rng.integers(0, 256, (100, 80, 3), dtype=np.uint8)).save(root / "sub" / "b.jpg")
    return root


def test_reconstruct_writes_outputs_and_summary(tmp_path, ckpt):
    images = write_images(tmp_path / "in")
    out = tmp_path / "out"
    r = runner.invoke(app, ["reconstruct", str(images), "--out", str(out), "--model", str(ckpt),
                            "--side", "left", "--focal", "300", "--box", "10", "10", "70", "80", "--formats", "obj,glb"])
    assert r.exit_code == 0, r.output
    assert "2 image(s) reconstructed, 2 hand(s), 0 failed" in r.output
    assert {p.name for p in out.iterdir()} == {
        "a.json", "a_hand0.obj", "a_hand0.glb", "a_overlay.png", "b.json", "b_hand0.obj", "b_hand0.glb", "b_overlay.png"}
    res = json.loads((out / "a.json").read_text())
    assert res["K"][0][0] == 300.0 and res["image_size"] == [90, 120]
    hand = res["hands"][0]
    assert hand["side"] == "left" and hand["box"] == [10, 10, 70, 80] and len(hand["vertices"]) == 778


def test_reconstruct_reports_failures_with_exit_code_1(tmp_path, ckpt):
    images = write_images(tmp_path / "in")
    (images / "broken.jpg").write_bytes(b"not an image")
    r = runner.invoke(app, ["reconstruct", str(images), str(tmp_path / "missing.png"), "--out", str(tmp_path / "out"),
                            "--model", str(ckpt), "--crop", "--no-overlay", "--formats", ""])
    assert r.exit_code == 1
    assert "2 image(s) reconstructed, 2 hand(s), 2 failed" in r.output
    assert "broken.jpg: " in r.output and "cannot read image" in r.output and "no such file or folder" in r.output
    broken = next(line for line in r.output.splitlines() if "broken.jpg" in line)
    assert broken.count("broken.jpg") == 1, broken  # the path once, not once from the CLI and once from the reader
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json", "b.json"]


def test_reconstruct_missing_model_is_a_one_line_error(tmp_path):
    write_images(tmp_path / "in")
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                            "--model", str(tmp_path / "nope")])
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and r.output.startswith("error: cannot load model")
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--side", "up"])
    assert r.exit_code == 2 and "--side must be left or right" in r.output


def test_export_onnx_then_reconstruct_with_it(tmp_path, ckpt):
    onnx_path = tmp_path / "m.onnx"
    r = runner.invoke(app, ["export-onnx", "--model", str(ckpt), "--out", str(onnx_path)])
    assert r.exit_code == 0, r.output
    assert onnx_path.is_file() and "exported" in r.output
    write_images(tmp_path / "in")
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "in" / "a.png"), "--out", str(tmp_path / "out"),
                            "--model", str(onnx_path), "--crop", "--no-overlay", "--formats", "ply"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "a_hand0.ply").is_file()


def test_evaluate_command_on_freihand(tmp_path, ckpt):
    (tmp_path / "fh").mkdir()
    write_freihand(tmp_path / "fh")
    r = runner.invoke(app, ["evaluate", "--checkpoint", str(ckpt), "--dataset", "freihand", "--root", str(tmp_path / "fh"),
                            "--out", str(tmp_path / "ev"), "--batch-size", "1"])
    assert r.exit_code == 0, r.output
    assert "pa_mpjpe_mm" in r.output and "different topologies" in r.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["num_samples"] == 2
    assert (tmp_path / "ev" / "pred.json").is_file()
    r = runner.invoke(app, ["evaluate", "--checkpoint", str(ckpt), "--dataset", "freihand", "--root", str(tmp_path / "no")])
    assert r.exit_code == 2 and "error:" in r.output


def _one_line_error(r, *fragments):
    """Exit code 2, a single 'error: ...' line naming what is wrong, and no traceback."""
    assert r.exit_code == 2, r.output
    text = r.output.strip()
    assert "Traceback" not in text and text.count("\n") == 0 and text.startswith("error:"), text
    for f in fragments:
        assert f in text, (f, text)


def test_cli_error_paths_are_one_line_errors(tmp_path, ckpt):
    write_images(tmp_path / "in")
    out = tmp_path / "out"
    _one_line_error(runner.invoke(app, ["reconstruct", str(tmp_path / "in"), "--out", str(out), "--model", str(ckpt),
                                        "--formats", "obj,stl"]), "--formats", "stl", "obj, ply, glb")
    assert not out.exists()  # refused before anything ran
    for focal in ("-5", "nan", "0"):
        _one_line_error(runner.invoke(app, ["reconstruct", str(tmp_path / "in"), "--out", str(out), "--model", str(ckpt),
                                            "--crop", "--focal", focal]), "--focal must be a positive focal length")
    assert not out.exists()
    (tmp_path / "p.json").write_text("[]")
    _one_line_error(runner.invoke(app, ["evaluate-submission", "--pred", str(tmp_path / "p.json"), "--gt-dir",
                                        str(tmp_path), "--benchmark", "other"]), "unknown benchmark 'other'", "freihand")
    for size in ("12x", "axb", "1x2x3", "-5"):
        _one_line_error(runner.invoke(app, ["synth", "--num", "2", "--out", str(tmp_path / "s"), "--image-size", size]),
                        "--image-size", repr(size))
    _one_line_error(runner.invoke(app, ["export-onnx", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "m.onnx")]),
                    "cannot load model")
    blocker = tmp_path / "in" / "a.png"  # a file where a folder is needed
    _one_line_error(runner.invoke(app, ["export-onnx", "--model", str(ckpt), "--out", str(blocker / "m.onnx")]),
                    f"the output folder {blocker} is a file")  # was "cannot write ...: File exists"
    _one_line_error(runner.invoke(app, ["export-onnx", "--model", str(ckpt), "--out", str(tmp_path / "m.txt")]),
                    "ending in .onnx", str(tmp_path / "m.onnx"))  # was written, then handrecon.load refused it
    assert not (tmp_path / "m.txt").exists()
    _one_line_error(runner.invoke(app, ["export-onnx", "--model", str(ckpt), "--out", str(tmp_path / "in")]),
                    "is a folder")
    _one_line_error(runner.invoke(app, ["export-onnx", "--model", f"handrecon-hand-detector+{ckpt}", "--out",
                                        str(tmp_path / "m.onnx")]), "two networks", "export the crop model alone")
    assert not (tmp_path / "m.onnx").exists()  # was a TypeError traceback from deep inside
    _one_line_error(runner.invoke(app, ["reconstruct", str(tmp_path / "in"), "--out", str(blocker / "o"), "--model",
                                        str(ckpt)]), "cannot create the output folder", str(blocker / "o"))
    _one_line_error(runner.invoke(app, ["reconstruct", str(tmp_path / "in"), "--out", str(blocker), "--crop",
                                        "--model", str(ckpt)]), f"the output folder {blocker} is a file")  # --out: a file
    _one_line_error(runner.invoke(app, ["detect", str(tmp_path / "in"), "--out", str(blocker)]),
                    f"the output folder {blocker} is a file")
    _one_line_error(runner.invoke(app, ["synth", "--num", "2", "--out", str(blocker / "s")]), "cannot write to")
    _one_line_error(runner.invoke(app, ["synth", "--num", "2", "--workers", "-1", "--out", str(tmp_path / "s")]),
                    "--workers must be 0 or more")
    (tmp_path / "deep.json").write_text("[" * 200000 + "]" * 200000)  # used to be a RecursionError traceback
    (tmp_path / "fh").mkdir()
    write_freihand(tmp_path / "fh")
    _one_line_error(runner.invoke(app, ["evaluate-submission", "--pred", str(tmp_path / "deep.json"), "--gt-dir",
                                        str(tmp_path / "fh")]), "nested too deeply")
    for threads in ("0", "-3"):  # used to be a RuntimeError traceback from torch.set_num_threads
        for args in (["reconstruct", str(tmp_path / "in"), "--out", str(out), "--model", str(ckpt)],
                     ["evaluate", "--checkpoint", str(ckpt), "--dataset", "synthetic", "--root", str(tmp_path / "in")],
                     ["detect", str(tmp_path / "in"), "--out", str(out)]):  # said "cannot load model" or failed late
            _one_line_error(runner.invoke(app, [*args, "--threads", threads]),
                            "error: --threads: threads must be a positive", threads)
    _one_line_error(runner.invoke(app, ["demo", "--model", "nope", "--out", str(tmp_path / "d")]),
                    "cannot load model 'nope'")
    _one_line_error(runner.invoke(app, ["demo", "--model", str(ckpt), "--out", str(blocker / "d")]),
                    "--out: cannot create the output folder", str(blocker / "d"))


def test_absurd_box_and_focal_fail_the_item_with_the_reason(tmp_path, ckpt):
    """--box -1e9 -1e9 1e9 1e9 used to place a hand kilometres away with exit 0; --focal 1e308
    wrote a JSON full of NaN. Each is now a failed item with the reason, and nothing is written."""
    write_images(tmp_path / "in")
    for args, reason in ((["--box", "-1e9", "-1e9", "1e9", "1e9"], "over 3 x the image"),
                         (["--box", "10", "10", "10.001", "10.001"], "at least 4 px"),
                         (["--focal", "1e308"], "focal length"), (["--focal", "1e-9"], "focal length")):
        out = tmp_path / f"out{len(reason)}"
        r = runner.invoke(app, ["reconstruct", str(tmp_path / "in"), "--out", str(out), "--model", str(ckpt), *args])
        assert r.exit_code == 1 and "0 image(s) reconstructed" in r.output and reason in r.output, r.output
        assert not out.exists() or not any(out.iterdir())


def test_evaluate_limit(tmp_path, ckpt):
    (tmp_path / "fh").mkdir()
    write_freihand(tmp_path / "fh")
    base = ["evaluate", "--checkpoint", str(ckpt), "--dataset", "freihand", "--root", str(tmp_path / "fh")]
    r = runner.invoke(app, base + ["--out", str(tmp_path / "ev"), "--limit", "1"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["num_samples"] == 1
    for bad in ("0", "-3"):
        _one_line_error(runner.invoke(app, base + ["--out", str(tmp_path / "ev2"), "--limit", bad]), "limit", bad)
    assert not (tmp_path / "ev2").exists()


def test_evaluate_by_prints_a_table_per_group(tmp_path, ckpt):
    """`evaluate --by pose_kind`: a second table, one row per group with its hand count, and the
    groups in metrics.json; a key the set does not carry is a one-line error naming the keys it has.
    `--bootstrap N`: an interval column beside the metrics it covers, as saved; N < 100 a one-line error;
    `compare-evals` of two such folders a table (a model against itself: no clear difference)."""
    from test_eval_runner import write_synthetic

    write_synthetic(tmp_path / "syn")
    base = ["evaluate", "--checkpoint", str(ckpt), "--dataset", "synthetic", "--root", str(tmp_path / "syn"),
            "--split", "all", "--threads", "1"]
    r = runner.invoke(app, base + ["--out", str(tmp_path / "ev"), "--by", "pose_kind"])
    assert r.exit_code == 0, r.output
    table = r.output[r.output.index("by pose_kind"):]
    rows = {line.split()[1]: line.split()[3] for line in table.splitlines() if line.startswith("│")}
    assert rows == {"fist": "4", "open": "2"}, table  # write_synthetic: 4 right hands, 2 left ones
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())["breakdown"]
    assert saved["by"] == "pose_kind" and {k: g["num_hands"] for k, g in saved["groups"].items()} == {"fist": 4, "open": 2}
    _one_line_error(runner.invoke(app, base + ["--out", str(tmp_path / "ev2"), "--by", "skin"]),
                    "do not carry the meta key 'skin'", "pose_kind")
    assert not (tmp_path / "ev2").exists()
    r = runner.invoke(app, base + ["--out", str(tmp_path / "ev3"), "--bootstrap", "200"])
    assert r.exit_code == 0, r.output
    saved = json.loads((tmp_path / "ev3" / "metrics.json").read_text())["intervals"]["metrics"]["pa_mpjpe_mm"]
    row = next(line for line in r.output.splitlines() if line.startswith("│ pa_mpjpe_mm"))
    assert f"[{saved['low']:.2f}, {saved['high']:.2f}]" in row, r.output
    assert "95 % interval" in r.output and "200 resamples of the images" in r.output
    _one_line_error(runner.invoke(app, base + ["--out", str(tmp_path / "ev4"), "--bootstrap", "10"]), ">= 100", "10")
    assert not (tmp_path / "ev4").exists()
    r = runner.invoke(app, ["compare-evals", str(tmp_path / "ev3"), str(tmp_path / "ev3"), "--resamples", "200"])
    assert r.exit_code == 0, r.output
    verdicts = {line.split()[1]: line.split()[-2] for line in r.output.splitlines() if line.startswith("│")}
    assert verdicts == dict.fromkeys(("pa_mpjpe_mm", "pa_mpvpe_mm", "mpjpe_mm", "pck2d@0.1"), "unclear"), r.output
    _one_line_error(runner.invoke(app, ["compare-evals", str(tmp_path / "ev3"), str(tmp_path / "ev")]),
                    "per_hand.npz: not found", "--bootstrap")


@pytest.mark.parametrize("flag, note", [("--int8", "int8 export"), ("--bf16", "bf16 autocast")])
def test_evaluate_in_another_precision_measures_what_reconstruct_serves(tmp_path, ckpt, monkeypatch, flag, note):
    """`evaluate --int8` / `--bf16` score what `reconstruct` serves with the flag (the int8 export;
    the checkpoint under bf16 autocast, here as on a CPU with native bf16), said in the notes; its
    numbers differ from the float32 checkpoint's, slightly."""
    import handrecon.infer.torch_backend as torch_backend

    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch_backend, "cpu_bf16_is_emulated", lambda: False)
    (tmp_path / "fh").mkdir()
    write_freihand(tmp_path / "fh")
    base = ["evaluate", "--checkpoint", str(ckpt), "--dataset", "freihand", "--root", str(tmp_path / "fh"), "--threads", "1"]
    metrics = {}
    for flags in ([], [flag]):
        out = tmp_path / f"ev{len(flags)}"
        r = runner.invoke(app, base + ["--out", str(out), *flags])
        assert r.exit_code == 0, r.output
        metrics[len(flags)] = json.loads((out / "metrics.json").read_text())
    assert any(note in n for n in metrics[1]["notes"]) and not any(flag[2:] in n for n in metrics[0]["notes"])
    a, b = metrics[0]["metrics"]["pa_mpjpe_mm"], metrics[1]["metrics"]["pa_mpjpe_mm"]
    assert a != b and abs(a - b) < 0.05 * a


def test_reconstruct_fit_adds_pose_parameters(tmp_path):
    """--fit: every hand gets the hand model's pose, shape and translation, which reproduce its
    mesh through the model (shipped model on the bundled sample, a left hand)."""
    import torch

    from handrecon.demo import load_sample
    from handrecon.hand.model import HandModel

    image, meta = load_sample()
    Image.fromarray(image).save(tmp_path / "hand.png")
    out = tmp_path / "out"
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "hand.png"), "--out", str(out), "--formats", "glb",
                            "--no-overlay", "--side", "left", "--box", *map(str, meta["hands"][0]["box"]), "--fit"])
    assert r.exit_code == 0, r.output
    hand = json.loads((out / "hand.json").read_text())["hands"][0]
    fit = hand["fit"]
    assert np.shape(fit["pose"]) == (20, 3) and len(fit["joint_names"]) == 20 and fit["error_mm"] < 10.0  # a predicted mesh is no exact LBS mesh
    model = HandModel.openhand("left")
    with torch.no_grad():
        verts = model(torch.tensor([fit["pose"]]), torch.tensor([fit["shape"]]), torch.tensor([fit["transl"]])).vertices[0]
    err = np.linalg.norm(verts.numpy() - np.array(hand["vertices"]), axis=-1).mean() * 1000
    assert err == pytest.approx(fit["error_mm"], abs=0.05)
    import pygltflib  # the GLB is the rigged hand, posed by the fit

    doc = pygltflib.GLTF2().load(str(out / "hand_hand0.glb"))
    assert len(doc.skins[0].joints) == 20 and doc.nodes[doc.skins[0].joints[0]].name == "wrist"


def test_reconstruct_with_a_boxes_file(tmp_path, ckpt):
    """--boxes: each listed image gets its hands (boxes and sides) from the file — a box without a
    side gets the shipped detector's side head reading — an empty list gives no hand, an unlisted
    image keeps the default; a malformed file is a one-line error."""
    images = write_images(tmp_path / "in")
    spec = {"a.png": [[10, 10, 60, 70], {"box": [50, 20, 110, 85], "side": "left"}], "b.jpg": []}
    (tmp_path / "boxes.json").write_text(json.dumps(spec))
    out = tmp_path / "out"
    r = runner.invoke(app, ["reconstruct", str(images), "--out", str(out), "--model", str(ckpt), "--formats", "",
                            "--no-overlay", "--boxes", str(tmp_path / "boxes.json")])
    assert r.exit_code == 0, r.output
    a = json.loads((out / "a.json").read_text())["hands"]
    assert [h["box"] for h in a] == [[10, 10, 60, 70], [50, 20, 110, 85]] and a[1]["side"] == "left"
    assert a[0]["side"] in ("left", "right") and 0.5 <= a[0]["side_score"] <= 1  # read by the detector's side head
    assert a[1]["side_score"] is None  # given, not read
    assert json.loads((out / "b.json").read_text())["hands"] == []
    (tmp_path / "bad.json").write_text(json.dumps({"a.png": [[1, 2, 3]]}))
    r = runner.invoke(app, ["reconstruct", str(images), "--out", str(out), "--model", str(ckpt),
                            "--boxes", str(tmp_path / "bad.json")])
    assert r.exit_code == 2 and "'a.png' hand 0" in r.output and "Traceback" not in r.output


def test_boxes_keys_match_the_end_of_a_path():
    """A --boxes key is a file name or the end of a path; the longest key wins; a name two folders
    share, given once, is an error that says how to key it; keys naming no image are reported."""
    from pathlib import Path

    from handrecon.infer.batch import match_box_prompts

    a, b, c = Path("/d/in/a/x.png"), Path("/d/in/b/x.png"), Path("/d/in/y.png")
    hands = {"a/x.png": [1], "x.png": [2], "in\\y.png": [3], "q.png": [4]}
    matched, unmatched = match_box_prompts(hands, [a, b, c])
    assert matched == {a: [1], b: [2], c: [3]} and unmatched == ["q.png"]
    with pytest.raises(ValueError, match=r"'x.png' matches 2 images .* e.g. 'a/x.png'"):
        match_box_prompts({"x.png": [2]}, [a, b])
    with pytest.raises(ValueError, match="name the same file"):
        match_box_prompts({"a/x.png": [1], "./a/x.png": [2]}, [a])


def test_reconstruct_boxes_for_two_images_of_one_name(tmp_path, ckpt):
    """Two folders each holding a.png: keyed by folder, each gets its own boxes; an entry that names
    no input image is a warning, not silence."""
    images = write_images(tmp_path / "in")
    (images / "sub" / "a.png").write_bytes((images / "a.png").read_bytes())
    spec = {"in/a.png": [[10, 10, 60, 70]], "sub/a.png": [[20, 20, 50, 60], [5, 5, 40, 40]], "typo.png": []}
    (tmp_path / "boxes.json").write_text(json.dumps(spec))
    out = tmp_path / "out"
    r = runner.invoke(app, ["reconstruct", str(images), "--out", str(out), "--model", str(ckpt), "--formats", "",
                            "--no-overlay", "--boxes", str(tmp_path / "boxes.json")])
    assert r.exit_code == 0, r.output
    assert "1 entry names no input image: typo.png" in r.output
    boxes = {p.name: [h["box"] for h in json.loads(p.read_text())["hands"]] for p in out.glob("*a_png.json")}
    assert sorted(boxes.values()) == [[[10, 10, 60, 70]], [[20, 20, 50, 60], [5, 5, 40, 40]]]
    (tmp_path / "one.json").write_text(json.dumps({"a.png": []}))
    r = runner.invoke(app, ["reconstruct", str(images), "--out", str(tmp_path / "out2"), "--model", str(ckpt),
                            "--boxes", str(tmp_path / "one.json")])
    assert r.exit_code == 2 and "'a.png' matches 2 images" in r.output and "Traceback" not in r.output


def test_reconstruct_backends_agree_and_a_bad_one_is_an_error(tmp_path, ckpt, monkeypatch):
    """--backend auto (the default: onnxruntime from the export cache) and --backend torch give the
    same hands; an unknown backend is a one-line error."""
    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    images = write_images(tmp_path / "in")
    common = ["--model", str(ckpt), "--crop", "--no-overlay", "--formats", ""]
    for backend in ("auto", "torch"):
        r = runner.invoke(app, ["reconstruct", str(images), "--out", str(tmp_path / backend), "--backend", backend, *common])
        assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "cache" / "models").glob("*.onnx"))) == 1
    a, b = (json.loads((tmp_path / k / "a.json").read_text())["hands"][0] for k in ("auto", "torch"))
    # the mesh about its root; not the placement: this random model's heatmaps are near flat, and the int8
    # export served by auto moves some peaks to another cell, so the keypoints root recovery fits
    np.testing.assert_allclose(np.subtract(a["vertices"], a["cam_t"]), np.subtract(b["vertices"], b["cam_t"]), atol=1e-3)
    r = runner.invoke(app, ["reconstruct", str(images), "--out", str(tmp_path / "x"), "--backend", "tpu", *common])
    assert r.exit_code == 2 and r.output.startswith("error: cannot load model") and "backend must be one of" in r.output


def test_export_onnx_int8_from_a_calibration_folder(tmp_path, ckpt):
    """`export-onnx --int8 --calibration DIR`: an unreadable file is reported and skipped, the rest
    calibrate; --calibration without --int8, or a folder without an image, is a one-line error;
    the default (no --calibration) renders its crops; the int8 file serves `reconstruct`."""
    write_images(tmp_path / "calib")
    (tmp_path / "calib" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "m8.onnx"
    r = runner.invoke(app, ["export-onnx", "--model", str(ckpt), "--out", str(out), "--int8",
                            "--calibration", str(tmp_path / "calib")])
    assert r.exit_code == 0, r.output
    assert "skipped" in r.output and "broken.png" in r.output and "convolutions int8" in r.output
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "calib"), "--out", str(tmp_path / "out"),
                            "--model", str(out), "--crop", "--no-overlay", "--formats", ""])
    assert (tmp_path / "out" / "a.json").is_file()
    _one_line_error(runner.invoke(app, ["export-onnx", "--model", str(ckpt), "--out", str(out),
                                        "--calibration", str(tmp_path / "calib")]))
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["export-onnx", "--model", str(ckpt), "--out", str(tmp_path / "e.onnx"), "--int8",
                            "--calibration", str(tmp_path / "empty")])
    _one_line_error(r)
    assert "no readable image" in r.output and not (tmp_path / "e.onnx").exists()
    r = runner.invoke(app, ["export-onnx", "--model", str(ckpt), "--out", str(tmp_path / "d.onnx"), "--int8"])
    assert r.exit_code == 0, r.output
    meta = json.loads({p.key: p.value for p in onnx.load(str(tmp_path / "d.onnx")).metadata_props}["handrecon"])
    assert meta["quantization"]["calibration_images"] == 64 and "synth" in meta["quantization"]["calibration"]


def test_reconstruct_and_evaluate_take_tta(tmp_path, ckpt):
    """--tta: eight rotated views per hand, averaged; the JSON changes, the hand count does not."""
    images = write_images(tmp_path / "in")
    hands = {}
    for flag in ([], ["--tta"]):
        out = tmp_path / f"out{len(flag)}"
        r = runner.invoke(app, ["reconstruct", str(images / "a.png"), "--out", str(out), "--model", str(ckpt),
                                "--box", "10", "10", "70", "80", "--formats", "", "--no-overlay", *flag])
        assert r.exit_code == 0, r.output
        written = json.loads((out / "a.json").read_text())
        hands[len(flag)] = written["hands"]
        assert written["model"] == {"model": str(ckpt), "test_time_rotations": list(TEST_TIME_ROTATIONS) if flag else [0.0],
                                    "second_look": not flag, "precision": "int8"}  # a second look and the int8 export by default; --tta sees every hand so
    assert len(hands[0]) == len(hands[1]) == 1
    assert not np.allclose(hands[0][0]["keypoints_2d"], hands[1][0]["keypoints_2d"])
    (tmp_path / "fh").mkdir()
    write_freihand(tmp_path / "fh")
    r = runner.invoke(app, ["evaluate", "--checkpoint", str(ckpt), "--dataset", "freihand", "--root", str(tmp_path / "fh"),
                            "--out", str(tmp_path / "ev"), "--tta"])
    assert r.exit_code == 0 and "pa_mpjpe_mm" in r.output, r.output
    notes = json.loads((tmp_path / "ev" / "metrics.json").read_text())["notes"]
    assert any("test-time rotations: each hand seen at 0, -45, 45, -90, 90, -135, 135, 180 degrees" in n for n in notes), notes
