import functools
import pickle

import numpy as np
import pytest
import torch

from handrecon.models.backbones import BACKBONES, LANDMARK_ENCODERS, build_backbone
from handrecon.models.backbones.resnet import ResNet, read_state_dict, resnet18, resnet34
from handrecon.models.heads import (
    gaussian_heatmaps,
    local_soft_argmax_2d,
    normalized_to_pixels,
    pixels_to_normalized,
    sample_features_at,
    soft_argmax_2d,
)

# Expected torchvision layout, built here from the architecture definition (not from our code).
TV_LAYERS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


def torchvision_shapes(name: str, fc: bool) -> dict[str, tuple[int, ...]]:
    def bn(prefix, c):
        return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
                f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}

    shapes = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    cin = 64
    for i, (n, c) in enumerate(zip(TV_LAYERS[name], (64, 128, 256, 512))):
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            shapes[f"{p}.conv1.weight"] = (c, cin if j == 0 else c, 3, 3)
            shapes.update(bn(f"{p}.bn1", c))
            shapes[f"{p}.conv2.weight"] = (c, c, 3, 3)
            shapes.update(bn(f"{p}.bn2", c))
            if j == 0 and i > 0:
                shapes[f"{p}.downsample.0.weight"] = (c, cin, 1, 1)
                shapes.update(bn(f"{p}.downsample.1", c))
        cin = c
    if fc:
        shapes.update({"fc.weight": (1000, 512), "fc.bias": (1000,)})
    return shapes


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_resnet_matches_torchvision_layout(name):
    expected = torchvision_shapes(name, fc=True)
    sd = ResNet(TV_LAYERS[name], num_classes=1000).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    trainable = sum(int(np.prod(s)) for k, s in expected.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert n_params(ResNet(TV_LAYERS[name], num_classes=1000)) == trainable


def test_resnet_parameter_counts_equal_torchvision():
    assert n_params(resnet18()) == 11_176_512
    assert n_params(resnet18(num_classes=1000)) == 11_689_512
    assert n_params(resnet34()) == 21_797_672 - 513_000
    assert n_params(resnet34(num_classes=1000)) == 21_797_672


@functools.lru_cache(maxsize=None)
def eval_model(name: str) -> torch.nn.Module:
    return build_backbone(name).eval()


@pytest.mark.parametrize("size", [128, 224])
@pytest.mark.parametrize("name", list(BACKBONES))
def test_output_shapes(name, size):
    model = eval_model(name)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        if name in LANDMARK_ENCODERS:
            out = model(x)
            s4, s32 = size // 4, size // 32
            assert out["uv"].shape == (1, 21, 2)
            assert out["latent"].shape == (1, 256, s32, s32)
            assert out["heatmaps"].shape == (1, 2, 21, s4, s4)
            assert out["uv_stacks"].shape == (1, 2, 21, 2)
            assert torch.equal(out["uv"], out["uv_stacks"][:, -1])
            assert ((out["uv"] > 0) & (out["uv"] < 1)).all()
        else:
            feats = model.forward_features(x)
            assert [tuple(f.shape) for f in feats] == [
                (1, c, size // s, size // s) for c, s in zip((64, 128, 256, 512), (4, 8, 16, 32))
            ]
            assert model(x).shape == (1, 512)


def test_unknown_backbone_lists_available():
    with pytest.raises(ValueError, match="stacked_resnet18"):
        build_backbone("resnet50")


def test_load_pretrained_safetensors_and_pth_roundtrip(tmp_path):
    from safetensors.torch import save_file

    src = resnet18(num_classes=1000).eval()
    with torch.no_grad():
        src.bn1.running_mean.normal_()
        src.layer4[1].bn2.running_var.uniform_(0.5, 2.0)
    st = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(st))
    pth = tmp_path / "r18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, pth)
    x = torch.randn(2, 3, 64, 64)
    for path in (st, pth):
        full = resnet18(num_classes=1000, pretrained=path).eval()
        trunk = resnet18(pretrained=path).eval()  # fc keys dropped for the trunk
        with torch.no_grad():
            assert torch.equal(full(x), src(x))
            for a, b in zip(trunk.forward_features(x), src.forward_features(x)):
                assert torch.equal(a, b)


def test_load_pretrained_reports_mismatched_keys(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "r34.safetensors"
    save_file(resnet34(num_classes=1000).state_dict(), str(path))
    with pytest.raises(ValueError) as e:
        resnet18(pretrained=path)
    assert "unexpected in file" in str(e.value) and "layer1.2.bn1.weight" in str(e.value) and "86 more" in str(e.value)

    sd = resnet18().state_dict()
    sd["layer4.1.conv2.weights"] = sd.pop("layer4.1.conv2.weight")
    sd["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    save_file(sd, str(path))
    with pytest.raises(ValueError) as e:
        resnet18(pretrained=path)
    msg = str(e.value)
    assert "missing in file (1): layer4.1.conv2.weight" in msg
    assert "unexpected in file (1): layer4.1.conv2.weights" in msg
    assert "conv1.weight: file (64, 3, 3, 3) vs model (64, 3, 7, 7)" in msg


class Evil:
    def __reduce__(self):
        return (print, ("pickle code ran",))


def test_read_state_dict_refuses_arbitrary_pickle(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(ValueError, match="weights_only"):
        read_state_dict(path)
    assert "pickle code ran" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="unsupported weights format"):
        read_state_dict(_touch(tmp_path / "w.npz"))
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "missing.safetensors")


def _touch(path):
    path.write_bytes(b"")
    return path


def test_stacked_resnet_loads_imagenet_weights_into_both_trunks(tmp_path):
    from safetensors.torch import save_file

    src = resnet18(num_classes=1000)
    path = tmp_path / "r18.safetensors"
    save_file(src.state_dict(), str(path))
    model = build_backbone("stacked_resnet18", pretrained=path)
    for trunk in (model.trunk1, model.trunk2):
        assert torch.equal(trunk.layer3[1].conv2.weight, src.layer3[1].conv2.weight)
    assert torch.equal(model.trunk1.conv1.weight, src.conv1.weight)


# Reduced widths keep these tests fast; the layer structure is the one of the defaults.
SMALL_ENCODERS = [("stacked_resnet18", {"width": 32}), ("hourglass2", {"channels": 64})]


def test_hourglass_state_dict_roundtrip(tmp_path):
    from safetensors.torch import save_file

    src = build_backbone("hourglass2", channels=32).eval()
    path = tmp_path / "hg.safetensors"
    save_file(src.state_dict(), str(path))
    model = build_backbone("hourglass2", channels=32, pretrained=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x)["latent"], src(x)["latent"])
    with pytest.raises(ValueError, match="shape mismatch"):
        build_backbone("hourglass2", channels=64, pretrained=path)


@pytest.mark.parametrize("name,kw", SMALL_ENCODERS)
def test_gradients_reach_every_parameter(name, kw):
    model = build_backbone(name, **kw).train()
    x = torch.randn(2, 3, 128, 128, requires_grad=True)
    out = model(x)
    loss = out["uv"].sum() + out["latent"].square().mean() + out["heatmaps"].square().mean()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name,kw", SMALL_ENCODERS)
def test_eval_mode_is_deterministic_and_batch_independent(name, kw):
    torch.manual_seed(0)
    model = build_backbone(name, **kw)
    model.train()
    with torch.no_grad():  # populate non-trivial running statistics
        model(torch.randn(4, 3, 128, 128))
    model.eval()
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        a, b, single = model(x), model(x), model(x[1:])
    for k in a:
        assert torch.equal(a[k], b[k])
        torch.testing.assert_close(a[k][1:], single[k], rtol=1e-4, atol=1e-5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in stats.items())


def test_sample_features_at_uses_pixel_centre_convention():
    h, w = 4, 8
    xs = (torch.arange(w) + 0.5) / w
    ys = (torch.arange(h) + 0.5) / h
    fmap = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w)])[None]  # channel = own centre
    pts = torch.tensor([[[xs[3], ys[1]], [0.5 * (xs[2] + xs[3]), ys[2]], [1.3, -0.2], [0.5, 0.5]]])
    out = sample_features_at(fmap, pts)
    assert out.shape == (1, 4, 2)
    torch.testing.assert_close(out[0, :2], pts[0, :2])  # exact at centres, linear in between
    torch.testing.assert_close(out[0, 2], torch.tensor([xs[-1], ys[0]]))  # border clamp
    torch.testing.assert_close(out[0, 3], torch.tensor([0.5, 0.5]))
    # A 128-px crop with a stride-4 map: the centre of pixels 0..3 (u = 1.5 px) is cell 0's centre.
    uv = pixels_to_normalized(torch.tensor([[1.5, 125.5]]), 128, 128)
    torch.testing.assert_close(uv, torch.tensor([[0.5 / 32, 31.5 / 32]]))
    torch.testing.assert_close(normalized_to_pixels(uv, 128, 128), torch.tensor([[1.5, 125.5]]))
    with pytest.raises(ValueError, match="uv_norm"):
        sample_features_at(fmap, pts[0])


def test_soft_argmax_inverts_gaussian_heatmaps():
    uv = torch.tensor([[[0.31, 0.62], [0.5, 0.5], [0.77, 0.2]]])
    hm = gaussian_heatmaps(uv, 32, 32, sigma=1.5)
    assert hm.shape == (1, 3, 32, 32)
    peak = hm.flatten(2).argmax(-1)
    torch.testing.assert_close(((peak % 32).float() + 0.5) / 32, uv[..., 0], atol=1 / 64, rtol=0)
    torch.testing.assert_close(soft_argmax_2d(torch.log(hm)), uv, atol=1e-4, rtol=0)
    sharp = torch.full((1, 1, 4, 8), -1e4)
    sharp[0, 0, 2, 5] = 0.0
    torch.testing.assert_close(soft_argmax_2d(sharp), torch.tensor([[[5.5 / 8, 2.5 / 4]]]))


def test_local_soft_argmax_keeps_the_peaks_mode():
    # one Gaussian well inside the window: the same as the plain soft-argmax
    uv = torch.tensor([[[0.31, 0.62], [0.5, 0.5]]])
    one = torch.log(gaussian_heatmaps(uv, 32, 32, sigma=1.0))
    torch.testing.assert_close(local_soft_argmax_2d(one, 4), uv, atol=1e-3, rtol=0)
    # two modes: the plain soft-argmax lands between them, the windowed one on the taller mode
    a, b = torch.tensor([[[0.2, 0.3]]]), torch.tensor([[[0.8, 0.7]]])
    two = torch.log(gaussian_heatmaps(a, 32, 32) + 0.6 * gaussian_heatmaps(b, 32, 32) + 1e-6)
    plain, local = soft_argmax_2d(two), local_soft_argmax_2d(two, 3)
    assert (plain - a).norm() > 0.2
    torch.testing.assert_close(local, a, atol=1e-3, rtol=0)
    # a peak at the border: the window is clipped, not wrapped round to the far side
    edge = torch.full((1, 1, 8, 8), -1e4)
    edge[0, 0, 0, 7], edge[0, 0, 7, 0] = 0.0, -0.1
    torch.testing.assert_close(local_soft_argmax_2d(edge, 2), torch.tensor([[[7.5 / 8, 0.5 / 8]]]))


class LandmarkModel(torch.nn.Module):
    """Encoder + feature sampling at its landmarks: what the M3DHMR decoder consumes."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        out = self.encoder(x)
        return out["uv"], out["latent"], sample_features_at(out["latent"], out["uv"])


@pytest.mark.parametrize("name,kw", SMALL_ENCODERS)
def test_onnx_export_matches_torch(tmp_path, name, kw):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = LandmarkModel(build_backbone(name, **kw)).eval()
    x = torch.randn(2, 3, 128, 128)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["uv", "latent", "joint_features"],
                      dynamic_axes={"image": {0: "batch"}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x3 = torch.randn(3, 3, 128, 128)
    got = sess.run(None, {"image": x3.numpy()})
    with torch.no_grad():
        want = model(x3)
    assert got[2].shape == (3, 21, 256)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=0)
