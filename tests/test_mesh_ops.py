import numpy as np
import pytest
import torch
import trimesh

from handrecon.mesh import ops, ops_torch, subdivision
from handrecon.mesh.primitives import hex_patch, open_tube


def test_normals_of_flat_patch_point_up():
    v, f = hex_patch()
    assert np.allclose(ops.face_normals(v, f), [0, 0, 1])
    assert np.allclose(ops.vertex_normals(v, f), [0, 0, 1])
    vt = torch.tensor(v, dtype=torch.float32)[None].repeat(2, 1, 1)
    assert torch.allclose(ops_torch.face_normals_torch(vt, f), torch.tensor([0.0, 0, 1]))
    assert torch.allclose(ops_torch.vertex_normals_torch(vt, f), torch.tensor([0.0, 0, 1]))


def test_vertex_normals_of_sphere_are_radial():
    m = trimesh.creation.icosphere(2)
    vn = ops.vertex_normals(m.vertices, m.faces)
    assert np.einsum("ij,ij->i", vn, m.vertices / np.linalg.norm(m.vertices, axis=1, keepdims=True)).min() > 0.99
    vt = ops_torch.vertex_normals_torch(torch.tensor(m.vertices)[None], m.faces)[0].numpy()
    assert np.allclose(vt, vn, atol=1e-6)


def test_unique_edges_and_face_adjacency_counts():
    m = trimesh.creation.icosphere(1)  # closed: E = 3F/2, every edge gives one face pair
    e = ops.unique_edges(m.faces)
    assert e.shape == (len(m.faces) * 3 // 2, 2) and np.all(e[:, 0] < e[:, 1])
    adj = ops.face_adjacency(m.faces)
    assert adj.shape == (len(e), 2)
    assert {tuple(p) for p in adj} == {tuple(sorted(p)) for p in m.face_adjacency}
    v, f = hex_patch()  # 42 edges, 12 on the boundary -> 30 interior pairs
    assert len(ops.unique_edges(f)) == 42 and len(ops.face_adjacency(f)) == 30
    shared = [set(f[i]) & set(f[j]) for i, j in ops.face_adjacency(f)]
    assert all(len(s) == 2 for s in shared)


def test_boundary_loop_of_patch_follows_face_orientation():
    v, f = hex_patch()
    (loop,) = ops.boundary_loops(f)
    assert sorted(loop) == list(range(7, 19))
    # CCW faces walk their outer boundary CCW seen from +z: positive signed area
    p = v[loop, :2]
    assert 0.5 * np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1]) > 0


def test_signed_volume_closed_and_open():
    m = trimesh.creation.icosphere(3)
    assert ops.signed_volume(m.vertices, m.faces) == pytest.approx(m.volume, rel=1e-9)
    v, f = open_tube(rings=6, sections=24, radius=0.5, length=2.0, closed_end=False)
    vol = ops.signed_volume(v, f)  # capped both ends: a 24-gon prism
    assert vol == pytest.approx(24 / 2 * 0.25 * np.sin(2 * np.pi / 24) * 2.0, rel=1e-9)
    # independent of the origin once capped
    assert ops.signed_volume(v + [3.0, -7.0, 11.0], f) == pytest.approx(vol, rel=1e-9)
    vt = torch.tensor(v + [3.0, -7.0, 11.0])[None]
    assert ops_torch.signed_volume_torch(vt, f).item() == pytest.approx(vol, rel=1e-9)


@pytest.mark.parametrize("closed_end", [True, False])
def test_orientation_test_tells_mirrored_or_flipped(closed_end):
    v, f = open_tube(closed_end=closed_end)
    v = v + [0.3, -0.1, 0.6]  # away from the origin, as a hand in camera space
    assert ops.faces_point_outward(v, f)
    assert not ops.faces_point_outward(v, f[:, ::-1])
    assert not ops.faces_point_outward(v * [-1, 1, 1], f)  # a mirrored (left) hand with right faces


def test_bad_input_errors_are_clear():
    with pytest.raises(ValueError, match="vertices must be"):
        ops.signed_volume(np.zeros((4, 2)), np.zeros((1, 3), int))
    with pytest.raises(ValueError, match="face indices"):
        ops.signed_volume(np.zeros((4, 3)), np.array([[0, 1, 9]]))


def test_loop_subdivision_matches_trimesh_and_keeps_orientation():
    """The operator reproduces trimesh's Loop subdivision (closed mesh and the open hand), rows sum
    to 1 (an affine map: colours stay colours), and the finer mesh is oriented like the coarse one."""
    from handrecon.hand.model import HandModel

    sphere = trimesh.creation.icosphere(subdivisions=1)
    hand = HandModel.openhand()
    for v, f in ((np.asarray(sphere.vertices), np.asarray(sphere.faces)),
                 (hand.v_template.numpy().astype(np.float64), hand.faces.numpy())):
        S, fine = subdivision.loop_subdivision(f, len(v))
        ours = S @ v
        ref, _ = trimesh.remesh.subdivide_loop(v, f)
        assert ours.shape == ref.shape and len(fine) == 4 * len(f)
        from scipy.spatial import cKDTree

        assert cKDTree(ref).query(ours)[0].max() < 1e-7
        np.testing.assert_allclose(np.asarray(S.sum(1)).ravel(), 1.0, atol=1e-12)
        assert ops.faces_point_outward(ours, fine) == ops.faces_point_outward(v, f)
    # the open hand keeps its wrist outline: boundary vertices move only along the boundary
    v, f = hand.v_template.numpy().astype(np.float64), hand.faces.numpy()
    S, fine = subdivision.loop_subdivision(f, len(v))
    assert len(ops.boundary_loops(fine)) == len(ops.boundary_loops(f))
    assert sum(map(len, ops.boundary_loops(fine))) == 2 * sum(map(len, ops.boundary_loops(f)))
