"""The foreign test set: hand crops rendered by a renderer that shares nothing with training's.

    pip install -e ".[foreign]"          # pyrender + scikit-image: benchmark-only extras
    .venv/bin/python benchmarks/foreign_testset.py --out .cache/foreign --num 300
    handrecon evaluate --checkpoint m3dhmr-openhand --dataset synthetic --root .cache/foreign \
        --split all --whole-image

A model trained on handrecon's own renders can learn the renderer instead of hands; this set is
the check. What it shares with training is only the hand model's mesh and the pose sampler:

- renderer: pyrender (OpenGL, physically based metallic-roughness shading with smooth normals)
  instead of handrecon's moderngl/numpy rasterizer; the OpenHand mesh is Loop-subdivided once for
  rendering (778 -> 3074 vertices, labels stay on the 778-vertex learning topology);
- material and light: a skin base colour from its own palette, roughness 0.35-0.8, one to three
  directional and point lights of varied colour and strength;
- backgrounds: crops of real photographs that training never uses — the CC0 / public-domain
  photos bundled with scikit-image (astronaut, chelsea, coffee, rocket, brick, grass, gravel,
  hubble deep field, motorcycle; licences in `skimage/data/_fetchers.py`), randomly cropped,
  scaled and flipped;
- framing: 224 x 224 crops, the hand filling about 2/3 of the crop, every global orientation
  (uniform over rotations), both sides, focal length 1.2-3 x the crop side.

`--scenes` writes full 384 x 512 images instead, 0-4 hands each (1 in 5 without a hand) anywhere in
the image at 12-45 % of its height, for detectors (`handrecon evaluate-detector`). `--scenes --wide`
frames a group photo: 768 x 1024 images with 0-8 hands at 5-15 % of the height (38-115 px), the
small hands a detector reading the whole image at its input size barely sees (`detect --tiles`).

Written in handrecon's synthetic dataset format (`docs/data_format.md`) with exact ground truth
(2D/3D keypoints, vertices, K, side, box, visibility by depth test), so `handrecon evaluate
--dataset synthetic --split all` reads it; `--whole-image` gives each crop whole to the model as
FreiHAND does. `--baseline` also prints the rest-hand baseline (a constant flat hand) on it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from handrecon.data.schema import HandAnnotation
from handrecon.data.synthetic_format import ShardWriter, init_output, make_meta
from handrecon.hand.load import topology_sha256
from handrecon.hand.model import HandModel
from handrecon.hand.openhand import load_openhand
from handrecon.hand.pose import sample_poses, sample_shapes

SIZE = 224
# what `--ablate` can take away (a diagnostic of the renderer gap; the set itself never ablates):
ABLATIONS = {
    "photo": "a uniform grey background instead of the photographs",
    "photo-grey": "the photographs in grey levels (their texture without colour)",
    "photo-blur": "the photographs blurred (Gaussian, sigma 4 px at 224 px: their colours without fine texture)",
    "smooth": "the 778-vertex hand, flat-shaded (as training's plain engine draws it) instead of subdivided and smooth",
    "colour": "one skin colour and roughness for every hand instead of the palette",
    "light": "one white light from the camera instead of 1-3 coloured lights and a coloured ambient",
    "antialiasing": "hard silhouettes (the 4x multisampled alpha thresholded at 1/2), as training's renderer draws them",
}
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "brick.png", "grass.png", "gravel.png",
          "hubble_deep_field.jpg", "motorcycle_left.png")
SKIN = np.array([[0.93, 0.76, 0.64], [0.85, 0.64, 0.50], [0.74, 0.53, 0.40], [0.55, 0.38, 0.27],
                 [0.40, 0.27, 0.19], [0.96, 0.82, 0.72]])


def photo_pool() -> list[np.ndarray]:
    """The scikit-image photos (RGB uint8), never used for training."""
    from PIL import Image
    from skimage import data as skdata

    root = Path(skdata.__file__).parent
    return [np.asarray(Image.open(root / name).convert("RGB")) for name in PHOTOS]


def background(photos: list[np.ndarray], rng: np.random.Generator, ablate: frozenset = frozenset()) -> np.ndarray:
    from PIL import Image, ImageFilter

    if "photo" in ablate:
        return np.full((SIZE, SIZE, 3), 128, np.uint8)
    photo = photos[rng.integers(len(photos))]
    H, W = photo.shape[:2]
    side = int(rng.uniform(0.25, 1.0) * min(H, W))
    y, x = rng.integers(0, H - side + 1), rng.integers(0, W - side + 1)
    crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((SIZE, SIZE), Image.BILINEAR)
    if "photo-grey" in ablate:
        crop = crop.convert("L").convert("RGB")
    if "photo-blur" in ablate:
        crop = crop.filter(ImageFilter.GaussianBlur(4))
    out = np.asarray(crop)
    return out[:, ::-1] if rng.random() < 0.5 else out


def frame(verts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(translation t (3,), K (3, 3)) so the hand's projection fills ~2/3 of the crop, near its centre."""
    f = SIZE * rng.uniform(1.2, 3.0)
    target = SIZE * rng.uniform(0.55, 0.78)
    t = np.array([0.0, 0.0, 0.6])
    for _ in range(3):  # perspective: refine depth and centre a few times
        p = verts + t
        uv = p[:, :2] / p[:, 2:] * f
        extent = (uv.max(0) - uv.min(0)).max()
        t[2] *= extent / target
        p = verts + t
        uv = p[:, :2] / p[:, 2:] * f
        centre = (uv.max(0) + uv.min(0)) / 2 - rng.uniform(-0.06, 0.06, 2) * SIZE
        t[:2] -= centre / f * t[2]
    K = np.array([[f, 0, (SIZE - 1) / 2], [0, f, (SIZE - 1) / 2], [0, 0, 1.0]])
    return t, K


def render(meshes: list[tuple[np.ndarray, np.ndarray]], K: np.ndarray, rng: np.random.Generator, renderer,
           ablate: frozenset = frozenset()):
    """RGBA uint8 and depth (metres, 0 where empty) of the subdivided, smooth-shaded hands
    (vertices, faces) in the OpenCV camera frame, each with its own skin material. `ablate`
    (diagnostics, see ABLATIONS) takes one of the set's differences from training away."""
    import pyrender
    import trimesh

    pending = []
    for verts, faces in meshes:
        v, f = (verts, faces) if "smooth" in ablate else trimesh.remesh.subdivide_loop(verts, faces, iterations=1)
        mesh = trimesh.Trimesh(v * [1, -1, -1], f, process=False)  # OpenCV -> OpenGL camera frame
        skin = SKIN[rng.integers(len(SKIN))] * rng.uniform(0.85, 1.1, 3)
        roughness = float(rng.uniform(0.35, 0.8))
        if "colour" in ablate:
            skin, roughness = SKIN[1], 0.6
        material = pyrender.MetallicRoughnessMaterial(baseColorFactor=[*np.clip(skin, 0, 1), 1.0], metallicFactor=0.0,
                                                      roughnessFactor=roughness, doubleSided=True)
        pending.append(pyrender.Mesh.from_trimesh(mesh, material=material, smooth="smooth" not in ablate))
    ambient = rng.uniform(0.05, 0.25, 3)
    scene = pyrender.Scene(bg_color=[0, 0, 0, 0], ambient_light=np.full(3, 0.15) if "light" in ablate else ambient)
    for mesh in pending:
        scene.add(mesh)
    scene.add(pyrender.IntrinsicsCamera(K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5, znear=0.01, zfar=20))
    n_lights = rng.integers(1, 4)
    if "light" in ablate:  # one white light from the camera (the random lights below are drawn, not added)
        scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=2.0), pose=np.eye(4))
    for _ in range(n_lights):
        colour = np.clip(1 - rng.uniform(0, 0.2, 3), 0, 1)
        direction = rng.normal(size=3)
        direction[2] = -abs(direction[2]) - 0.3  # light from the camera's side, more or less
        z = -direction / np.linalg.norm(direction)
        x = np.cross([0.0, 1.0, 0.0], z)
        x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-6 else np.array([1.0, 0, 0])
        pose = np.eye(4)
        pose[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
        if rng.random() < 0.7:
            light = pyrender.DirectionalLight(color=colour, intensity=float(rng.uniform(0.8, 3.0) / n_lights))
        else:
            pose[:3, 3] = z * rng.uniform(0.3, 1.0)
            light = pyrender.PointLight(color=colour, intensity=float(rng.uniform(0.5, 3.0) / n_lights))
        if "light" not in ablate:
            scene.add(light, pose=pose)
    rgba, depth = renderer.render(scene, flags=pyrender.RenderFlags.RGBA)
    return rgba, depth


# the pose kinds the set was first drawn from; newer sampler kinds are left out so the set stays fixed
POSE_KINDS = ("random", "open", "fist", "pinch", "point")


def foreign_pose(model: HandModel, g: torch.Generator) -> tuple[torch.Tensor, str]:
    """(1, J, 3) a pose of a kind drawn uniformly from POSE_KINDS, any global orientation (the
    generator is used exactly as `sample_poses(kind="mixed")` did with these five kinds), and its kind."""
    kind = POSE_KINDS[int(torch.randint(len(POSE_KINDS), (1,), generator=g))]
    return sample_poses(model, 1, kind=kind, generator=g, global_orient="random"), kind


def posed_hand(models: dict, rng: np.random.Generator, g: torch.Generator) -> tuple:
    """A random side, pose (`foreign_pose`) and shape: (side, model, vertices (V, 3), joints (21, 3)) at the
    origin, and the pose's kind."""
    side = "left" if rng.random() < 0.5 else "right"
    model = models[side]
    pose, kind = foreign_pose(model, g)
    shape = sample_shapes(model, 1, seed=int(rng.integers(2**31)))
    with torch.no_grad():
        out = model(pose, shape)
    return side, model, out.vertices[0].double().numpy(), out.joints[0].double().numpy(), kind


def sample(i: int, seed: int, models: dict, photos: list, renderer,
           ablate: frozenset = frozenset()) -> tuple[np.ndarray, np.ndarray, HandAnnotation]:
    rng = np.random.default_rng([seed, i])
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    side, model, verts, joints, kind = posed_hand(models, rng, g)
    root = joints[0].copy()
    verts, joints = verts - root, joints - root
    for _ in range(20):  # a framing whose perspective went wrong (hand outside the crop) is drawn again
        t, K = frame(verts, rng)
        uv = (verts + t) @ K.T
        if (verts[:, 2] + t[2] > 0.05).all():
            uv = uv[:, :2] / uv[:, 2:]
            if ((uv.min(0) > -0.1 * SIZE) & (uv.max(0) < 1.1 * SIZE)).all():
                break
    verts, joints = verts + t, joints + t
    rgba, depth = render([(verts, model.faces.numpy())], K, rng, renderer, ablate)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    if "antialiasing" in ablate:
        alpha = (alpha >= 0.5).astype(np.float32)
    image = (alpha * rgba[..., :3] + (1 - alpha) * background(photos, rng, ablate)).round().astype(np.uint8)
    return image, K, annotate(side, verts, joints, K, depth, kind)


SCENE_H, SCENE_W = 384, 512


class SceneLayout(NamedTuple):
    """A scene set's framing: image height and width (px), at most `max_hands` hands, each
    `hand_height` (lo, hi) of the image height."""

    height: int = SCENE_H
    width: int = SCENE_W
    max_hands: int = 4
    hand_height: tuple[float, float] = (0.12, 0.45)


WIDE_LAYOUT = SceneLayout(768, 1024, 8, (0.05, 0.15))


def annotate(side: str, verts: np.ndarray, joints: np.ndarray, K: np.ndarray, depth: np.ndarray,
             pose_kind: str) -> HandAnnotation:
    """Exact ground truth of a rendered hand: 2D keypoints, visibility (inside the image and not
    behind a rendered surface by more than 12 mm), box = projected mesh and visible keypoints; its
    pose kind in meta (as the synthetic engine's, for `handrecon evaluate --by pose_kind`)."""
    H, W = depth.shape
    uv = joints @ K.T
    kp2d = uv[:, :2] / uv[:, 2:]
    inside = (kp2d >= -0.5).all(1) & (kp2d[:, 0] <= W - 0.5) & (kp2d[:, 1] <= H - 0.5)
    px = np.clip(np.rint(kp2d).astype(int), 0, [W - 1, H - 1])
    surface = depth[px[:, 1], px[:, 0]]
    visible = inside & ((surface == 0) | (joints[:, 2] <= surface + 0.012))
    vuv = verts @ K.T
    pts = np.concatenate([vuv[:, :2] / vuv[:, 2:], kp2d[visible]])
    box = np.r_[np.maximum(pts.min(0), -0.5), np.minimum(pts.max(0), [W - 0.5, H - 0.5])]
    return HandAnnotation(side=side, box=box, keypoints_2d=kp2d, visibility=visible.astype(np.float32),
                          keypoints_3d=joints, vertices=verts, hand_model="openhand", meta={"pose_kind": pose_kind})


def scene_sample(i: int, seed: int, models: dict, photos: list, renderer,
                 ablate: frozenset = frozenset(), layout: SceneLayout = SceneLayout()) -> tuple[np.ndarray, np.ndarray, list]:
    """A full image of `layout` (default 384 x 512 with 0-4 hands, 1 in 5 without one, at 12-45 %
    of the image height) with hands anywhere, every orientation, over a photo: for detectors.
    Returns image, K and the hands."""
    from PIL import Image

    H, W = layout.height, layout.width
    rng = np.random.default_rng([seed, 10**6 + i])
    g = torch.Generator().manual_seed(int(rng.integers(2**62)))
    f = W * rng.uniform(0.8, 1.5)
    K = np.array([[f, 0, (W - 1) / 2], [0, f, (H - 1) / 2], [0, 0, 1.0]])
    placed = []
    for n in range(int(rng.integers(0, layout.max_hands + 1))):
        side, model, verts, joints, kind = posed_hand(models, rng, g)
        centre = (verts.max(0) + verts.min(0)) / 2
        verts, joints = verts - centre, joints - centre
        size_px = H * rng.uniform(*layout.hand_height)
        z = f * np.ptp(verts[:, :2], 0).max() / size_px + 0.05 * n  # later hands a little further back
        target = np.array([rng.uniform(0.08, 0.92) * W, rng.uniform(0.08, 0.92) * H])
        t = z * np.linalg.solve(K, np.r_[target, 1.0])
        placed.append((side, model, verts + t, joints + t, kind))
    rgba, depth = (render([(v, m.faces.numpy()) for _, m, v, _, _ in placed], K, rng, renderer, ablate) if placed
                   else (np.zeros((H, W, 4), np.uint8), np.zeros((H, W), np.float32)))
    photo = photos[rng.integers(len(photos))]
    ph, pw = photo.shape[:2]
    ch = int(rng.uniform(0.4, 1.0) * min(ph, pw * H / W))
    cw = int(ch * W / H)
    y, x = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
    bg = np.asarray(Image.fromarray(photo[y:y + ch, x:x + cw]).resize((W, H), Image.BILINEAR))
    if "photo" in ablate:
        bg = np.full_like(bg, 128)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    image = (alpha * rgba[..., :3] + (1 - alpha) * bg).round().astype(np.uint8)
    hands = []
    for side, model, verts, joints, kind in placed:
        hand = annotate(side, verts, joints, K, depth, kind)
        if (hand.box[2:] - hand.box[:2]).min() >= 2:  # else (almost) entirely outside the image: not in it
            hands.append(hand)
    return image, K, hands


def rest_hand_baseline(root: Path) -> float:
    """PA-MPJPE (mm) of the constant rest hand (the template's joints, per side) on the set."""
    from handrecon.data.loaders import build_dataset
    from handrecon.eval.submission import FreihandSet, evaluate_freihand

    ds = build_dataset("synthetic", root, "all")
    rest = {s: m(torch.zeros(1, m.num_joints, 3)).joints[0].double().numpy()
            for s, m in ((s, HandModel.openhand(s)) for s in ("left", "right"))}
    gt = np.stack([ds[i].hands[0].keypoints_3d for i in range(len(ds))]).astype(np.float64)
    pred = np.stack([rest[ds[i].hands[0].side] for i in range(len(ds))])
    return evaluate_freihand(FreihandSet(pred, pred), FreihandSet(gt, gt))["xyz_al_mean3d"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(".cache/foreign"))
    ap.add_argument("--num", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--shard-size", type=int, default=100)
    ap.add_argument("--baseline", action="store_true", help="print the rest-hand baseline's PA-MPJPE on the set")
    ap.add_argument("--ablate", default="", help="diagnostics: comma-separated differences from training "
                    f"to take away, of {', '.join(ABLATIONS)} (the same hands, poses and framings)")
    ap.add_argument("--scenes", action="store_true",
                    help="full 384x512 images with 0-4 hands anywhere (for detectors) instead of 224 crops")
    ap.add_argument("--wide", action="store_true",
                    help="with --scenes: group-photo framing, 768x1024 images with 0-8 hands at 5-15%% of the height")
    args = ap.parse_args()
    ablate = frozenset(a for a in args.ablate.split(",") if a)
    if ablate - set(ABLATIONS):
        ap.error(f"--ablate takes {', '.join(ABLATIONS)}, got {args.ablate!r}")
    if args.wide and not args.scenes:
        ap.error("--wide frames scenes: give it with --scenes")
    if args.num < 1 or args.shard_size < 1:
        ap.error(f"--num and --shard-size must be positive, got {args.num} and {args.shard_size}")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # headless OpenGL, read when pyrender is imported
    import pyrender

    torch.set_num_threads(1)
    models = {s: HandModel.openhand(s) for s in ("left", "right")}
    photos = photo_pool()
    init_output(args.out, make_meta("foreign", args.seed, args.num, args.shard_size, "openhand",
                                    topology_sha256(load_openhand()), image_format="png",
                                    renderer="pyrender", backgrounds="scikit-image CC0/public-domain photos"))
    layout = WIDE_LAYOUT if args.wide else SceneLayout()
    renderer = (pyrender.OffscreenRenderer(layout.width, layout.height) if args.scenes
                else pyrender.OffscreenRenderer(SIZE, SIZE))
    try:
        for s in range(0, args.num, args.shard_size):
            with ShardWriter(args.out, s // args.shard_size, image_format="png", vertex_dtype="float32") as w:
                for i in range(s, min(s + args.shard_size, args.num)):
                    if args.scenes:
                        image, K, hands = scene_sample(i, args.seed, models, photos, renderer, ablate, layout)
                    else:
                        image, K, hand = sample(i, args.seed, models, photos, renderer, ablate)
                        hands = [hand]
                    w.add(image, K, hands, sample_id=f"{i:06d}")
    finally:
        renderer.delete()
    print(f"wrote {args.num} foreign {'scenes' if args.scenes else 'crops'} to {args.out}")
    if args.baseline:
        print(f"rest-hand baseline: PA-MPJPE {rest_hand_baseline(args.out):.2f} mm")


if __name__ == "__main__":
    main()
