"""`reconstruct --bf16` / `load(..., bf16=True)`: a crop model served on torch under bf16 autocast,
channels-last — outputs float32 and near the float32 network's, the precision written beside every
result, and refused (a clear one-line error) where it cannot run as asked."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_predictor import photo, tiny_checkpoint
from typer.testing import CliRunner

import handrecon
import handrecon.infer.torch_backend as torch_backend
from handrecon.cli import app
from handrecon.infer.torch_backend import TorchNetwork, export_onnx

runner = CliRunner()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ck") / "ck", seed=3)


@pytest.fixture
def native_bf16(monkeypatch):
    """As on a CPU with AVX512-BF16 or AMX (elsewhere the same arithmetic runs emulated: slower, the
    same numbers)."""
    monkeypatch.setattr(torch_backend, "cpu_bf16_is_emulated", lambda: False)


def test_bf16_network_runs_both_stages_in_bf16_channels_last_and_returns_float32_near_float32(ckpt, native_bf16):
    plain, bf16 = handrecon.load(ckpt), handrecon.load(ckpt, bf16=True)
    assert plain.precision == "float32" and bf16.precision == "bfloat16" and bf16.settings["precision"] == "bfloat16"
    assert isinstance(bf16.network, TorchNetwork) and bf16.network.staged
    convs = [m for m in bf16.network.module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs if m.weight.ndim == 4
                         and min(m.weight.shape[2:]) > 1)
    seen: dict[str, set] = {"first": set(), "second": set()}
    stage = {"now": "first"}
    hooks = [m.register_forward_hook(lambda mod, args, out: seen[stage["now"]].add(out.dtype))
             for m in bf16.network.module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    x = plain.prepare([photo(seed=40 + i) for i in range(3)], [None] * 3, [None] * 3, [None] * 3).inputs
    first = bf16.network.first_stage(x)
    stage["now"] = "second"
    second = bf16.network.second_stage({name: first[name] for name in bf16.adapter.stage_link})
    for h in hooks:
        h.remove()
    assert torch.bfloat16 in seen["first"] and torch.bfloat16 in seen["second"], seen
    a, b = plain.network(x), bf16.network(x)
    for name, tolerance in (("verts", 0.05 * a["verts"].std()), ("uv_px", 0.5), ("heatmap_peak", 0.05 * a["heatmap_peak"].max())):
        assert b[name].dtype == np.float32
        err = np.abs(b[name] - a[name]).max()
        assert 0 < err < tolerance, (name, err, tolerance)  # bf16 rounding: changed, not broken
    np.testing.assert_allclose(second["verts"], b["verts"], rtol=0, atol=1e-3)  # staged = whole, to bf16 rounding
    res, ref = bf16.predict(photo(seed=9)), plain.predict(photo(seed=9))
    # px, on a 160 px photo; the median, since a keypoint is decoded near its heatmap's peak and this
    # random model's maps are near flat (peak 0.006): bf16 rounding may move a peak to another cell
    assert np.median(np.abs(res.hands[0].keypoints_2d - ref.hands[0].keypoints_2d)) < 2.0


def test_bf16_is_refused_where_it_cannot_serve_as_asked(ckpt, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="choose one"):
        handrecon.load(ckpt, backend="auto", int8=True, bf16=True)
    exported = export_onnx(handrecon.load(ckpt), tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="bf16 serves a checkpoint on torch"):
        handrecon.load(exported, bf16=True)
    with pytest.raises(ValueError, match="a torch network runs in float32 or bfloat16"):
        TorchNetwork(torch.nn.Identity(), ["x"], precision="int8")
    monkeypatch.setattr(torch_backend, "cpu_bf16_is_emulated", lambda: True)
    with pytest.raises(ValueError, match="AVX512-BF16 or AMX"):
        handrecon.load(ckpt, bf16=True)
    Image.fromarray(photo(seed=7)).save(tmp_path / "crop.png")
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "crop.png"), "--model", str(ckpt), "--crop", "--bf16",
                            "--formats", "", "--no-overlay", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "native bf16" in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_reconstruct_bf16_serves_and_says_so(ckpt, tmp_path, monkeypatch, native_bf16):
    """`reconstruct --bf16` writes its precision beside every result (`evaluate --bf16`:
    test_cli_reconstruct.py)."""
    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path / "cache"))
    Image.fromarray(photo(seed=7)).save(tmp_path / "crop.png")
    r = runner.invoke(app, ["reconstruct", str(tmp_path / "crop.png"), "--model", str(ckpt), "--crop", "--bf16",
                            "--formats", "", "--no-overlay", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "out" / "crop.json").read_text())["model"]["precision"] == "bfloat16"
