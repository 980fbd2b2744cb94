import numpy as np
import pytest
import trimesh

from handrecon.mesh import ccw_neighbours, spiral_indices
from handrecon.mesh.primitives import hex_patch, open_tube

OCTA_V = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])
OCTA_F = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])


def test_hex_patch_spirals_written_by_hand():
    v, f = hex_patch()
    # centre: ring 1 CCW from its lowest neighbour, then ring 2 starting next to ring 1's last vertex
    assert spiral_indices(v, f, 19)[0].tolist() == [0, 1, 2, 3, 4, 5, 6, 18, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
    # ring-1 vertex 1: CCW around it from 0, i.e. 0, 6, 18, 7, 8, 2
    assert spiral_indices(v, f, 7)[1].tolist() == [1, 0, 6, 18, 7, 8, 2]
    # boundary vertex 7: its fan 8 -> 1 -> 18, then ring 2 continues from the end of ring 1
    assert spiral_indices(v, f, 8)[7].tolist() == [7, 8, 1, 18, 9, 2, 0, 6]
    # dilation keeps every 2nd entry of the length*dilation sequence
    assert spiral_indices(v, f, 5, dilation=2)[0].tolist() == [0, 2, 4, 6, 7]


def test_octahedron_spirals_and_nearest_fill():
    s = spiral_indices(OCTA_V, OCTA_F, 6)
    assert s[4].tolist() == [4, 0, 2, 1, 3, 5]  # top: equator CCW seen from above, then the bottom
    assert s[5].tolist() == [5, 0, 3, 1, 2, 4]  # bottom: CCW seen from below
    s8 = spiral_indices(OCTA_V, OCTA_F, 8)  # all 6 vertices listed: the entries repeat cyclically
    assert s8[4].tolist() == [4, 0, 2, 1, 3, 5, 4, 0]


def test_ring_order_is_ccw_about_the_outward_normal_everywhere():
    m = trimesh.creation.icosphere(2)
    s = spiral_indices(m.vertices, m.faces, 7)
    v = m.vertices
    for k in range(1, 6):
        turn = np.cross(v[s[:, k]] - v, v[s[:, k + 1]] - v)
        assert (np.einsum("ij,ij->i", turn, v) > 0).all()  # consecutive ring-1 entries turn CCW
    # ring 2 continues next to ring 1: its first entry neighbours the last ring-1 vertex or the first
    nb = ccw_neighbours(m.faces, len(v))
    s19 = spiral_indices(v, m.faces, 19)
    ring1_len = np.array([len(nb[i]) for i in range(len(v))])
    for i in range(len(v)):
        first2 = s19[i, 1 + ring1_len[i]]
        assert first2 in nb[s19[i, 1]] and first2 not in nb[i]


def test_spirals_are_distinct_and_start_at_the_centre():
    v, f = open_tube(rings=10, sections=12)
    s = spiral_indices(v, f, 12, dilation=2)
    assert s.shape == (len(v), 12)
    assert np.array_equal(s[:, 0], np.arange(len(v)))
    assert all(len(set(row)) == 12 for row in s)


def test_nearest_vertices_fill_when_rings_run_out():
    # two separate triangles: rings of vertex 0 stop at 3 vertices, the rest are nearest by position
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 0, 0], [6, 0, 0], [5, 1, 0]])
    f = np.array([[0, 1, 2], [3, 4, 5]])
    assert spiral_indices(v, f, 5)[0].tolist() == [0, 1, 2, 3, 5]


def test_region_restricted_spirals_stay_in_region():
    v, f = open_tube(rings=12, sections=12)
    regions = (v[:, 2] > 0.5).astype(np.int8)  # two bands
    s = spiral_indices(v, f, 9, dilation=2, regions=regions)
    assert (regions[s] == regions[:, None]).all()
    full = spiral_indices(v, f, 9, dilation=2)
    deep = np.flatnonzero(v[:, 2] < 0.2)  # far from the region border: same as unrestricted
    assert np.array_equal(s[deep], full[deep])
    tiny = np.zeros(len(v), np.int8)
    tiny[:3] = 1  # a region smaller than the spiral repeats its members
    st = spiral_indices(v, f, 5, regions=tiny)
    assert set(st[0].tolist()) == {0, 1, 2} and st[0, 0] == 0


def test_bad_arguments():
    v, f = hex_patch()
    with pytest.raises(ValueError, match="regions"):
        spiral_indices(v, f, 9, regions=np.zeros(3))
    with pytest.raises(ValueError, match="length"):
        spiral_indices(v, f, 0)
