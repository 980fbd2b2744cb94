"""tools/package_model.py: a checkpoint packaged as a shipped model loads through handrecon.load."""

from __future__ import annotations

import json

import numpy as np
from helpers import load_script


def _tool():
    return load_script("tools/package_model.py")


def test_packaged_checkpoint_loads_with_its_inference_settings(tmp_path):
    from helpers import random_checkpoint

    import handrecon

    # width 16: 9.8 MB in float32, 4.9 MB in float16, so a 6 MB limit takes the float16 path
    ckpt = random_checkpoint(tmp_path / "ckpt", {"backbone_kwargs": {"width": 16}}, input_size=64)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"pa_mpjpe_mm": 12.5}))
    assert _tool().main([str(ckpt), "--name", "tiny", "--out-root", str(tmp_path / "assets"),
                         "--metrics", f"pipeline={metrics}", "--max-mb", "6"]) == 0
    card = json.loads((tmp_path / "assets" / "tiny" / "card.json").read_text())
    source = json.loads((ckpt / "card.json").read_text())
    assert card["inference"] == source["inference"]  # copied from the trainer's card, never patched
    assert card["inference"]["input_size"] == 64 and card["inference"]["crop"]["scale"] == 1.325
    assert card["weights_dtype"] == "float16" and card["heldout_metrics"] == {"pipeline": {"pa_mpjpe_mm": 12.5}}
    rec = handrecon.load(tmp_path / "assets" / "tiny")
    result = rec.predict(np.zeros((64, 64, 3), np.uint8))
    assert rec.spec["input_size"] == 64 and result.hands[0].vertices.shape == (778, 3)


def test_the_wheel_carries_every_shipped_file(tmp_path):
    """A wheel built from the source tree holds every file of the shipped models and the hand model,
    the heads in a detector's subfolders included (pyproject's package-data once stopped one level
    short of them: an installed, non-editable handrecon had no side head)."""
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shutil.copytree(root / "src" / "handrecon", tmp_path / "src" / "handrecon",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, tmp_path / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(tmp_path / "dist"), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    package = root / "src" / "handrecon"
    shipped = [p for folder in (package / "assets", package / "hand" / "assets") for p in folder.rglob("*")
               if p.is_file() and p.suffix in (".json", ".safetensors", ".npz", ".txt", ".png", ".jpg")]
    assert any(p.parent.name == "box_verifier" for p in shipped) and any(p.parent.name == "side_head" for p in shipped)
    missing = [str(p.relative_to(package.parent)) for p in shipped if str(p.relative_to(package.parent)) not in packed]
    assert not missing, f"not in the wheel: {missing}"


def test_int8_weights_take_a_quarter_of_the_size_and_load_as_float32_close_to_the_original(tmp_path):
    """--int8 stores convolution and linear weights in int8 with a scale per output channel: the
    file is about a quarter of float32's, it loads (checkpoint.load_tensors) as float32 within
    half a quantisation step of every weight, and the model's output barely moves."""
    import torch
    from helpers import random_checkpoint

    from handrecon.checkpoint import INT8_SCALE, load_model, load_tensors

    ckpt = random_checkpoint(tmp_path / "ckpt", {"backbone_kwargs": {"width": 16}}, input_size=64)
    assert _tool().main([str(ckpt), "--name", "q", "--out-root", str(tmp_path / "assets"), "--int8"]) == 0
    out = tmp_path / "assets" / "q"
    card = json.loads((out / "card.json").read_text())
    full, stored = (ckpt / "model.safetensors").stat().st_size, (out / "model.safetensors").stat().st_size
    assert card["weights_dtype"] == "int8-per-channel" and 0.24 < stored / full < 0.32
    original, restored = load_tensors(ckpt / "model.safetensors"), load_tensors(out / "model.safetensors")
    assert restored.keys() == original.keys() and not any(k.endswith(INT8_SCALE) for k in restored)
    quantised = [k for k, w in original.items() if w.is_floating_point() and w.dim() >= 2 and w.numel() >= 4096]
    assert len(quantised) > 10
    for name, w in original.items():
        if name in quantised:
            step = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True) / 127
            assert restored[name].dtype == torch.float32 and bool(((restored[name] - w).abs() <= step / 2 + 1e-6).all())
        elif w.is_floating_point():  # biases, norms, small tensors: float16
            assert restored[name].dtype == torch.float16 and torch.allclose(restored[name].float(), w, rtol=1e-3, atol=1e-4)
    (a, _), (b, _) = load_model(ckpt), load_model(out)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        va, vb = a.forward_crops(x)["verts"], b.forward_crops(x)["verts"]
    assert float((va - vb).abs().max()) < 0.02 * float(va.abs().max())


def test_int8_weights_with_a_damaged_scale_are_refused(tmp_path):
    import pytest
    import torch
    from safetensors.torch import save_file

    from handrecon.checkpoint import INT8_FORMAT, INT8_SCALE, CheckpointError, load_tensors

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(4, 8, dtype=torch.int8), "w" + INT8_SCALE: torch.ones(3)}, str(path),
              metadata={"weights": INT8_FORMAT})
    with pytest.raises(CheckpointError, match="one scale per output channel"):
        load_tensors(path)


def test_average_packages_the_mean_weights_as_one_model(tmp_path):
    from helpers import random_checkpoint
    from safetensors.torch import load_file

    import handrecon

    kwargs = {"backbone_kwargs": {"width": 8}}
    a = random_checkpoint(tmp_path / "a", kwargs, input_size=64, seed=0)
    b = random_checkpoint(tmp_path / "b", kwargs, input_size=64, seed=1)
    assert _tool().main([str(a), str(b), "--average", "--name", "soup", "--out-root", str(tmp_path / "assets")]) == 0
    out = tmp_path / "assets" / "soup"
    wa, wb, soup = (load_file(p / "model.safetensors") for p in (a, b, out))
    floats = [k for k, v in wa.items() if v.is_floating_point() and not bool((v == wb[k]).all())]
    assert floats, "the two random checkpoints should differ"
    for k, v in soup.items():
        expected = (wa[k].double() + wb[k].double()) / 2 if v.is_floating_point() else wa[k]
        np.testing.assert_allclose(v.double().numpy(), expected.numpy(), rtol=1e-6, atol=1e-7)
    card = json.loads((out / "card.json").read_text())
    assert card["architecture"] == json.loads((a / "card.json").read_text())["architecture"]
    assert [m["source_checkpoint"] for m in card["averaged_from"]] == [str(a), str(b)] and card["metrics"] == {}
    assert handrecon.load(out).predict(np.zeros((64, 64, 3), np.uint8)).hands[0].vertices.shape == (778, 3)


def test_average_refuses_checkpoints_of_different_models(tmp_path, capsys):
    """Checkpoints of another width are another model; other loss weights (a run trained with its 2D terms
    weighted up) are the same model, averaged, the card the first's."""
    from helpers import random_checkpoint

    a = random_checkpoint(tmp_path / "a", {"backbone_kwargs": {"width": 8}}, input_size=64)
    b = random_checkpoint(tmp_path / "b", {"backbone_kwargs": {"width": 16}}, input_size=64)
    assert _tool().main([str(a), str(b), "--average", "--name", "soup", "--out-root", str(tmp_path / "assets")]) == 1
    assert "same kwargs" in capsys.readouterr().err and not (tmp_path / "assets" / "soup").exists()
    c = random_checkpoint(tmp_path / "c", {"backbone_kwargs": {"width": 8}, "loss_weights": {"pose2d": 3.0}},
                          input_size=64, seed=2)
    assert _tool().main([str(a), str(c), "--average", "--name", "mix", "--out-root", str(tmp_path / "assets")]) == 0
    card = json.loads((tmp_path / "assets" / "mix" / "card.json").read_text())
    assert card["kwargs"] == json.loads((a / "card.json").read_text())["kwargs"]


def test_live_weights_of_a_weight_averaged_run(tmp_path, capsys):
    """--live-weights packages a train.ema_decay run's live weights (its state's) instead of the average its
    checkpoints hold, and says so in the card; a run without an average is refused with the reason."""
    import torch
    from test_train_engine import make_cfg

    from handrecon.checkpoint import load_state, load_tensors
    from handrecon.train import config_from_dict, train

    over = {"train.max_steps": 6, "train.epochs": None}
    averaged = train(config_from_dict(make_cfg(tmp_path / "avg", **over, **{"train.ema_decay": 0.9}))).last_checkpoint
    tool = _tool()
    for flag, name in (([], "mean"), (["--live-weights"], "live")):
        assert tool.main([str(averaged), "--name", name, "--out-root", str(tmp_path / "assets"), *flag]) == 0
    live = load_state(averaged)["ema"]["live_weights"]
    mean = load_tensors(averaged / "model.safetensors")
    for name, expected in (("mean", mean), ("live", live)):
        got = load_tensors(tmp_path / "assets" / name / "model.safetensors")
        assert got.keys() == expected.keys()
        for k in got:
            torch.testing.assert_close(got[k], expected[k], rtol=0, atol=0)
    assert not torch.equal(live["net.0.weight"], mean["net.0.weight"])
    cards = {n: json.loads((tmp_path / "assets" / n / "card.json").read_text()) for n in ("mean", "live")}
    assert cards["mean"]["ema"]["decay"] == 0.9 and "weights" not in cards["mean"]
    assert "ema" not in cards["live"] and cards["live"]["weights"].startswith("live")
    plain = train(config_from_dict(make_cfg(tmp_path / "plain", **over))).last_checkpoint
    capsys.readouterr()
    assert tool.main([str(plain), "--name", "x", "--out-root", str(tmp_path / "assets"), "--live-weights"]) == 1
    assert "needs a checkpoint of a run with a weight average" in capsys.readouterr().err
