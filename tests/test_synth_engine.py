"""Synthetic engine: determinism, exact ground truth, left/right geometry, depth-buffer visibility, presets."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from handrecon.data.synth import SynthEngine, keypoint_visibility, preset
from handrecon.data.synth.scene import PlacedHand, Scene, pose_hand
from handrecon.geometry.camera import intrinsics, project
from handrecon.hand.model import HandModel


@pytest.fixture(scope="module")
def scene_engine():
    return SynthEngine(preset("scene", image_size=(96, 128), p_occluder=1.0))


@pytest.fixture(scope="module")
def crop_engine():
    return SynthEngine(preset("crop"))


def test_same_seed_and_index_same_sample(scene_engine):
    a, b, c = scene_engine.sample(5, seed=3), scene_engine.sample(5, seed=3), scene_engine.sample(6, seed=3)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.K, b.K)
    assert len(a.hands) == len(b.hands)
    for ha, hb in zip(a.hands, b.hands):
        for name in ("keypoints_2d", "keypoints_3d", "vertices", "visibility", "pose", "shape", "transl", "box"):
            assert np.array_equal(getattr(ha, name), getattr(hb, name)), name
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.image, scene_engine.sample(5, seed=4).image)


def test_ground_truth_is_exact_for_both_sides(scene_engine):
    sides = set()
    for i in range(6):
        s = scene_engine.sample(i, seed=0).validate()
        H, W = s.image.shape[:2]
        for h in s.hands:
            sides.add(h.side)
            model = HandModel.openhand(h.side)
            out = model(torch.as_tensor(h.pose)[None] - model.pose_mean, torch.as_tensor(h.shape)[None],
                        torch.as_tensor(h.transl)[None])
            np.testing.assert_allclose(out.vertices[0].numpy(), h.vertices, atol=1e-5)
            np.testing.assert_allclose(out.joints[0].numpy(), h.keypoints_3d, atol=1e-5)
            np.testing.assert_allclose(project(h.keypoints_3d.astype(np.float64), s.K.astype(np.float64)), h.keypoints_2d, atol=1e-3)
            uv = project(h.vertices.astype(np.float64), s.K.astype(np.float64))
            tight = np.r_[np.maximum(uv.min(0), -0.5), np.minimum(uv.max(0), (W - 0.5, H - 0.5))]
            np.testing.assert_allclose(h.box, tight, atol=1e-3)  # tight box of the vertices, clipped to the image
    assert sides == {"left", "right"}


def _chirality(joints: np.ndarray) -> float:
    """Sign of (index MCP - wrist) x (little MCP - wrist) . (thumb MCP - wrist): opposite for left and right."""
    w = joints[0]
    return float(np.sign(np.cross(joints[5] - w, joints[17] - w) @ (joints[2] - w)))


def test_left_hand_is_the_mirror_of_the_right():
    right, left = HandModel.openhand("right"), HandModel.openhand("left")
    rng = np.random.default_rng(0)
    pose_r, shape, v_r, j_r = pose_hand(right, "random", rng, 1.0)
    from handrecon.hand.model import mirror_axis_angle

    with torch.no_grad():
        out_l = left(mirror_axis_angle(torch.as_tensor(pose_r))[None], torch.as_tensor(shape)[None])
    np.testing.assert_allclose(out_l.vertices[0].numpy(), v_r * [-1, 1, 1], atol=1e-5)
    assert _chirality(j_r) == -_chirality(out_l.joints[0].numpy()) != 0


def _sphere_scene(engine, occluder_depth_frac: float | None):
    """A right open hand facing the camera, optionally a sphere on the ray to the index tip in front of it."""
    K = intrinsics(300.0, 300.0, 63.5, 47.5)
    model = engine.models["right"]
    pose = torch.zeros(1, model.num_joints, 3)
    pose[0, 0] = torch.tensor([np.pi / 2, 0.0, 0.0])  # palm (-y) turned to face the camera (-z)
    with torch.no_grad():
        out = model(pose)
    v, j = out.vertices[0].double().numpy(), out.joints[0].double().numpy()
    t = np.array([0.0, 0.0, 0.5]) - (v.min(0) + v.max(0)) / 2
    hand = PlacedHand("right", "open", pose[0].numpy(), np.zeros(model.num_shape, np.float32), t.astype(np.float32), v + t, j + t)
    occluders = []
    if occluder_depth_frac is not None:
        import trimesh

        tip = hand.joints[8]
        sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.025)
        centre = tip / tip[2] * tip[2] * occluder_depth_frac
        occluders.append((np.asarray(sphere.vertices) + centre, np.asarray(sphere.faces), np.full((len(sphere.vertices), 3), 0.2)))
    return Scene(K, (96, 128), [hand], occluders)


def test_visibility_with_an_occluder_in_front_of_the_index_finger(scene_engine):
    rng = np.random.default_rng(0)
    clear = _sphere_scene(scene_engine, None)
    _, depth, inst, _ = scene_engine.render_scene(clear, rng)
    vis_clear = scene_engine.annotate(clear, depth, inst)[0].visibility
    assert vis_clear.all(), "an unoccluded hand inside the image must be fully visible (own surface does not hide joints)"

    occ = _sphere_scene(scene_engine, 0.8)
    _, depth, inst, _ = scene_engine.render_scene(occ, rng)
    vis = scene_engine.annotate(occ, depth, inst)[0].visibility
    assert vis[8] == 0  # the index tip is behind the sphere
    assert vis[[0, 1, 5, 13, 17]].all()  # the wrist and far MCPs are not
    uv = project(occ.hands[0].joints, occ.K)
    under = inst[np.rint(uv[:, 1]).astype(int), np.rint(uv[:, 0]).astype(int)] == 2
    assert np.array_equal(vis == 0, under)  # hidden exactly where the occluder covers the joint


def test_keypoint_visibility_rule():
    H, W = 20, 30
    K = intrinsics(100.0, 100.0, 14.5, 9.5)
    depth = np.full((H, W), np.inf, np.float32)
    inst = np.zeros((H, W), np.int32)
    uvs = np.array([[3, 3], [10, 3], [20, 3], [25, 12], [5, 15], [40, 5]], float)  # last one outside
    kp = np.zeros((1, 21, 3))
    kp[0, :, 2] = 1.0
    kp[0, :6, :2] = (uvs - K[:2, 2]) / 100.0
    kp[0, 6:, :2] = kp[0, 4, :2]
    # 0: own hand surface 3 cm in front -> visible; 1: other instance 5 cm in front -> hidden;
    # 2: other instance 1 cm in front (within tolerance) -> visible; 3: other instance behind -> visible; 4: background
    for (u, v), (i, d) in zip(uvs[:4].astype(int), [(1, 0.97), (2, 0.95), (2, 0.99), (3, 1.2)]):
        inst[v - 2:v + 3, u - 2:u + 3] = i
        depth[v - 2:v + 3, u - 2:u + 3] = d
    vis = keypoint_visibility(kp, K, depth, inst)
    assert vis.shape == (1, 21) and vis.dtype == np.float32
    assert vis[0, :6].tolist() == [1, 0, 1, 1, 1, 0]


def test_crop_preset_centres_one_hand_like_freihand(crop_engine):
    for i in range(6):
        s = crop_engine.sample(i, seed=1)
        assert s.image.shape == (224, 224, 3)
        h = s.hands[0]
        cx, cy = (h.box[:2] + h.box[2:]) / 2
        side = max(h.box[2] - h.box[0], h.box[3] - h.box[1])
        assert abs(cx - 111.5) < 40 and abs(cy - 111.5) < 40
        assert 0.35 * 224 < side < 224
        assert 400 <= s.K[0, 0] <= 700


def test_background_folder_is_used(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((50, 80, 3), (10, 200, 30), np.uint8)).save(tmp_path / "green.png")
    engine = SynthEngine(preset("crop", image_size=(48, 48), p_image_background=1.0, p_blur=0, p_noise=0, p_jpeg=0, p_occluder=0, p_extra_hand=0,
                                p_color=0, p_motion_blur=0, p_forearm=0), backgrounds=tmp_path)
    s = engine.sample(0, seed=0)
    assert s.meta["background"] == "image:green.png"
    corner = s.image[0, 0] if s.hands[0].box[0] > 2 else s.image[-1, -1]
    assert np.abs(corner.astype(int) - (10, 200, 30)).max() <= 2
    with pytest.raises(ValueError, match="not a folder"):
        SynthEngine(preset("crop"), backgrounds=tmp_path / "missing_is_not_a_folder")
    # several folders (--backgrounds repeated): joined by os.pathsep, every image of each is drawn from
    (tmp_path / "more").mkdir()
    Image.fromarray(np.full((50, 80, 3), (200, 10, 30), np.uint8)).save(tmp_path / "more" / "red.png")
    two = SynthEngine(preset("crop", image_size=(48, 48), p_image_background=1.0), backgrounds=f"{tmp_path / 'more'}{os.pathsep}{tmp_path}")
    assert {two.sample(i, 0).meta["background"] for i in range(12)} == {"image:green.png", "image:red.png"}


def test_recolour_turns_hues_and_keeps_grey_and_texture(tmp_path):
    """`recolour` turns a photograph's hues (green grass can come out skin-like), keeps greys grey
    and the texture's layout; p_recolour of the photo backgrounds are recoloured, and p_recolour=0
    draws nothing (datasets drawn before it existed stay the same)."""
    from PIL import Image

    from handrecon.data.synth.appearance import image_background, recolour

    rng = np.random.default_rng(0)
    grey = np.tile(np.arange(0, 250, 10, dtype=np.uint8)[:, None, None], (1, 4, 3))
    assert np.array_equal(recolour(grey, rng), grey)
    green = np.zeros((8, 8, 3), np.uint8)
    green[..., 1], green[::2, ::2] = 180, (40, 120, 40)  # a texture: two greens in a pattern
    outs = [recolour(green, rng).astype(int) for _ in range(64)]
    assert sum(o[1, 1, 0] > o[1, 1, 1] > o[1, 1, 2] for o in outs) >= 4  # warm, R > G > B, as skin is
    for o in outs:  # the pattern stays: the two greens map to two colours, the same everywhere
        assert (o[::2, ::2] == o[0, 0]).all() and (o[1::2, 1::2] == o[1, 1]).all()

    Image.fromarray(np.full((50, 80, 3), (10, 200, 30), np.uint8)).save(tmp_path / "green.png")
    plain = dict(image_size=(48, 48), p_image_background=1.0, p_blur=0, p_noise=0, p_jpeg=0, p_occluder=0,
                 p_extra_hand=0, p_color=0, p_motion_blur=0, p_forearm=0)

    def corners(engine, n):
        return [engine.sample(i, seed=0).image[[0, -1], [0, -1]].astype(int) for i in range(n)]

    engine = SynthEngine(preset("crop", **plain), backgrounds=tmp_path)
    assert all(np.abs(c - (10, 200, 30)).max(1).min() <= 2 for c in corners(engine, 12))
    a, b = np.random.default_rng(3), np.random.default_rng(3)  # p_recolour=0: the random stream is untouched
    assert np.array_equal(engine.photo(a, tmp_path / "green.png", 16, 16), image_background(b, tmp_path / "green.png", 16, 16))
    assert a.random() == b.random()
    recoloured = corners(SynthEngine(preset("crop", p_recolour=0.5, **plain), backgrounds=tmp_path), 40)
    changed = sum(np.abs(c - (10, 200, 30)).max(1).min() > 20 for c in recoloured)
    assert 8 <= changed <= 32  # about half
    with pytest.raises(ValueError, match="p_recolour"):
        preset("crop", p_recolour=1.5)


def test_cutouts_in_the_background_folder_are_pasted_as_clutter(tmp_path):
    """An image with an alpha channel among the --backgrounds is a cutout: never a background,
    pasted onto backgrounds `clutter` times (by its alpha: opaque red shows, transparent shows
    nothing); clutter=(0, 0) pastes none and draws nothing from the random stream."""
    from PIL import Image

    from handrecon.data.synth.appearance import paste_cutouts

    mixed, only_green, cut_only = (tmp_path / n for n in ("mixed", "only_green", "cut_only"))
    for folder in (mixed, only_green, cut_only):
        folder.mkdir()
    for folder in (mixed, only_green):
        Image.fromarray(np.full((50, 80, 3), (10, 200, 30), np.uint8)).save(folder / "green.png")
    cut = np.zeros((40, 40, 4), np.uint8)
    cut[..., 2] = 255  # a transparent blue frame ...
    cut[10:30, 10:30] = (255, 0, 0, 255)  # ... around an opaque red square
    Image.fromarray(cut, "RGBA").save(mixed / "red_square.png")
    Image.fromarray(cut, "RGBA").save(cut_only / "c.png")
    plain = dict(image_size=(64, 64), p_image_background=1.0, p_blur=0, p_noise=0, p_jpeg=0, p_occluder=0,
                 p_extra_hand=0, p_color=0, p_motion_blur=0, p_forearm=0)
    engine = SynthEngine(preset("crop", clutter=(3, 3), **plain), backgrounds=mixed)
    assert [p.name for p in engine.backgrounds] == ["green.png"] and [p.name for p in engine.cutouts] == ["red_square.png"]
    samples = [engine.sample(i, seed=0) for i in range(6)]
    assert {s.meta["background"] for s in samples} == {"image:green.png"} and {s.meta["clutter"] for s in samples} == {3}
    pixels = np.concatenate([s.image.reshape(-1, 3) for s in samples]).astype(int)
    red = (pixels[:, 0] > 200) & (pixels[:, 1] < 60)
    assert red.mean() > 0.01  # the squares show
    assert not ((pixels[:, 2] > 200) & (pixels[:, 0] < 60) & (pixels[:, 1] < 60)).any()  # the transparent frame does not

    rng = np.random.default_rng(0)
    bg = np.full((32, 32, 3), 7, np.uint8)
    assert np.array_equal(paste_cutouts(bg, [mixed / "red_square.png"], 0, rng), bg)
    green = np.full((64, 64, 3), (10, 200, 30), np.uint8)
    for _ in range(10):  # by alpha: only green, red and their blends (R + G >= 210, B <= 30), never the frame
        out = paste_cutouts(green, [mixed / "red_square.png"], 3, rng).astype(int)
        assert (out[..., 0] + out[..., 1] >= 205).all() and (out[..., 2] <= 35).all()
        assert (out[..., 0] > 200).any()
    none = SynthEngine(preset("crop", **plain), backgrounds=mixed)  # clutter (0, 0): the stream is untouched
    alone = SynthEngine(preset("crop", **plain), backgrounds=only_green)
    for i in range(3):
        a, b = none.sample(i, seed=0), alone.sample(i, seed=0)
        assert a.meta["clutter"] == 0 and np.array_equal(a.image, b.image)
    with pytest.raises(ValueError, match="alpha channel"):
        SynthEngine(preset("crop", **plain), backgrounds=cut_only)
    with pytest.raises(ValueError, match="clutter"):
        preset("crop", clutter=(3, 1))


def test_the_box_holds_every_visible_keypoint():
    """It used to leave a visible keypoint outside (the box was the mesh's alone): sample 24 of the
    crop preset, seed 0, had its wrist 3 px outside."""
    engine = SynthEngine(preset("crop"))
    for i in (24, 0, 1, 2):
        s = engine.sample(i, 0)
        for h in s.hands:
            kp = h.keypoints_2d[h.visibility > 0]
            assert (kp >= h.box[:2] - 1e-4).all() and (kp <= h.box[2:] + 1e-4).all()


def test_orientation_setting_reaches_the_renders():
    """SynthConfig.orientation: "natural" renders hands mostly fingers-up; bad values are refused."""
    engine = SynthEngine(preset("crop", image_size=(64, 64), orientation="natural", p_extra_hand=0.0))
    up = [s.hands[0].keypoints_2d[9, 1] < s.hands[0].keypoints_2d[0, 1] for s in (engine.sample(i, 3) for i in range(16))]
    assert sum(up) >= 12  # the middle finger's base above the wrist in the image
    with pytest.raises(ValueError, match="orientation"):
        preset("crop", orientation="upside")


def test_occluders_can_be_cut_from_photographs(tmp_path):
    """With photographs given, an occluder is subdivided and coloured by a photo (projected along
    its thinnest axis) instead of one flat colour; rendering stays deterministic."""
    from PIL import Image

    from handrecon.data.synth.appearance import photo_textured, random_occluder

    photo = np.zeros((40, 40, 3), np.uint8)
    photo[:, :20] = (255, 0, 0)
    photo[:, 20:] = (0, 0, 255)
    v, f, c = random_occluder(np.random.default_rng(0), np.array([0.0, 0.0, 0.5]), 0.05)
    tv, tf, tc = photo_textured(v, f, photo)
    assert len(tf) == 16 * len(f) and tc.shape == (len(tv), 3)
    red, blue = (tc[:, 0] > 0.9).mean(), (tc[:, 2] > 0.9).mean()
    assert red > 0.25 and blue > 0.25 and red + blue > 0.99  # both halves of the photo, nothing else
    Image.fromarray(photo).save(tmp_path / "p.png")
    cfg = preset("crop", image_size=(64, 64), p_occluder=1.0, occluders=(1, 1), p_photo_occluder=1.0, p_skin_occluder=0.0)
    engine = SynthEngine(cfg, backgrounds=tmp_path)
    np.testing.assert_array_equal(engine.sample(3, 0).image, SynthEngine(cfg, backgrounds=tmp_path).sample(3, 0).image)


def test_skin_coloured_distractor_occluders(tmp_path, monkeypatch):
    """With photographs given, p_skin_occluder of the occluders take a skin tone of the palette
    (a distractor: skin that is not a hand); the shares must be probabilities."""
    from PIL import Image

    import handrecon.data.synth.engine as engine_module
    from handrecon.data.synth.appearance import SKIN_PALETTE

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "p.png")
    drawn = []
    real_mesh = engine_module.Mesh

    def spy(v, f, c=(0.7, 0.7, 0.7), normals=None):
        drawn.append(np.asarray(c))
        return real_mesh(v, f, c, normals)

    monkeypatch.setattr(engine_module, "Mesh", spy)
    cfg = preset("crop", image_size=(48, 48), p_occluder=1.0, occluders=(1, 1), p_photo_occluder=0.0,
                 p_skin_occluder=1.0, p_extra_hand=0.0)
    SynthEngine(cfg, backgrounds=tmp_path).sample(0, 0)
    occluder = drawn[-1]  # the hand first, then the occluder
    tone = occluder.mean(0)
    assert np.abs(SKIN_PALETTE - tone).max(1).min() < 0.08  # within the jitter of a palette tone
    with pytest.raises(ValueError, match="summing to at most 1"):
        preset("crop", p_photo_occluder=0.7, p_skin_occluder=0.5)


def test_forearm_grows_from_the_wrist_away_from_the_fingers():
    """The arm starts on the wrist opening, runs from the middle knuckle through the wrist, widens,
    and a sleeve's cuff is wider than the skin under it."""
    from handrecon.data.synth.appearance import forearm

    ring = np.c_[0.03 * np.cos(np.linspace(0, 2 * np.pi, 12, endpoint=False)),
                 0.02 * np.sin(np.linspace(0, 2 * np.pi, 12, endpoint=False)), np.full(12, 0.5)]
    away = np.array([0.0, 0.0, 1.0])
    skin = np.array([0.8, 0.6, 0.5])
    for seed in range(20):
        v, f, c = forearm(ring, away, skin, np.random.default_rng(seed), p_sleeve=0.5)
        np.testing.assert_allclose(v[:12], ring, atol=1e-6)  # the first ring is the wrist opening
        depth = (v - ring.mean(0)) @ away
        assert depth.min() > -1e-6 and 0.1 <= depth.max() <= 0.35 + 0.02
        assert f.min() == 0 and f.max() == len(v) - 1 and c.shape == v.shape
        rings, colours = v[:-1].reshape(-1, 12, 3), c[:-1].reshape(-1, 12, 3)  # the last vertex closes the far end
        cloth = np.abs(colours[:, 0] - skin).max(1) > 0.05
        if cloth.any():  # the sleeve is wider than the bare arm before it
            radius = np.linalg.norm((rings - rings.mean(1, keepdims=True))[..., :2], axis=2).mean(1)
            assert radius[cloth].min() > radius[~cloth].max()


def test_realistic_rendering_leaves_the_labels_on_the_model(crop_engine):
    """Subdivided render mesh, forearm, lights and camera effects change pixels only: the vertices
    and keypoints are the hand model's, and the image differs from the plain render."""
    s = crop_engine.sample(4, seed=11)
    h = s.hands[0]
    model = HandModel.openhand(h.side)
    with torch.no_grad():
        out = model(torch.as_tensor(h.pose - model.pose_mean.numpy())[None].float(),
                    torch.as_tensor(h.shape)[None].float(), torch.as_tensor(h.transl)[None].float())
    np.testing.assert_allclose(h.vertices, out.vertices[0].numpy(), atol=1e-5)
    plain = SynthEngine(preset("crop", render_subdivisions=0, p_forearm=0.0, p_color=0.0, p_motion_blur=0.0))
    assert crop_engine.subdivide[h.side].shape[0] > 3 * plain.subdivide[h.side].shape[0]
    with pytest.raises(ValueError, match="render_subdivisions"):
        preset("crop", render_subdivisions=3)


def test_ambient_occlusion_darkens_a_palm_under_curled_fingers():
    from handrecon.data.synth.appearance import occlusion
    from handrecon.hand.pose import sample_poses
    from handrecon.mesh.ops import vertex_normals

    model = HandModel.openhand()
    palm = (model.v_template.numpy() @ np.array([0.0, -1.0, 0.0]))  # the palm faces -y at rest
    palm_ids = np.argsort(palm)[-60:]
    result = {}
    for kind in ("open", "fist"):
        with torch.no_grad():
            v = model(sample_poses(model, 1, kind, seed=0)).vertices[0].double().numpy()
        result[kind] = occlusion(v, vertex_normals(v, model.faces.numpy()))
    assert result["open"].min() > 0.0 and result["open"].max() <= 1.0
    assert result["fist"].mean() < result["open"].mean() - 0.05
    assert result["fist"][palm_ids].mean() < result["open"][palm_ids].mean()


def test_ambient_occlusion_is_its_definition():
    """`occlusion` (matrix products) against its docstring's definition, point by point, on a random
    hand-sized cloud: each probe between `near` and `radius` above a vertex's tangent plane adds the
    cosine of its elevation, fading linearly with distance."""
    from handrecon.data.synth.appearance import occlusion

    rng = np.random.default_rng(3)
    v = rng.uniform(-0.03, 0.03, (40, 3)).astype(np.float32)
    n = rng.standard_normal((40, 3)).astype(np.float32)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    radius, near, stride, strength = 0.035, 0.006, 4, 0.55
    want = np.empty(40)
    for i in range(40):
        o = 0.0
        for p in v[::stride]:
            d = float(np.linalg.norm(p - v[i]))
            if near < d < radius:
                o += max(float(np.dot(p - v[i], n[i])) / d, 0.0) * (radius - d) / (radius - near)
        want[i] = 1.0 - strength * (1.0 - np.exp(-o / 3.0))
    got = occlusion(v, n, radius=radius, near=near, stride=stride, strength=strength)
    assert (want < 1.0).sum() > 10  # the cloud shades itself
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_camera_effects():
    """White balance/exposure change colour, motion blur smears along one direction only, each
    effect is recorded, and a probability of 0 leaves the image alone."""
    from handrecon.data.synth.appearance import corrupt

    img = np.full((32, 32, 3), 120, np.uint8)
    img[:, 16] = 250  # a vertical line
    same, applied = corrupt(img, np.random.default_rng(0), 0, 0, 0, 0, 0)
    assert np.array_equal(same, img) and applied == {}
    for seed in range(30):
        out, applied = corrupt(img, np.random.default_rng(seed), 0, 0, 0, p_motion_blur=1.0)
        angle = applied["motion_blur"]["angle"]
        if abs(np.cos(angle)) < 0.2:  # vertical motion, along the line's length: the line stays sharp
            assert out[:, 16].mean() > 240 and out[:, 10].mean() < 125
        if abs(np.sin(angle)) < 0.2:  # horizontal motion, across it: the line spreads
            assert out[:, 16].mean() < 230 and out[:, 15].mean() > 125
    out, applied = corrupt(img, np.random.default_rng(1), 0, 0, 0, p_color=1.0)
    assert set(applied) == {"color"} and not np.array_equal(out, img)


def test_truncated_hands_are_cut_by_the_border():
    engine = SynthEngine(preset("crop", image_size=(64, 64), p_truncated=1.0, p_extra_hand=0.0))
    cut = 0
    for i in range(8):
        h = engine.sample(i, 0).hands[0]
        uv = h.keypoints_2d
        cut += bool(((uv < -0.5) | (uv > 63.5)).any())
    assert cut >= 4


def test_hands_of_any_colour(tmp_path):
    """p_hand_colour: that share of the hands get a base colour of any hue instead of a skin tone
    (domain randomisation), keeping the shading structure; at 0 nothing is drawn from the random
    stream (datasets drawn before it existed stay the same)."""
    from handrecon.data.synth.appearance import SKIN_PALETTE, random_hand_colour

    rng = np.random.default_rng(0)
    colours = np.array([random_hand_colour(rng) for _ in range(400)])
    assert colours.min() >= 0 and colours.max() <= 0.95 + 1e-6 and colours.max(1).min() >= 0.25 - 1e-6
    dominant = np.bincount(colours.argmax(1), minlength=3) / len(colours)
    assert (dominant > 0.2).all()  # red-, green- and blue-dominated hands alike, unlike skin (always red)
    assert (np.ptp(colours, 1) < 0.05).mean() > 0.03  # and some nearly grey
    assert (SKIN_PALETTE.argmax(1) == 0).all()

    plain = dict(image_size=(48, 48), p_blur=0, p_noise=0, p_jpeg=0, p_occluder=0, p_extra_hand=0, p_color=0,
                 p_motion_blur=0, p_forearm=0)
    engine = SynthEngine(preset("crop", **plain))
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert engine.hand_colour(a) is None and a.random() == b.random()
    assert all(engine.sample(i, 0).meta["skin_tones"][0] >= 0 for i in range(4))
    assert all(SynthEngine(preset("crop", p_hand_colour=1.0, **plain)).sample(i, 0).meta["skin_tones"] == [-1]
               for i in range(4))
    half = SynthEngine(preset("crop", p_hand_colour=0.5, **plain))
    assert 6 <= sum(half.sample(i, 0).meta["skin_tones"][0] == -1 for i in range(24)) <= 18

    shader = engine.skin["right"]
    rest = shader.rest.astype(np.float64)
    normals = np.zeros_like(rest)
    normals[:, 2] = 1.0
    green, _ = shader.albedo(rest, normals, np.random.default_rng(1), base=np.array([0.2, 0.7, 0.3]))
    skin, _ = shader.albedo(rest, normals, np.random.default_rng(1))
    assert green.mean(0).argmax() == 1 and skin.mean(0).argmax() == 0
    assert np.corrcoef(green[:, 1], skin[:, 0])[0, 1] > 0.5  # the same nails, palm, cavities and mottling
    with pytest.raises(ValueError, match="p_hand_colour"):
        preset("crop", p_hand_colour=-0.1)


@pytest.mark.parametrize("field, value, message", [
    ("p_left", 1.5, "p_left is a probability"),
    ("p_forearm", -0.2, "p_forearm is a probability"),
    ("p_left", "abc", "p_left must be a number"),
    ("centred", 3, "centred must be true or false"),
    ("focal", (-5.0, 3.0), "focal must be pixels with 0 < min <= max"),
    ("focal", "abc", r"focal must be \[min, max\] or null"),
    ("fov_deg", (10.0, 200.0), "fov_deg must be 0 < min <= max < 180"),
    ("image_size", 3, r"image_size must be \[H, W\] in whole pixels"),
    ("image_size", (32, 40.5), r"image_size must be \[H, W\] in whole pixels"),
    ("num_hands", (1,), r"num_hands must be \[min, max\] of whole numbers"),
    ("pose_kinds", ("wave",), "pose_kinds must be a non-empty list of"),
    ("pose_kinds", (), "pose_kinds must be a non-empty list of"),
    ("jpeg_quality", 500, "jpeg_quality must be 1-100"),
    ("shape_scale", -1.0, "must not be negative"),
])
def test_synth_config_refuses_bad_values_up_front(field, value, message):
    """A bad --set value is named before anything renders (not a TypeError deep in the engine,
    nor a silently clamped probability)."""
    with pytest.raises(ValueError, match=message):
        preset("crop", **{field: value})


def test_synth_config_accepts_every_preset_and_yaml_values():
    """Both presets pass the checks, and values as YAML/JSON gives them (lists, ints for floats) do too."""
    preset("scene")
    cfg = preset("crop", focal=None, hand_size=[1, 2], p_left=1, pose_kinds=["fist", "mixed"], image_size=[96, 128])
    assert cfg.p_left == 1 and cfg.focal is None
