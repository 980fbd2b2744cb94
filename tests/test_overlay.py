"""handrecon.render.overlay: skeletons, mesh overlays, side views and grids."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from handrecon.hand.keypoints import OP21_FINGER
from handrecon.render import Lights, render
from handrecon.render.common import Mesh
from handrecon.render.overlay import FINGER_COLORS, draw_skeleton, make_grid, overlay_mesh, side_view

K = np.array([[300.0, 0.0, 95.0], [0.0, 300.0, 70.0], [0.0, 0.0, 1.0]])
SIZE = (150, 190)
MATTE = Lights(specular=0.0)


def fan_keypoints(origin=(95.0, 130.0), length=25.0) -> np.ndarray:
    """A flat hand: wrist at `origin`, five straight fingers fanning upwards."""
    kp = [origin]
    for a in np.linspace(-0.9, 0.9, 5):
        kp += [(origin[0] + np.sin(a) * length * k, origin[1] - np.cos(a) * length * k) for k in range(1, 5)]
    return np.array(kp)


def grey(value=60) -> np.ndarray:
    return np.full((*SIZE, 3), value, np.uint8)


def test_skeleton_draws_bones_and_joints_in_finger_colours():
    image = grey()
    kp = fan_keypoints()
    out = draw_skeleton(image, kp)
    assert (image == 60).all()  # input untouched
    assert out.shape == image.shape and out.dtype == np.uint8
    for j in (2, 8, 12, 20):  # joint dots: their finger's colour at the centre
        c, r = np.rint(kp[j]).astype(int)
        assert np.abs(out[r, c].astype(int) - FINGER_COLORS[OP21_FINGER[j]]).max() <= 40
    mid = np.rint((kp[10] + kp[11]) / 2).astype(int)  # middle-finger bone
    assert np.abs(out[mid[1], mid[0]].astype(int) - FINGER_COLORS[3]).max() <= 60
    assert (out[:5] == 60).all() and (out[:, -5:] == 60).all()  # far from the hand: unchanged
    edge = np.abs(out.astype(int) - 60).sum(2)
    assert ((edge > 0) & (edge < np.abs(np.array(FINGER_COLORS[3]) - 60).sum())).any()  # antialiased


def test_invisible_and_missing_keypoints():
    kp = fan_keypoints()
    vis = np.ones(21, bool)
    vis[8] = False
    out = draw_skeleton(grey(), kp, vis, radius=5, thickness=1.5)
    full = draw_skeleton(grey(), kp, radius=5, thickness=1.5)
    c, r = np.rint(kp[8]).astype(int)
    # an invisible joint is a ring: off its bone, inside the ring, the image shows through
    assert (out[r, c + 2] == 60).all() and (full[r, c + 2] != 60).any()
    assert np.array_equal(out[r, c + 5], full[r, c + 5])
    kp[16] = np.nan
    out = draw_skeleton(grey(), kp)
    assert out.shape == SIZE + (3,)
    assert (draw_skeleton(grey(), np.full((21, 2), np.nan)) == 60).all()
    assert (draw_skeleton(grey(), fan_keypoints(origin=(-500, -500))) == 60).all()


def test_skeleton_single_colour_and_bad_input():
    out = draw_skeleton(grey(), fan_keypoints(), colors=(255, 0, 0))
    assert (out[..., 0] >= out[..., 1]).all()
    with pytest.raises(ValueError, match=r"\(21, 2\)"):
        draw_skeleton(grey(), np.zeros((20, 2)))
    with pytest.raises(ValueError, match="uint8"):
        draw_skeleton(np.zeros((10, 10, 3)), fan_keypoints())
    with pytest.raises(ValueError, match="colors"):
        draw_skeleton(grey(), fan_keypoints(), colors=[(1, 2, 3)] * 4)


def _sphere(centre, radius=0.05):
    s = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    return s.vertices + np.asarray(centre), s.faces


def test_overlay_mesh_blends_inside_the_silhouette_only():
    image = np.random.default_rng(0).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    v, f = _sphere([0.01, 0.0, 0.4])
    color = (0.9, 0.2, 0.1)
    drawn = render(Mesh(v, f, color), K, SIZE)
    out = overlay_mesh(image, v, f, K, alpha=0.6, color=color)
    m = drawn.mask
    assert m.sum() > 1000
    assert np.array_equal(out[~m], image[~m])
    expected = np.rint(0.4 * image[m] + 0.6 * drawn.rgb[m])
    assert np.abs(out[m].astype(int) - expected).max() <= 1
    assert np.array_equal(overlay_mesh(image, v, f, K, alpha=0.0), image)
    assert np.array_equal(overlay_mesh(image, v, f, K, alpha=1.0, color=color)[m], drawn.rgb[m])


def test_overlay_several_meshes_and_colour_errors():
    (v1, f), (v2, _) = _sphere([-0.04, 0.0, 0.5]), _sphere([0.04, 0.0, 0.5])
    out = overlay_mesh(grey(0), np.stack([v1, v2]), f, K, alpha=1.0, color=[(1, 0, 0), (0, 0, 1)], lights=MATTE)
    left, right = out[70, 40:90], out[70, 100:150]
    assert left[:, 0].max() > 100 and left[:, 2].max() == 0
    assert right[:, 2].max() > 100 and right[:, 0].max() == 0
    with pytest.raises(ValueError, match="colours"):
        overlay_mesh(grey(), [v1, v2], f, K, color=[(1, 0, 0)] * 3)


def test_side_view_shows_depth_left_to_right():
    """+90°: the camera looks from the right, so the mesh nearer the original camera appears on the left."""
    (near, f), (far, _) = _sphere([0.0, 0.0, 0.4], 0.03), _sphere([0.0, 0.0, 0.6], 0.03)
    img = side_view([near, far], f, (120, 200), color=[(1, 0, 0), (0, 0, 1)], background=(0, 0, 0), lights=MATTE)
    red = np.argwhere((img[..., 0] > 40) & (img[..., 2] == 0))
    blue = np.argwhere((img[..., 2] > 40) & (img[..., 0] == 0))
    assert len(red) > 200 and len(blue) > 200
    assert red[:, 1].max() < blue[:, 1].min()  # near on the left, far on the right, apart
    assert abs(red[:, 0].mean() - blue[:, 0].mean()) < 3  # same height
    ys, xs = np.nonzero(img.sum(2) > 0)
    assert ys.min() > 0 and xs.min() > 0 and ys.max() < 119 and xs.max() < 199  # framed, nothing cut


def test_make_grid_layout():
    a = np.full((10, 20, 3), 1, np.uint8)
    b = np.full((12, 8, 3), 2, np.uint8)
    grid = make_grid([a, b, a], ncols=2, pad=1, pad_value=9)
    assert grid.shape == (2 * 13 + 1, 2 * 21 + 1, 3)
    assert (grid[1:11, 1:21] == 1).all()
    assert (grid[1:13, 22:30] == 2).all() and (grid[1:13, 30:42] == 9).all()
    assert (grid[14:24, 1:21] == 1).all() and (grid[14:27, 22:42] == 9).all()
    assert make_grid([a], ncols=4).shape == (14, 24, 3)
    with pytest.raises(ValueError, match="at least one"):
        make_grid([], 2)


def test_result_overlay_numbers_hands_in_side_colours():
    """Several hands: each in a box of its side's colour with its number; one hand without a
    score (a crop model): no box."""
    from handrecon.infer.batch import render_overlay
    from handrecon.infer.results import HandResult, ImageResult
    from handrecon.render.overlay import SIDE_COLORS

    faces = np.array([[0, 1, 2]])
    K = np.array([[300.0, 0, 80], [0, 300, 60], [0, 0, 1]])

    def hand(side, box, score):
        kp = np.stack([np.linspace(box[0] + 5, box[2] - 5, 21), np.linspace(box[1] + 5, box[3] - 5, 21)], 1)
        v = np.array([[0.0, 0, 0.5], [0.01, 0, 0.5], [0, 0.01, 0.5]])
        return HandResult(box=np.array(box, float), side=side, keypoints_2d=kp, keypoints_3d=np.zeros((21, 3)),
                          vertices=v, cam_t=np.zeros(3), score=score)

    image = np.zeros((120, 160, 3), np.uint8)
    two = ImageResult(K=K, image_size=(120, 160), hands=[hand("left", [10, 20, 60, 90], 0.9),
                                                         hand("right", [90, 20, 150, 100], 0.8)],
                      faces_right=faces, faces_left=faces)
    out = render_overlay(two, image)[:, :160]
    for side, x in (("left", 10), ("right", 90)):
        column = out[40:80, x]
        assert (np.abs(column.astype(int) - SIDE_COLORS[side]).sum(-1) < 30).any(), side
    one = ImageResult(K=K, image_size=(120, 160), hands=[hand("left", [10, 20, 60, 90], None)],
                      faces_right=faces, faces_left=faces)
    assert not (np.abs(render_overlay(one, image)[40:80, 10].astype(int) - SIDE_COLORS["left"]).sum(-1) < 30).any()
