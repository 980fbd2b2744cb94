import math

import numpy as np
import pytest
import trimesh

from handrecon.mesh import build_hierarchy, decimate, ops
from handrecon.mesh.hierarchy import vertex_quadrics
from handrecon.mesh.primitives import hex_patch, open_tube


def _meshes():
    ico = trimesh.creation.icosphere(3)
    cap = trimesh.creation.capsule(0.6, 0.2, count=[16, 16])
    yield "icosphere", ico.vertices, ico.faces
    yield "capsule", cap.vertices, cap.faces
    yield "open_tube", *open_tube(rings=20, sections=16)


def _edge_face_counts(f):
    e = np.sort(ops.face_edges(f).reshape(-1, 2), axis=1)
    return np.unique(e, axis=0, return_counts=True)[1]


@pytest.mark.parametrize("name,v,f", list(_meshes()), ids=lambda x: x if isinstance(x, str) else "")
def test_levels_are_nested_manifold_meshes_of_the_requested_size(name, v, f):
    h = build_hierarchy(v, f, [2, 2, 2, 2]).validate()
    sizes = [len(v)]
    for _ in range(4):
        sizes.append(math.ceil(sizes[-1] / 2))
    assert h.sizes == sizes
    fine_loops = len(ops.boundary_loops(f))
    for k in range(1, h.num_levels):
        vk, fk = h.vertices[k], h.faces[k]
        assert np.array_equal(vk, np.asarray(v, np.float32)[h.level_subset(k)])  # survivors stay in place
        assert np.array_equal(np.unique(fk), np.arange(len(vk)))  # no orphan vertex
        assert _edge_face_counts(fk).max() <= 2  # manifold edges
        mk = trimesh.Trimesh(vk, fk, process=False)
        assert mk.is_winding_consistent
        assert mk.euler_number == trimesh.Trimesh(v, f, process=False).euler_number  # topology kept
        assert len(ops.boundary_loops(fk)) == fine_loops
        assert ops.faces_point_outward(vk, fk)


def test_other_factors():
    v, f = open_tube(rings=20, sections=16)
    h = build_hierarchy(v, f, [4, 3])
    assert h.sizes == [321, 81, 27]


def test_first_collapse_is_the_cheapest_edge_and_keeps_the_cheaper_endpoint():
    rng = np.random.default_rng(0)
    v, f = hex_patch()
    v = v + rng.normal(scale=[0.05, 0.05, 0.2], size=v.shape)
    q = vertex_quadrics(v, f)
    vh = np.concatenate([v, np.ones((len(v), 1))], 1)
    best = None
    interior = np.setdiff1d(np.arange(19), np.concatenate(ops.boundary_loops(f)))
    for a, b in ops.unique_edges(f):
        if not (a in interior or b in interior):
            continue  # edges joining two boundary vertices may pinch; rule tested below
        qs = q[a] + q[b]
        for keep, gone in ((a, b), (b, a)):
            c = vh[keep] @ qs @ vh[keep]
            if best is None or c < best[0]:
                best = (c, keep, gone)
    keep, _ = decimate(v, f, 18)
    assert best[2] not in keep and best[1] in keep


def test_quadric_of_a_vertex_vanishes_on_its_planes():
    v, f = hex_patch()
    q = vertex_quadrics(v, f)
    vh = np.concatenate([v, np.ones((19, 1))], 1)
    assert np.allclose(np.einsum("vi,vij,vj->v", vh, q, vh), 0)
    assert vh[0] @ q[0] @ vh[0] == pytest.approx(0) and (vh[0] + [0, 0, 1, 0]) @ q[0] @ (vh[0] + [0, 0, 1, 0]) == pytest.approx(6)


def _distance_to_surface(points, vertices, faces):
    """Brute-force point-to-triangle-mesh distance (independent of handrecon's closest-point code)."""
    tris = vertices[faces]
    P, F = len(points), len(faces)
    closest = trimesh.triangles.closest_point(np.repeat(tris[None], P, 0).reshape(-1, 3, 3), np.repeat(points, F, 0))
    return np.linalg.norm(closest.reshape(P, F, 3) - points[:, None], axis=-1).min(1)


def test_upsampling_rows_give_the_closest_point_on_the_coarse_surface():
    m = trimesh.creation.icosphere(3)
    h = build_hierarchy(m.vertices, m.faces, [2, 2])
    for k in range(2):
        rec = np.einsum("vj,vjk->vk", h.up_weight[k], h.vertices[k + 1][h.up_index[k]])
        dist = _distance_to_surface(h.vertices[k].astype(np.float64), h.vertices[k + 1].astype(np.float64), h.faces[k + 1])
        np.testing.assert_allclose(np.linalg.norm(rec - h.vertices[k], axis=1), dist, atol=1e-5)
        kept = h.down[k]  # a surviving vertex is copied: one coefficient 1 on itself
        assert np.array_equal(h.up_index[k][kept, 0], np.arange(len(kept)))
        assert np.allclose(h.up_weight[k][kept], [1, 0, 0])
        assert (np.count_nonzero(h.up_weight[k], axis=1) <= 3).all()


def test_upsampling_face_interior_and_edge_cases():
    from handrecon.mesh import upsampling
    cv = np.array([[0.0, 0, 1], [1, 0, 1], [0, 1, 1]])  # triangle in z = 1
    cf = np.array([[0, 1, 2]])
    fine = np.array([[0.2, 0.3, 1.1], [0.5, -0.2, 1.0], [1.5, 0.0, 1.0]])
    idx, w = upsampling(fine, cv, cf)
    # interior: barycentric coordinates of the closest point (0.2, 0.3, 1.0)
    assert list(idx[0]) == [0, 1, 2] and np.allclose(w[0], [0.5, 0.2, 0.3], atol=1e-6)
    # edge: the closest point (0.5, 0, 1) lies half-way between vertices 0 and 1
    assert set(idx[1][:2]) == {0, 1} and np.allclose(w[1], [0.5, 0.5, 0], atol=1e-6)
    assert idx[2, 0] == 1 and np.allclose(w[2], [1, 0, 0])  # vertex


def test_upsampling_coefficients_are_bounded_on_a_hand_near_the_origin():
    # OpenHand's template passes through the origin (wrist at 0): planes through the origin made
    # a linear solve for the fine position blow up (coefficients ~46); barycentrics stay in [0, 1].
    from handrecon.hand.openhand import load_openhand

    data = load_openhand()
    h = build_hierarchy(data.v_template, data.faces)
    for k, w in enumerate(h.up_weight):
        assert w.min() >= -1e-6 and w.max() <= 1 + 1e-6
        assert np.allclose(w.sum(1), 1, atol=1e-5)
        rec = np.einsum("vj,vjk->vk", w, h.vertices[k + 1][h.up_index[k]])
        dist = _distance_to_surface(h.vertices[k].astype(np.float64), h.vertices[k + 1].astype(np.float64), h.faces[k + 1])
        np.testing.assert_allclose(np.linalg.norm(rec - h.vertices[k], axis=1), dist, atol=1e-5)


def test_degenerate_faces_do_not_break_the_build():
    v, f = open_tube(rings=10, sections=12)
    f = np.concatenate([f, [[0, 0, 1]], [[5, 6, 5]]])
    v = np.concatenate([v, v[:1]])  # an unreferenced duplicate vertex
    f = np.concatenate([f, [[0, 1, len(v) - 1]]])  # a zero-area face through it
    h = build_hierarchy(v, f, [2])
    assert all(np.isfinite(w).all() for w in h.up_weight)
    assert h.sizes[1] == math.ceil(len(v) / 2)


def test_impossible_target_raises_clearly():
    tet = trimesh.creation.box()  # 8 vertices; a closed mesh cannot go below 4
    with pytest.raises(ValueError, match="no admissible edge collapse"):
        decimate(tet.vertices, tet.faces, 3)


def test_openhand_hierarchy_orientation_and_roi_spirals():
    openhand = pytest.importorskip("handrecon.hand.openhand")
    try:
        d = openhand.load_openhand()
    except FileNotFoundError:
        pytest.skip("OpenHand asset not exported yet")
    h = build_hierarchy(d.v_template, d.faces)
    n = [d.v_template.shape[0]]
    for _ in range(4):
        n.append(math.ceil(n[-1] / 2))
    assert h.sizes == n
    for vk, fk in zip(h.vertices, h.faces):
        assert len(ops.boundary_loops(fk)) == len(ops.boundary_loops(d.faces))  # the wrist stays open
        assert ops.faces_point_outward(vk, fk)
        assert not ops.faces_point_outward(vk * np.array([-1, 1, 1], np.float32), fk)  # left hand
    from handrecon.mesh import spiral_indices

    roi = spiral_indices(d.v_template, d.faces, 9, dilation=2, regions=d.regions)
    assert (d.regions[roi] == d.regions[:, None]).all()
