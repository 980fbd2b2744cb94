import numpy as np
import pytest
import torch
import trimesh

from handrecon.mesh import build_hierarchy, hierarchy_spirals
from handrecon.mesh.primitives import hex_patch
from handrecon.models.spiral import (
    DepthSeparableSpiralConv,
    MeshResample,
    SpiralConv,
    down_pool,
    spiral_gather,
    up_pool,
)


@pytest.fixture(scope="module")
def mesh():
    m = trimesh.creation.icosphere(2)
    h = build_hierarchy(m.vertices, m.faces, [2, 2])
    return h, hierarchy_spirals(h, 9, use_cache=False)


def test_spiral_gather_reads_the_spiral():
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    idx = torch.tensor([[0, 1, 2], [1, 4, 0]])
    g = spiral_gather(x, idx)
    assert g.shape == (2, 2, 3, 3)
    assert torch.equal(g[1, 1, 1], x[1, 4]) and torch.equal(g[0, 0, 2], x[0, 2])


def test_spiral_conv_matches_explicit_formula():
    v, f = hex_patch()
    from handrecon.mesh import spiral_indices
    s = spiral_indices(v, f, 7)
    conv = SpiralConv(4, 5, s)
    x = torch.randn(2, 19, 4)
    y = conv(x)
    W, b = conv.layer.weight, conv.layer.bias
    ref = torch.stack([torch.cat([x[:, j] for j in s[i]], -1) @ W.T + b for i in range(19)], 1)
    assert y.shape == (2, 19, 5) and torch.allclose(y, ref, atol=1e-5)


def test_depth_separable_matches_explicit_formula():
    v, f = hex_patch()
    from handrecon.mesh import spiral_indices
    s = spiral_indices(v, f, 7)
    conv = DepthSeparableSpiralConv(4, 6, s)
    x = torch.randn(3, 19, 4)
    dw = torch.stack([sum(x[:, s[i, l]] * conv.depthwise[l] for l in range(7)) for i in range(19)], 1)
    assert torch.allclose(conv(x), dw @ conv.pointwise.weight.T, atol=1e-5)
    assert sum(p.numel() for p in conv.parameters()) == 7 * 4 + 4 * 6


def test_pooling_matches_dense_coma_matrices(mesh):
    h, _ = mesh
    x = torch.randn(2, h.sizes[0], 8, dtype=torch.float64)
    D = np.zeros((h.sizes[1], h.sizes[0]))
    D[np.arange(h.sizes[1]), h.down[0]] = 1
    U = np.zeros((h.sizes[0], h.sizes[1]))
    np.add.at(U, (np.repeat(np.arange(h.sizes[0]), 3), h.up_index[0].reshape(-1)), h.up_weight[0].reshape(-1))
    down, up = down_pool(h, 0), up_pool(h, 0)
    xc = down(x)
    assert torch.allclose(xc, torch.as_tensor(D) @ x)
    assert torch.allclose(up(xc), torch.as_tensor(U) @ xc, atol=1e-6)
    # (what up-sampled positions reproduce is tested in test_mesh_hierarchy: the closest coarse point)


def test_gradients_flow(mesh):
    h, sp = mesh
    net = torch.nn.Sequential(up_pool(h, 1), SpiralConv(4, 8, sp[1]), torch.nn.ReLU(), up_pool(h, 0),
                              DepthSeparableSpiralConv(8, 3, sp[0]))
    x = torch.randn(2, h.sizes[2], 4, requires_grad=True)
    net(x).square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


def test_bad_indices_rejected():
    with pytest.raises(ValueError, match="spiral indices"):
        SpiralConv(3, 3, np.zeros(5, int))
    with pytest.raises(ValueError, match="weight shape"):
        MeshResample(np.zeros((4, 3), int), np.zeros((4, 2)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_matches_torch(mesh, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    h, sp = mesh
    net = torch.nn.Sequential(down_pool(h, 0), SpiralConv(3, 16, sp[1]), torch.nn.ELU(), up_pool(h, 0),
                              DepthSeparableSpiralConv(16, 3, sp[0], bias=True)).eval()
    x = torch.randn(2, h.sizes[0], 3)
    path = tmp_path / "spiral.onnx"
    # dynamo=False: the TorchScript exporter; the dynamo one needs onnxscript (not a dependency)
    torch.onnx.export(net, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17)
    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x5 = torch.randn(5, h.sizes[0], 3)
    out = sess.run(None, {"x": x5.numpy()})[0]
    with torch.no_grad():
        ref = net(x5).numpy()
    assert np.abs(out - ref).max() < 1e-5
