"""The synthetic engine: sample a scene, render it, derive exact ground truth.

    engine = SynthEngine(preset("crop"))
    sample = engine.sample(index=7, seed=0)      # a handrecon.data.Sample, same for same (seed, index)

Sample `index` of dataset `seed` is drawn from its own random stream
``np.random.default_rng([seed, index])``, so any subset of samples can be rendered in any order,
by any worker, with identical results.

Ground truth per hand: side, box (tight box of the projected vertices and visible keypoints, clipped to the image
extent [-0.5, W-0.5] x [-0.5, H-0.5]), 2D keypoints (projection of the 3D ones with K), 3D
keypoints and vertices (camera frame, metres), per-keypoint visibility (`keypoint_visibility`),
pose (actual joint rotations, root in the camera frame), shape and transl such that
``HandModel(pose - pose_mean, shape, transl)`` reproduces the vertices.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import sparse

from handrecon.data.schema import HandAnnotation, Sample
from handrecon.data.synth.appearance import (
    SKIN_PALETTE,
    SkinShader,
    corrupt,
    forearm,
    image_background,
    is_cutout,
    list_background_images,
    photo_textured,
    paste_cutouts,
    procedural_background,
    recolour,
    random_hand_colour,
    random_lights,
)
from handrecon.data.synth.config import SynthConfig
from handrecon.data.synth.scene import Scene, sample_scene
from handrecon.geometry.boxes import clip_to_image
from handrecon.geometry.camera import inside_image, scale_intrinsics
from handrecon.hand.model import HandModel
from handrecon.mesh.ops import boundary_loops, cap_faces, vertex_normals
from handrecon.mesh.subdivision import loop_subdivision
from handrecon.render import Mesh, render

# A keypoint is hidden by another object only if that object's surface is this much nearer.
VISIBILITY_TOLERANCE_M = 0.015
VISIBILITY_RADIUS_PX = 1


def keypoint_visibility(keypoints_3d: np.ndarray, K: np.ndarray, depth: np.ndarray, instance: np.ndarray,
                        tolerance: float = VISIBILITY_TOLERANCE_M, radius: int = VISIBILITY_RADIUS_PX) -> np.ndarray:
    """(N, 21) float32 visibility of the keypoints (N, 21, 3) of hands 1..N (hand n is instance n + 1).

    A keypoint is visible when it projects inside the image and at least half of the pixels in
    the (2 radius + 1)^2 window around its pixel are "clear": the pixel shows the hand itself
    (self-occlusion does not hide a keypoint: joints lie inside the mesh, under its own
    surface), or whatever the pixel shows (another hand, an occluder) is no nearer than the
    keypoint's depth minus `tolerance` metres (background has infinite depth).
    depth: (H, W) metres, inf where empty; instance: (H, W) int ids, 0 background.
    """
    H, W = depth.shape
    kp = np.asarray(keypoints_3d, np.float64)
    z = kp[..., 2]
    uv = (kp @ np.asarray(K, np.float64).T)[..., :2] / np.where(z > 0, z, 1.0)[..., None]
    inside = (z > 0) & inside_image(uv, W, H)
    px = np.rint(np.where(inside[..., None], uv, 0)).astype(np.int64)
    off = np.arange(-radius, radius + 1)
    cols = np.clip(px[..., 0, None, None] + off[None, :], 0, W - 1)  # (N, 21, 1, w)
    rows = np.clip(px[..., 1, None, None] + off[:, None], 0, H - 1)  # (N, 21, w, 1)
    own = instance[rows, cols] == (np.arange(len(kp)) + 1)[:, None, None, None]
    clear = own | (depth[rows, cols] >= (z - tolerance)[..., None, None])
    return (inside & (clear.mean((-1, -2)) >= 0.5)).astype(np.float32)


class SynthEngine:
    """Renders synthetic samples for one config. Holds the hand models (both sides), their faces
    and skin shaders, and the list of background images; the GL context is per process.

    backgrounds: optional folder of images used as backgrounds with probability
    cfg.p_image_background. backend: renderer backend (None: $HANDRECON_RENDERER / auto).
    """

    def __init__(self, cfg: SynthConfig, backgrounds: str | os.PathLike | None = None,
                 backend: str | None = None) -> None:
        self.cfg = cfg
        self.backend = backend
        self.models = {side: HandModel.openhand(side) for side in ("right", "left")}
        self.hand_model = self.models["right"].name
        self.faces = {s: m.faces.numpy() for s, m in self.models.items()}
        # the wrist opening is capped for rendering (a fan around each loop's centroid), so the
        # inside of the hand is never seen; annotations keep the model's own vertices
        self.loops = {s: boundary_loops(f) for s, f in self.faces.items()}
        self.render_faces = {s: np.concatenate([f, cap_faces(self.loops[s], len(self.models[s].v_template))])
                             for s, f in self.faces.items()}
        # rendered smoother than it is learnt: Loop-subdivided (a fixed linear map of the capped mesh)
        self.subdivide, self.fine_faces = {}, {}
        for side, faces in self.render_faces.items():
            S = sparse.identity(len(self.models[side].v_template) + len(self.loops[side]), format="csr")
            for _ in range(cfg.render_subdivisions):
                step, faces = loop_subdivision(faces, S.shape[0])
                S = step @ S
            self.subdivide[side], self.fine_faces[side] = S.tocsr(), faces
        # the wrist: the longest opening (its vertices keep their indices in the subdivided mesh)
        self.wrist = {s: max(lp, key=len) for s, lp in self.loops.items()}
        self.pose_mean = {s: m.pose_mean.numpy() for s, m in self.models.items()}
        self.skin = {}
        for side, m in self.models.items():
            with torch.no_grad():
                rest_joints = m(torch.zeros(1, m.num_joints, 3) - m.pose_mean[None], torch.zeros(1, m.num_shape)).joints[0]
            knuckles = rest_joints.numpy()[[5, 6, 9, 10, 13, 14, 17, 18]]  # OP21 MCP and PIP joints of the fingers
            self.skin[side] = SkinShader(m.v_template.numpy(), self.faces[side], m.tip_vertex_ids.numpy(),
                                         np.array([0.0, -1.0, 0.0]), knuckles)
        images = list_background_images(backgrounds) if backgrounds else []
        cut = [is_cutout(p) for p in images]  # images with alpha are clutter (`paste_cutouts`), the rest backgrounds
        self.backgrounds: list[Path] = [p for p, c in zip(images, cut) if not c]
        self.cutouts: list[Path] = [p for p, c in zip(images, cut) if c]
        if images and not self.backgrounds and cfg.p_image_background > 0:
            raise ValueError(f"--backgrounds {backgrounds}: every image has an alpha channel (cutouts, pasted as "
                             "clutter); give a folder of photographs too")

    @staticmethod
    def rng(seed: int, index: int) -> np.random.Generator:
        """The random stream of sample `index` of dataset `seed`."""
        return np.random.default_rng([int(seed), int(index)])

    def sample(self, index: int, seed: int) -> Sample:
        """Render sample `index` of dataset `seed` (deterministic)."""
        rng = self.rng(seed, index)
        scene = sample_scene(self.models, self.cfg, rng)
        image, depth, instance, extra = self.render_scene(scene, rng)
        hands = self.annotate(scene, depth, instance)
        return Sample.from_image(image, hands, K=scene.K.astype(np.float32), source="synthetic",
                                 sample_id=f"{seed}_{index}", meta=extra)

    def render_scene(self, scene: Scene, rng: np.random.Generator):
        """Image (H, W, 3) uint8, depth (sH, sW), instance (sH, sW) at s = cfg.supersample, and extras."""
        cfg = self.cfg
        H, W = scene.image_size
        s = cfg.supersample
        meshes, arms, tones = [], [], []
        for hand in scene.hands:
            side, V = hand.side, len(hand.vertices)
            loops = self.loops[side]
            verts = np.concatenate([hand.vertices] + [hand.vertices[lp].mean(0, keepdims=True) for lp in loops])
            normals = vertex_normals(verts, self.render_faces[side])
            base = self.hand_colour(rng)
            albedo, tone = self.skin[side].albedo(hand.vertices, normals[:V], rng, base=base)
            albedo = np.concatenate([albedo] + [albedo[lp].mean(0, keepdims=True) for lp in loops])
            S, faces = self.subdivide[side], self.fine_faces[side]
            fine, fine_albedo, fine_normals = S @ verts, S @ albedo, S @ normals  # normals: interpolated, renormalised
            fine_normals /= np.maximum(np.linalg.norm(fine_normals, axis=1, keepdims=True), 1e-12)
            meshes.append(Mesh(fine, faces, fine_albedo, fine_normals))
            tones.append(tone if base is None else -1)  # -1: a hand of any colour (p_hand_colour)
            if rng.random() < cfg.p_forearm:
                away = hand.joints[0] - hand.joints[9]  # from the middle knuckle through the wrist
                wrist = self.wrist[side]
                arm = forearm(fine[wrist], away / np.linalg.norm(away), fine_albedo[wrist].mean(0), rng, cfg.p_sleeve)
                arms.append(Mesh(*arm))
        meshes += arms  # after the hands: hand n stays instance n + 1
        for v, f, c in scene.occluders:  # with photographs given: most cut from them, some skin-coloured
            u = rng.random() if self.backgrounds else 1.0
            if u < cfg.p_photo_occluder:
                path = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
                v, f, c = photo_textured(v, f, self.photo(rng, path, 96, 96))
            elif u < cfg.p_photo_occluder + cfg.p_skin_occluder:  # a distractor: skin is not a hand
                tone = SKIN_PALETTE[int(rng.integers(len(SKIN_PALETTE)))]
                c = np.clip(tone * rng.uniform(0.9, 1.1, (len(v), 1)), 0, 1).astype(np.float32)
            meshes.append(Mesh(v, f, c))
        if self.backgrounds and rng.random() < cfg.p_image_background:
            path = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
            background, bg_kind = self.photo(rng, path, H, W), f"image:{path.name}"
        else:
            background = procedural_background(rng, H, W)
            bg_kind = "procedural"
        clutter = 0
        if self.cutouts and cfg.clutter[1] > 0:  # no random draw without cutouts or clutter
            clutter = int(rng.integers(cfg.clutter[0], cfg.clutter[1] + 1))
            background = paste_cutouts(background, self.cutouts, clutter, rng)
        lights = random_lights(rng)
        K = scale_intrinsics(scene.K, s) if s > 1 else scene.K
        if s > 1:
            big = np.asarray(Image.fromarray(background).resize((W * s, H * s), Image.Resampling.NEAREST))
            out = render(meshes, K, (H * s, W * s), lights=lights, background=big, backend=self.backend, normals=False)
            rgb = np.asarray(Image.fromarray(out.rgb).reduce(s))
        else:
            out = render(meshes, K, (H, W), lights=lights, background=background, backend=self.backend, normals=False)
            rgb = out.rgb
        rgb, applied = corrupt(rgb, rng, cfg.p_blur, cfg.p_noise, cfg.p_jpeg, cfg.p_motion_blur, cfg.p_color)
        rgb = rgb if rgb.flags.writeable else rgb.copy()
        extra = {"background": bg_kind, "clutter": clutter, "occluders": len(scene.occluders), "skin_tones": tones,
                 "forearms": len(arms), "corruption": applied}
        return rgb, out.depth, out.instance, extra

    def hand_colour(self, rng: np.random.Generator) -> np.ndarray | None:
        """A hand's base colour of any hue (`appearance.random_hand_colour`) with probability
        cfg.p_hand_colour, else None (a skin tone); no random draw at all when it is 0."""
        p = self.cfg.p_hand_colour
        return random_hand_colour(rng) if p > 0 and rng.random() < p else None

    def photo(self, rng: np.random.Generator, path: Path, H: int, W: int) -> np.ndarray:
        """(H, W, 3) uint8: a crop of the photograph at `path` (`image_background`), recoloured
        with probability cfg.p_recolour (no random draw at all when it is 0)."""
        image = image_background(rng, path, H, W)
        return recolour(image, rng) if self.cfg.p_recolour > 0 and rng.random() < self.cfg.p_recolour else image

    def annotate(self, scene: Scene, depth: np.ndarray, instance: np.ndarray) -> list[HandAnnotation]:
        """Exact per-hand ground truth of a rendered scene (depth/instance at the render resolution)."""
        H, W = scene.image_size
        s = depth.shape[1] / W
        K = scene.K
        if not scene.hands:
            return []
        joints = np.stack([h.joints for h in scene.hands])
        vis = keypoint_visibility(joints, scale_intrinsics(K, s) if s != 1 else K, depth, instance)
        hands = []
        for n, h in enumerate(scene.hands):
            uv = h.vertices @ K.T
            kp2d = h.joints @ K.T
            kp2d = kp2d[:, :2] / kp2d[:, 2:]
            # the box holds the mesh and every visible keypoint (a joint can project just outside the mesh)
            pts = np.concatenate([uv[:, :2] / uv[:, 2:], kp2d[vis[n] > 0]])
            hands.append(HandAnnotation(
                side=h.side, box=clip_to_image(np.r_[pts.min(0), pts.max(0)], W, H), keypoints_2d=kp2d,
                visibility=vis[n], keypoints_valid=np.ones(21, bool), keypoints_3d=h.joints,
                vertices=h.vertices, pose=h.pose + self.pose_mean[h.side], shape=h.shape, transl=h.transl,
                hand_model=self.hand_model, meta={"pose_kind": h.kind},
            ))
        return hands


_ENGINES: dict = {}  # per process: (config, backgrounds, backend) -> SynthEngine


def get_engine(cfg: SynthConfig, backgrounds: str | None = None, backend: str | None = None) -> SynthEngine:
    """This process's SynthEngine for these settings (built once: hand models, shaders, background list)."""
    key = (cfg, backgrounds, backend)
    if key not in _ENGINES:
        _ENGINES[key] = SynthEngine(cfg, backgrounds, backend)
    return _ENGINES[key]
