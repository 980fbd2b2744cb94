"""handrecon.render: exact K projection, gl and soft backends agree, depth/instance/background, selection."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import trimesh
from scipy.ndimage import binary_dilation

import handrecon.render.gl as gl_module
from handrecon.render import Lights, Mesh, gl_available, render, resolve_backend
from handrecon.render.soft import clip_near

HAS_GL = gl_available()
BACKENDS = ["soft", pytest.param("gl", marks=pytest.mark.skipif(not HAS_GL, reason="no EGL context on this machine"))]
needs_gl = pytest.mark.skipif(not HAS_GL, reason="no EGL context on this machine")

K = np.array([[310.0, 0.0, 101.3], [0.0, 290.0, 77.8], [0.0, 0.0, 1.0]])  # fx != fy, off-centre
SIZE = (160, 200)  # H != W catches transposed axes


def sphere(centre, radius=0.06, subdivisions=3, color=(0.8, 0.6, 0.5)) -> Mesh:
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh(s.vertices + np.asarray(centre), s.faces, color)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max((a | b).sum(), 1)


def unproject(uv: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Camera points (N, 3) that project with K to pixel coordinates uv (N, 2) at depths z (N,)."""
    x = (uv[:, 0] - K[0, 2]) / K[0, 0] * z
    y = (uv[:, 1] - K[1, 2]) / K[1, 1] * z
    return np.stack([x, y, z], 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_projection_is_exact(backend):
    """A pixel is covered iff its centre (c, r) lies inside the triangle projected analytically with K."""
    uv = np.array([[23.37, 18.61], [171.2, 49.93], [61.55, 141.08]])
    verts = unproject(uv, np.array([0.4, 0.9, 0.6]))  # tilted: not fronto-parallel
    out = render(Mesh(verts, [[0, 1, 2]]), K, SIZE, backend=backend)
    rows, cols = np.mgrid[: SIZE[0], : SIZE[1]]
    p = np.stack([cols, rows], -1).astype(np.float64)
    edges = []
    for i in range(3):
        a, b = uv[i], uv[(i + 1) % 3]
        e = (b[0] - a[0]) * (p[..., 1] - a[1]) - (b[1] - a[1]) * (p[..., 0] - a[0])
        edges.append(e / np.linalg.norm(b - a))  # signed distance in pixels
    edges = np.stack(edges)
    inside = (edges >= 0).all(0) | (edges <= 0).all(0)
    ambiguous = (np.abs(edges) < 1e-3).any(0)
    assert inside.sum() > 5000
    assert np.array_equal(out.mask[~ambiguous], inside[~ambiguous])


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_triangle_lands_on_its_pixel(backend):
    """A triangle of circumradius 0.45 px around a point projecting 0.1-0.2 px from pixel (68, 120) covers only that pixel."""
    uv = np.array([120.13, 67.91])
    point = unproject(uv[None], np.array([0.52]))[0]
    angles = np.deg2rad([90, 210, 330])
    corners = uv + 0.45 * np.stack([np.cos(angles), np.sin(angles)], 1)
    out = render(Mesh(unproject(corners, np.full(3, point[2])), [[0, 1, 2]]), K, SIZE, backend=backend)
    assert np.argwhere(out.mask).tolist() == [[68, 120]]
    assert out.depth[68, 120] == pytest.approx(point[2], abs=1e-6)


@needs_gl
def test_backends_agree_on_a_sphere():
    mesh = sphere([0.01, -0.005, 0.35], radius=0.07)
    lights = Lights(ambient=(0.2, 0.25, 0.3), directions=[(0.5, 0.3, 1.0), (-1, 0, 0.2)],
                    colors=[(0.8, 0.7, 0.6), (0.2, 0.3, 0.4)], specular=0.4, shininess=16)
    a = render(mesh, K, SIZE, lights=lights, backend="gl")
    b = render(mesh, K, SIZE, lights=lights, backend="soft")
    assert iou(a.mask, b.mask) >= 0.98
    both = a.mask & b.mask
    assert np.median(np.abs(a.depth[both] - b.depth[both])) < 1e-5
    assert np.abs(a.rgb[both].astype(int) - b.rgb[both]).mean() < 1.0
    assert np.median(np.abs(a.normals[both] - b.normals[both])) < 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_sphere_depth_and_shading_are_physical(backend):
    centre, r = np.array([0.0, 0.0, 0.5]), 0.08
    out = render(sphere(centre, r, subdivisions=4), K, SIZE,
                 lights=Lights(ambient=(0.1,) * 3, directions=[(0, 0, 1)], colors=[(0.9,) * 3], specular=0.0), backend=backend)
    row, col = round(K[1, 2]), round(K[0, 2])  # the principal point looks straight at the centre
    assert out.depth[row, col] == pytest.approx(centre[2] - r, abs=1e-3)
    assert out.normals[row, col] == pytest.approx([0, 0, -1], abs=0.02)
    # head-on light: brightest in the middle, darker towards the silhouette
    edge_col = col + int(0.9 * r / centre[2] * K[0, 0])
    assert out.mask[row, edge_col]
    assert int(out.rgb[row, col].sum()) > int(out.rgb[row, edge_col].sum()) + 60
    assert np.isinf(out.depth[~out.mask]).all() and (out.instance[~out.mask] == 0).all()
    assert (out.normals[~out.mask] == 0).all() and (out.rgb[~out.mask] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_nearer_mesh_wins(backend):
    far_mesh = sphere([0.03, 0.0, 0.6], 0.08, color=(0.0, 0.0, 1.0))
    near_mesh = sphere([-0.02, 0.0, 0.45], 0.05, color=(1.0, 0.0, 0.0))
    out = render([far_mesh, near_mesh], K, SIZE, backend=backend)
    near_alone = render(near_mesh, K, SIZE, backend=backend).mask
    far_alone = render(far_mesh, K, SIZE, backend=backend).mask
    assert (near_alone & far_alone).sum() > 500  # they do overlap in the image
    assert (out.instance[near_alone] == 2).all()  # the nearer mesh covers its whole silhouette
    assert np.array_equal(out.instance == 1, far_alone & ~near_alone)
    assert (out.rgb[near_alone][:, 0] > out.rgb[near_alone][:, 2]).all()


@needs_gl
def test_backends_agree_on_overlapping_meshes():
    meshes = [sphere([0.03, 0.01, 0.6], 0.08), sphere([-0.02, 0.0, 0.45], 0.05), sphere([0.0, 0.04, 0.5], 0.03)]
    a = render(meshes, K, SIZE, backend="gl")
    b = render(meshes, K, SIZE, backend="soft")
    for i in range(1, 4):
        assert iou(a.instance == i, b.instance == i) >= 0.98
    both = a.mask & b.mask
    assert np.median(np.abs(a.depth[both] - b.depth[both])) < 1e-5


@needs_gl
def test_backends_agree_when_the_near_plane_cuts_the_mesh():
    quad = Mesh(unproject(np.array([[20.0, 30.0], [180.0, 30.0], [180.0, 140.0], [20.0, 140.0]]),
                          np.array([0.02, 0.02, 0.5, 0.5])), [[0, 1, 2], [0, 2, 3]])
    kw = dict(near=0.1, far=0.4)
    a, b = render(quad, K, SIZE, backend="gl", **kw), render(quad, K, SIZE, backend="soft", **kw)
    assert 0 < a.mask.sum() < render(quad, K, SIZE, backend="gl").mask.sum()
    assert iou(a.mask, b.mask) >= 0.98
    assert a.depth[a.mask].min() >= 0.1 - 1e-4 and a.depth[a.mask].max() <= 0.4 + 1e-4
    assert b.depth[b.mask].min() >= 0.1 - 1e-4 and b.depth[b.mask].max() <= 0.4 + 1e-4


def test_clip_near_splits_triangles_on_the_plane():
    tris = np.array([[[0, 0, 1.0], [1, 0, 1.0], [0, 1, 1.0]],  # in front: kept
                     [[0, 0, 1.0], [1, 0, -1.0], [0, 1, -1.0]],  # one corner in front: 1 triangle
                     [[0, 0, -1.0], [1, 0, 1.0], [0, 1, 1.0]],  # two in front: 2 triangles
                     [[0, 0, -1.0], [1, 0, -1.0], [0, 1, -1.0]]])  # behind: dropped
    out, src = clip_near(tris, 0.5)
    assert sorted(src.tolist()) == [0, 1, 2, 2]
    assert (out[..., 2] >= 0.5 - 1e-12).all()
    assert np.isclose(out[src == 1][0, 1], [0.25, 0, 0.5]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_winding_does_not_matter(backend):
    mesh = sphere([0.0, 0.01, 0.4])
    flipped = Mesh(mesh.vertices, mesh.faces[:, ::-1], mesh.color)  # inward normals, like a mirrored hand
    a, b = render(mesh, K, SIZE, backend=backend), render(flipped, K, SIZE, backend=backend)
    assert np.array_equal(a.mask, b.mask)
    assert np.abs(a.rgb.astype(int) - b.rgb).max() <= 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_background_and_far_plane(backend):
    rng = np.random.default_rng(0)
    bg = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    mesh = sphere([0.0, 0.0, 0.4])
    plain = render(mesh, K, SIZE, backend=backend)
    out = render(mesh, K, SIZE, background=bg, backend=backend)
    assert np.array_equal(out.rgb[~out.mask], bg[~out.mask])
    assert np.array_equal(out.rgb[out.mask], plain.rgb[out.mask])
    grey = render(mesh, K, SIZE, background=(0.5, 0.5, 0.5), backend=backend)
    assert (grey.rgb[~grey.mask] == 128).all()
    assert not render(mesh, K, SIZE, far=0.3, backend=backend).mask.any()
    with pytest.raises(ValueError, match="background"):
        render(mesh, K, SIZE, background=bg[:10], backend=backend)


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="vertices"):
        Mesh(np.zeros((4, 2)), [[0, 1, 2]])
    with pytest.raises(ValueError, match="face indices"):
        Mesh(np.zeros((3, 3)), [[0, 1, 3]])
    with pytest.raises(ValueError, match="color"):
        Mesh(np.zeros((3, 3)), [[0, 1, 2]], color=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="at most"):
        Lights(directions=np.ones((5, 3)), colors=np.ones((5, 3)))
    with pytest.raises(ValueError, match="3x3"):
        render(sphere([0, 0, 0.4]), np.eye(4), SIZE, backend="soft")
    with pytest.raises(TypeError, match="Mesh"):
        render([np.zeros((3, 3))], K, SIZE, backend="soft")


def test_backend_selection(monkeypatch):
    monkeypatch.setenv("HANDRECON_RENDERER", "soft")
    assert resolve_backend() == "soft"
    monkeypatch.setenv("HANDRECON_RENDERER", "vulkan")
    with pytest.raises(ValueError, match="HANDRECON_RENDERER"):
        resolve_backend()
    if HAS_GL:
        monkeypatch.setenv("HANDRECON_RENDERER", "gl")
        assert resolve_backend() == "gl"
        monkeypatch.delenv("HANDRECON_RENDERER")
        assert resolve_backend() == "gl"


def test_forced_gl_without_egl_fails_clearly_and_auto_falls_back(monkeypatch):
    class NoEGL:
        def __init__(self):
            raise Exception("eglGetDisplay failed")

    monkeypatch.setattr(gl_module, "GLRenderer", NoEGL)
    monkeypatch.setattr(gl_module, "_LOCAL", threading.local())
    monkeypatch.setattr(gl_module, "_FAILURE", {})
    monkeypatch.setenv("HANDRECON_RENDERER", "gl")
    with pytest.raises(RuntimeError, match="HANDRECON_RENDERER=soft"):
        render(sphere([0, 0, 0.4]), K, SIZE)
    monkeypatch.setenv("HANDRECON_RENDERER", "auto")
    assert render(sphere([0, 0, 0.4]), K, SIZE).mask.any()


def _render_in_child(queue):
    queue.put(render(sphere([0.0, 0.0, 0.4]), K, SIZE, backend="gl").rgb)


@needs_gl
def test_forked_worker_gets_its_own_context():
    """Like a DataLoader worker: the parent has a live context, the forked child makes its own."""
    parent = render(sphere([0.0, 0.0, 0.4]), K, SIZE, backend="gl").rgb
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_render_in_child, args=(queue,))
    proc.start()
    child = queue.get(timeout=60)
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert np.array_equal(parent, child)


@needs_gl
def test_other_threads_get_their_own_context():
    expected = render(sphere([0.0, 0.0, 0.4]), K, SIZE, backend="gl").rgb
    result = {}
    thread = threading.Thread(target=lambda: result.update(rgb=render(sphere([0.0, 0.0, 0.4]), K, SIZE, backend="gl").rgb))
    thread.start()
    thread.join(timeout=60)
    assert np.array_equal(result["rgb"], expected)


@needs_gl
def test_a_new_thread_with_a_dead_threads_id_gets_its_own_context():
    """Thread ids are reused: a web server's worker threads come and go (handrecon serve)."""
    expected = render(sphere([0.0, 0.0, 0.4]), K, SIZE, backend="gl").rgb
    results, idents = [], []

    def work():
        idents.append(threading.get_ident())
        results.append(render(sphere([0.0, 0.0, 0.4]), K, SIZE, backend="gl").rgb)

    for _ in range(4):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join(timeout=60)
    assert len(set(idents)) < 4  # the ids were reused, as CPython does once a thread has ended
    assert len(results) == 4 and all(np.array_equal(r, expected) for r in results)


@needs_gl
def test_gl_needs_no_display():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    code = ("import numpy as np; from handrecon.render import Mesh, render; "
            "m = Mesh([[0, 0, 1], [1, 0, 1], [0, 1, 1]], [[0, 1, 2]]); "
            "print(render(m, np.diag([50., 50., 1.]), (64, 64), backend='gl').mask.sum())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 1000


@needs_gl
@pytest.mark.parametrize("side", ["right", "left"])
def test_backends_agree_on_a_posed_hand(side):
    torch = pytest.importorskip("torch")
    from handrecon.hand.model import HandModel
    from handrecon.hand.pose import sample_poses

    model = HandModel.openhand(side)
    with torch.no_grad():
        hand = model(sample_poses(model, 1, kind="mixed", seed=3, global_orient="random"))
    v = hand.vertices[0].numpy()
    shift = np.array([0.0, 0.0, 0.45]) - v.mean(0)
    mesh = Mesh(v + shift, model.faces.numpy())
    a, b = render(mesh, K, SIZE, backend="gl"), render(mesh, K, SIZE, backend="soft")
    assert a.mask.sum() > 2000
    assert iou(a.mask, b.mask) >= 0.98
    both = a.mask & b.mask
    assert np.median(np.abs(a.depth[both] - b.depth[both])) < 1e-5
    assert np.abs(a.rgb[both].astype(int) - b.rgb[both]).mean() < 1.0
    # the keypoints project inside (or within 2 px of) the rendered silhouette
    kp = hand.joints[0].numpy() + shift
    uv = np.rint((kp @ K.T)[:, :2] / kp[:, 2:]).astype(int)
    near_mask = binary_dilation(a.mask, np.ones((5, 5), bool))
    assert near_mask[uv[:, 1], uv[:, 0]].all()


def test_soft_chunking_does_not_change_the_image(monkeypatch):
    import handrecon.render.soft as soft

    meshes = [sphere([0.03, 0.01, 0.6], 0.08), sphere([-0.02, 0.0, 0.45], 0.05)]
    whole = render(meshes, K, SIZE, backend="soft")
    monkeypatch.setattr(soft, "_CHUNK", 997)
    chunked = render(meshes, K, SIZE, backend="soft")
    for name in ("rgb", "depth", "instance", "normals"):
        assert np.array_equal(getattr(whole, name), getattr(chunked, name)), name
