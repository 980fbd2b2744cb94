"""Appearance of synthetic images: skin albedo, ambient occlusion, forearms and sleeves, lighting,
occluder objects, backgrounds, camera effects.

Every function takes a numpy Generator and is deterministic given its state. Images are RGB
uint8 (H, W, 3); albedos are linear RGB in [0, 1].
"""

from __future__ import annotations

import colorsys
import io
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import sparse

from handrecon.data.schema import IMAGE_SUFFIXES, load_image
from handrecon.mesh.ops import unique_edges, vertex_normals
from handrecon.mesh.primitives import tube_faces
from handrecon.render import Lights

# Fitzpatrick-like base skin albedos (types I..VI and in-between), RGB in [0, 1].
SKIN_PALETTE = np.array([
    (0.96, 0.80, 0.69), (0.92, 0.74, 0.62), (0.87, 0.67, 0.54), (0.80, 0.59, 0.45),
    (0.72, 0.51, 0.37), (0.62, 0.42, 0.29), (0.52, 0.34, 0.23), (0.42, 0.27, 0.18),
    (0.33, 0.21, 0.14), (0.25, 0.16, 0.11),
], np.float32)
BACKGROUND_KINDS = ("noise", "gradient", "stripes", "blobs", "shapes", "solid")


# ----------------------------------------------------------------------------- skin
class SkinShader:
    """Per-vertex albedo of one hand topology.

    Static parts are computed once from the rest mesh: the palm side (lighter on darker skin),
    the nail patches (dorsal fingertips, lighter and pinker) and a flush on fingertips and the
    back of the knuckles (`knuckles`: (K, 3) rest joint positions). Per posed mesh a cavity term
    darkens concave vertices (creases between fingers, knuckle folds: the offset of a vertex from
    the mean of its neighbours, along its outward normal), `occlusion` darkens what nearby parts
    of the hand shade, and a slow random tone variation and mottling break up the uniform albedo.
    """

    def __init__(self, rest_vertices: np.ndarray, faces: np.ndarray, tip_vertex_ids: np.ndarray,
                 palm_normal: np.ndarray, knuckles: np.ndarray | None = None) -> None:
        V = len(rest_vertices)
        e = unique_edges(faces)
        adj = sparse.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), (V, V)).tocsr()
        self.mean_op = sparse.diags(1.0 / np.maximum(adj.sum(1).A1, 1)) @ adj  # (V, V) neighbour mean
        self.faces = faces
        normals = vertex_normals(rest_vertices.astype(np.float64), faces)
        self.palm = np.clip(normals @ palm_normal, 0, 1).astype(np.float32)  # 1 on the palm side
        tips = rest_vertices[tip_vertex_ids]
        d = np.linalg.norm(rest_vertices[:, None] - tips[None], axis=2).min(1)
        dorsal = np.clip(-(normals @ palm_normal), 0, 1)
        self.nail = (np.clip(1.0 - d / 0.014, 0, 1) * (dorsal > 0.35)).astype(np.float32)
        # fingertips and knuckles are redder than the rest of the skin
        flush = np.clip(1.0 - d / 0.02, 0, 1) * (1 - self.nail)
        if knuckles is not None and len(knuckles):
            dk = np.linalg.norm(rest_vertices[:, None] - knuckles[None], axis=2).min(1)
            flush = np.maximum(flush, np.clip(1.0 - dk / 0.015, 0, 1) * dorsal)
        self.flush = flush.astype(np.float32)
        self.rest = rest_vertices.astype(np.float32)

    def albedo(self, vertices: np.ndarray, normals: np.ndarray, rng: np.random.Generator,
               tone: int | None = None, base: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """(V, 3) float32 albedo for one posed hand (vertices, normals (V, 3)), and the palette index.
        `base`: an RGB base colour in [0, 1] in place of the palette's skin tone (`random_hand_colour`);
        the shading structure (palm, nails, flush, cavities, mottling) stays."""
        tone = int(rng.integers(len(SKIN_PALETTE))) if tone is None else tone
        base = (SKIN_PALETTE[tone] if base is None else np.asarray(base, np.float32)) * rng.uniform(0.92, 1.08, 3).astype(np.float32)
        lightness = 1.0 - tone / (len(SKIN_PALETTE) - 1)  # 1 lightest .. 0 darkest
        cavity = np.einsum("vc,vc->v", self.mean_op @ vertices - vertices, normals)  # > 0 concave
        ao = 1.0 - np.clip(cavity / 0.0015, 0, 1) * rng.uniform(0.25, 0.45)
        palm_lift = self.palm[:, None] * (0.05 + 0.25 * (1 - lightness)) * (1 - base)
        nail_col = np.array((0.93, 0.78, 0.75), np.float32)
        color = base + palm_lift
        color = color + self.nail[:, None] * 0.55 * (nail_col - color)
        red = np.array((1.0, 0.55, 0.5), np.float32) * color.mean(-1, keepdims=True)
        color = color + self.flush[:, None] * rng.uniform(0.0, 0.35) * (red - color)
        # slow tone variation over the hand (a few random plane waves on the rest shape), and mottling
        k = rng.standard_normal((3, 3)).astype(np.float32) * rng.uniform(40, 160)
        waves = np.sin(self.rest[: len(vertices)] @ k + rng.uniform(0, 2 * np.pi, 3).astype(np.float32)).mean(1)
        tone_var = 1.0 + rng.uniform(0.0, 0.08) * waves[:, None]
        mottling = 1.0 + 0.04 * rng.standard_normal((len(vertices), 1)).astype(np.float32)
        return np.clip(color * (ao * occlusion(vertices, normals))[:, None] * tone_var * mottling, 0, 1).astype(np.float32), tone


def random_hand_colour(rng: np.random.Generator) -> np.ndarray:
    """(3,) float32 RGB base colour of any hue (domain randomisation of the hand's appearance, so a
    model cannot rely on skin colour to find the hand): hue uniform, saturation 0-0.7, value 0.25-0.95."""
    h, sat, val = rng.uniform(0, 6), rng.uniform(0.0, 0.7), rng.uniform(0.25, 0.95)
    return np.array(colorsys.hsv_to_rgb(h / 6, sat, val), np.float32)


def occlusion(vertices: np.ndarray, normals: np.ndarray, radius: float = 0.035, near: float = 0.006,
              stride: int = 8, strength: float = 0.55) -> np.ndarray:
    """(V,) float32 ambient-occlusion factor in (1 - strength, 1] of a posed mesh (vertices, normals (V, 3), metres).

    Every `stride`-th vertex stands for the surface around it; a vertex is darkened by those
    between `near` and `radius` metres that lie above its tangent plane (the cosine of their
    elevation, fading linearly with distance), summed into an occlusion o, and the factor is
    1 - strength (1 - exp(-o / 3)): a palm under curled fingers and the inner sides of fingers
    pressed together darken, a flat open hand barely does. Vectorised as (V, P) matrix products
    (|p - v|^2 = |p|^2 + |v|^2 - 2 v.p, n.(p - v) = n.p - n.v), never the (V, P, 3) offsets.
    """
    vertices, normals = vertices.astype(np.float32), normals.astype(np.float32)
    probes = vertices[::stride]
    d2 = np.einsum("vc,vc->v", vertices, vertices)[:, None] + np.einsum("pc,pc->p", probes, probes)[None] \
        - 2.0 * (vertices @ probes.T)
    d = np.sqrt(np.maximum(d2, 0.0))  # (V, P)
    cos = (normals @ probes.T - np.einsum("vc,vc->v", normals, vertices)[:, None]) / np.maximum(d, 1e-9)
    weight = np.clip((radius - d) / (radius - near), 0, 1) * (d > near)
    occ = (np.clip(cos, 0, 1) * weight).sum(1)
    return (1.0 - strength * (1.0 - np.exp(-occ / 3.0))).astype(np.float32)


# ----------------------------------------------------------------------------- forearm
def forearm(ring: np.ndarray, away: np.ndarray, skin: np.ndarray, rng: np.random.Generator,
            p_sleeve: float = 0.6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A forearm grown from the wrist opening of a posed hand, often inside a sleeve.

    ring: (L, 3) the wrist boundary loop in order (camera frame, metres); away: (3,) unit
    direction from the hand towards the elbow; skin: (3,) albedo at the wrist. The arm is a tube
    of scaled copies of the ring, 10-35 cm long, widening by 10-40 %, slightly bent, capped at the
    far end. With probability `p_sleeve` a sleeve (a cuff 1-10 cm from the wrist, 15-45 % wider,
    a cloth colour, grey 1 in 5) covers the rest. Returns vertices (N, 3), faces, albedo (N, 3).
    """
    L = len(ring)
    centre = ring.mean(0)
    length = rng.uniform(0.10, 0.35)
    t = np.r_[0.0, 0.01, 0.025, 0.05, 0.08, 0.12, 0.18, 0.26, 0.35]
    t = t[t < length].tolist() + [length]
    widen = rng.uniform(0.10, 0.40)
    bend = np.cross(away, rng.standard_normal(3)) * rng.uniform(0.0, 0.25)
    sleeve_at = rng.uniform(0.01, 0.10) if rng.random() < p_sleeve else np.inf
    sleeve_scale = 1.0 + rng.uniform(0.15, 0.45)
    cloth = rng.uniform(0.03, 0.95, 3) if rng.random() < 0.8 else np.full(3, rng.uniform(0.03, 0.95))
    rings, colors = [], []

    def add(ti: float, scale: float, color: np.ndarray) -> None:
        axis = centre + away * ti + bend * ti ** 2 / length
        rings.append(axis + (ring - centre) * scale)
        colors.append(np.broadcast_to(color, (L, 3)))

    cuffed = False
    for ti in t:
        if ti >= sleeve_at and not cuffed:  # the cuff: a skin ring, then a wider cloth ring at the same place
            s0 = 1.0 + widen * min(sleeve_at / 0.15, 1.0)
            add(sleeve_at, s0, skin)
            add(sleeve_at, sleeve_scale * s0, cloth)
            cuffed = True
        scale = 1.0 + widen * min(ti / 0.15, 1.0)
        if cuffed:
            add(ti, sleeve_scale * scale, cloth * rng.uniform(0.9, 1.1, (L, 1)))
        else:
            add(ti, scale, skin)
    verts = np.concatenate(rings + [rings[-1].mean(0, keepdims=True)])
    albedo = np.concatenate(colors + [colors[-1][:1]])
    faces = tube_faces(len(rings), L, closed_end=True)
    return verts.astype(np.float32), faces, np.clip(albedo, 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------- lights
# RGB of light sources from warm to cool (about 2700 K tungsten .. 9000 K shade), normalised to max 1.
LIGHT_COLORS = np.array([
    (1.00, 0.71, 0.42), (1.00, 0.80, 0.60), (1.00, 0.89, 0.80), (1.00, 0.97, 0.95), (0.93, 0.94, 1.00),
    (0.82, 0.87, 1.00),
], np.float32)


def random_lights(rng: np.random.Generator) -> Lights:
    """Ambient + 1-4 directional lights of varied colour temperature (one room's lights share a
    tint, sometimes one of another), mostly from the camera's hemisphere, 1 in 4 a rim light from
    behind; random specular sheen. Total intensity <= ~1: no blown-out skin."""
    n = int(rng.integers(1, 5))
    dirs = rng.standard_normal((n, 3))
    dirs[:, 2] = np.abs(dirs[:, 2]) + 0.3  # travel into the scene (lit from the camera side)
    if n > 1 and rng.random() < 0.25:
        dirs[-1, 2] = -abs(dirs[-1, 2])  # a rim light from behind the hand
    room = LIGHT_COLORS[int(rng.integers(len(LIGHT_COLORS)))]
    colors = np.repeat(room[None], n, 0)
    other = rng.random(n) < 0.3
    colors[other] = LIGHT_COLORS[rng.integers(len(LIGHT_COLORS), size=int(other.sum()))]
    ambient = rng.uniform(0.15, 0.45) * room * rng.uniform(0.92, 1.08, 3)
    weights = rng.dirichlet(np.ones(n)) * rng.uniform(0.45, 0.95 - ambient.mean())
    tint = colors * rng.uniform(0.92, 1.08, (n, 3)) * weights[:, None]
    return Lights(ambient=ambient, directions=dirs, colors=tint,
                  specular=float(rng.uniform(0.0, 0.35)), shininess=float(rng.uniform(6, 64)))


# ----------------------------------------------------------------------------- occluders
@lru_cache(maxsize=1)
def _primitives() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Unit-size sphere, box and cylinder (vertices, faces), built once with trimesh."""
    import trimesh

    meshes = (trimesh.creation.icosphere(subdivisions=2, radius=0.5),
              trimesh.creation.box(extents=(1.0, 1.0, 1.0)),
              trimesh.creation.cylinder(radius=0.5, height=1.0, sections=20))
    return tuple((np.asarray(m.vertices, np.float32), np.asarray(m.faces, np.int64)) for m in meshes)


def random_occluder(rng: np.random.Generator, centre: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A sphere, box or cylinder of about `size` metres at camera-frame `centre` (3,), random
    rotation, aspect and colour. Returns vertices (V, 3), faces (F, 3), albedo (V, 3)."""
    from scipy.spatial.transform import Rotation

    verts, faces = _primitives()[int(rng.integers(3))]
    scale = size * rng.uniform(0.5, 1.4, 3)
    R = Rotation.from_quat(rng.standard_normal(4)).as_matrix()
    v = (verts * scale) @ R.T + centre
    base = rng.uniform(0.05, 0.95, 3)
    color = np.clip(base * rng.uniform(0.9, 1.1, (len(v), 1)), 0, 1)
    return v.astype(np.float32), faces, color.astype(np.float32)


def photo_textured(verts: np.ndarray, faces: np.ndarray, photo: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An occluder textured with a photograph: the mesh subdivided twice (for texture detail) and
    each vertex coloured by the photo (H, W, 3) uint8, projected along the mesh's thinnest axis.
    Returns vertices, faces and per-vertex albedo in [0, 1]."""
    import trimesh  # deferred as in _primitives: 0.36 s of import for a run that may not need it

    v, f = trimesh.remesh.subdivide(verts, faces)
    v, f = trimesh.remesh.subdivide(v, f)
    centred = v - v.mean(0)
    axes = np.linalg.svd(centred, full_matrices=False)[2][:2]  # the two widest directions
    uv = centred @ axes.T
    uv = (uv - uv.min(0)) / np.maximum(np.ptp(uv, 0), 1e-9)
    H, W = photo.shape[:2]
    px = np.clip((uv * [W - 1, H - 1]).round().astype(int), 0, [W - 1, H - 1])
    return v.astype(np.float32), f, photo[px[:, 1], px[:, 0]].astype(np.float32) / 255.0


# ----------------------------------------------------------------------------- backgrounds
def _smooth_noise(rng: np.random.Generator, H: int, W: int, cells: int, channels: int = 3) -> np.ndarray:
    """(H, W, channels) float32 in [0, 1]: a random (cells x cells) grid upsampled bicubically."""
    ch, cw = max(2, cells * H // max(H, W)), max(2, cells * W // max(H, W))
    small = (rng.random((ch, cw, channels)) * 255).astype(np.uint8)
    mode = "RGB" if channels == 3 else "L"
    big = Image.fromarray(small.squeeze(-1) if channels == 1 else small, mode).resize((W, H), Image.Resampling.BICUBIC)
    return np.asarray(big, np.float32).reshape(H, W, channels) / 255.0


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0, 1, (n, 3)).astype(np.float32)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def _two_tone(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 mapping a field t in [0, 1] between two random colours (via a 256-entry table)."""
    c0, c1 = _palette(rng, 2)
    lut = _to_uint8(c0 + np.linspace(0, 1, 256, dtype=np.float32)[:, None] * (c1 - c0))
    return lut[np.clip(t * 255 + 0.5, 0, 255).astype(np.uint8)]


def procedural_background(rng: np.random.Generator, H: int, W: int, kind: str | None = None) -> np.ndarray:
    """(H, W, 3) uint8 procedural background of `kind` (one of BACKGROUND_KINDS; random if None).

    Smooth kinds (noise, gradient, blobs, solid) are drawn at half resolution and upsampled.
    """
    kind = BACKGROUND_KINDS[int(rng.integers(len(BACKGROUND_KINDS)))] if kind is None else kind
    h, w = max(2, H // 2), max(2, W // 2)
    if kind == "noise":
        img = sum(_smooth_noise(rng, h, w, c) * wt for c, wt in ((4, 0.55), (16, 0.3), (48, 0.15)))
        img = _to_uint8(img * rng.uniform(0.5, 1.3, 3).astype(np.float32) + rng.uniform(-0.2, 0.2, 3).astype(np.float32))
    elif kind == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = np.cos(a) * np.arange(w, dtype=np.float32)[None] + np.sin(a) * np.arange(h, dtype=np.float32)[:, None]
        img = _two_tone(rng, (t - t.min()) / max(np.ptp(t), 1e-6))
    elif kind == "stripes":
        a = rng.uniform(0, np.pi)
        period = rng.uniform(6, max(H, W) / 3)
        phase = (np.cos(a) * np.arange(W, dtype=np.float32)[None] + np.sin(a) * np.arange(H, dtype=np.float32)[:, None]) / period
        wave = np.sin(2 * np.pi * phase)
        t = (wave > rng.uniform(-0.5, 0.5)).astype(np.float32) if rng.random() < 0.5 else 0.5 + 0.5 * wave
        return _two_tone(rng, t)
    elif kind == "blobs":
        field = _smooth_noise(rng, h, w, int(rng.integers(3, 9)), 1)[..., 0]
        levels = np.quantile(field, np.sort(rng.uniform(0.1, 0.9, 3)))
        img = _to_uint8(_palette(rng, 4))[np.searchsorted(levels, field)]
    elif kind == "shapes":
        im = Image.new("RGB", (W, H), tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(5, 25))):
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            x0, y0 = rng.uniform(-0.2, 1.0) * W, rng.uniform(-0.2, 1.0) * H
            sw, sh = rng.uniform(0.05, 0.5) * W, rng.uniform(0.05, 0.5) * H
            k = rng.integers(3)
            if k == 0:
                draw.rectangle((x0, y0, x0 + sw, y0 + sh), fill=fill)
            elif k == 1:
                draw.ellipse((x0, y0, x0 + sw, y0 + sh), fill=fill)
            else:
                pts = np.c_[x0 + rng.uniform(0, sw, 3), y0 + rng.uniform(0, sh, 3)]
                draw.polygon([tuple(p) for p in pts], fill=fill)
        return np.asarray(im)
    elif kind == "solid":
        img = _to_uint8(_palette(rng, 1)[0] * (0.9 + 0.1 * _smooth_noise(rng, h, w, 8)))
    else:
        raise ValueError(f"unknown background kind {kind!r}; choose from {BACKGROUND_KINDS}")
    return np.asarray(Image.fromarray(img).resize((W, H), Image.Resampling.BILINEAR))


def list_background_images(folders: str | os.PathLike) -> list[Path]:
    """Sorted image files (by suffix) under each folder, recursively; several folders are joined by
    `os.pathsep` (``photos:textures``). ValueError naming a folder that is missing or holds none."""
    files: list[Path] = []
    for folder in map(Path, str(folders).split(os.pathsep)):
        if not folder.is_dir():
            raise ValueError(f"--backgrounds {folder}: not a folder")
        found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise ValueError(f"--backgrounds {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        files += found
    return files


def is_cutout(path: Path) -> bool:
    """Whether an image file has an alpha channel: an object cut out of a photograph (pasted onto
    backgrounds as clutter, `paste_cutouts`) rather than a background. Reads the header only."""
    with Image.open(path) as im:
        return im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)


@lru_cache(maxsize=512)
def _cutout(path: Path) -> Image.Image:
    """A cutout as an RGBA PIL image, decoded once per process (at most PHOTO_MAX_SIDE px)."""
    with Image.open(path) as im:
        img = im.convert("RGBA")
    img.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE), Image.Resampling.LANCZOS)
    return img


def paste_cutouts(background: np.ndarray, cutouts: list[Path], count: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 background with `count` cutouts (RGBA images) pasted by their alpha: each
    scaled so its longer side is 15-70 % of the image's shorter side, turned by any angle,
    mirrored half the time, placed anywhere (partly outside too). Clutter of real objects behind
    the hand (fur, fruit, wood, metal) where the photographs are mostly empty landscapes."""
    H, W = background.shape[:2]
    canvas = Image.fromarray(background)
    for _ in range(count):
        cut = _cutout(Path(cutouts[int(rng.integers(len(cutouts)))]))
        scale = rng.uniform(*CUTOUT_SCALE) * min(H, W) / max(cut.size)
        cut = cut.resize((max(1, round(cut.width * scale)), max(1, round(cut.height * scale))), Image.Resampling.BILINEAR)
        cut = cut.rotate(float(rng.uniform(-180, 180)), resample=Image.Resampling.BILINEAR, expand=True)
        if rng.random() < 0.5:
            cut = cut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        x, y = rng.uniform(-0.3, 1.0) * W - 0.2 * cut.width, rng.uniform(-0.3, 1.0) * H - 0.2 * cut.height
        canvas.paste(cut, (int(x), int(y)), cut)
    return np.asarray(canvas)


CUTOUT_SCALE = (0.15, 0.7)
PHOTO_MAX_SIDE = 1600  # photos are cached at most this large: a 30 % crop still fills a 384 px image


@lru_cache(maxsize=64)
def _photo(path: Path) -> Image.Image:
    """A background photograph, decoded once per process (a pool of tens of photos) and shrunk to
    at most PHOTO_MAX_SIDE px; kept as a PIL image so that a crop does not copy the whole photo."""
    img = Image.fromarray(load_image(path))
    img.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE), Image.Resampling.LANCZOS)
    return img


def image_background(rng: np.random.Generator, path: Path, H: int, W: int) -> np.ndarray:
    """(H, W, 3) uint8: a random crop (30-100% of the height, output aspect, random flip) of the image at `path`."""
    img = _photo(Path(path))
    w, h = img.size
    ch = rng.uniform(0.3, 1.0) * h
    cw = ch * W / H
    if cw > w:  # keep the aspect ratio of the output
        cw, ch = w, w * H / W
    y0, x0 = rng.uniform(0, h - ch), rng.uniform(0, w - cw)
    im = img.resize((W, H), Image.Resampling.BILINEAR, box=(x0, y0, x0 + cw, y0 + ch), reducing_gap=2.0)
    out = np.asarray(im)
    return out[:, ::-1].copy() if rng.random() < 0.5 else out


def recolour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 with its hues turned by a random angle about the grey axis (luminance kept
    to first order), its saturation scaled by 0.6-1.6 and, half the time, its channels permuted:
    the photograph's texture in other colours. Turns a small photo pool's greens and blues into
    the warm, skin-like tones that a hand must be told apart from (a cat's fur, bricks, wood)."""
    a = rng.uniform(0, 2 * np.pi)
    grey = np.full((3, 3), 1 / 3, np.float32)
    cross = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], np.float32) / np.sqrt(3)
    turn = grey + np.cos(a) * (np.eye(3, dtype=np.float32) - grey) + np.sin(a) * cross  # rotation about (1, 1, 1)
    m = grey + rng.uniform(0.6, 1.6) * (turn - grey)  # saturation: the chroma part scaled
    if rng.random() < 0.5:
        m = m[rng.permutation(3)]
    out = image.reshape(-1, 3).astype(np.float32) @ m.T
    return np.clip(out + 0.5, 0, 255).astype(np.uint8).reshape(image.shape)


# ----------------------------------------------------------------------------- corruption
@lru_cache(maxsize=8)
def _radius2(H: int, W: int) -> np.ndarray:
    """(H, W) float32 squared distance from the image centre, 1 at the corners."""
    yy, xx = np.ogrid[:H, :W]
    return (((yy - (H - 1) / 2) ** 2 + (xx - (W - 1) / 2) ** 2) / (((H - 1) / 2) ** 2 + ((W - 1) / 2) ** 2 + 1e-9)).astype(np.float32)


def corrupt(image: np.ndarray, rng: np.random.Generator, p_blur: float = 0.3, p_noise: float = 0.4,
            p_jpeg: float = 0.3, p_motion_blur: float = 0.0, p_color: float = 0.0) -> tuple[np.ndarray, dict]:
    """Camera effects on an RGB uint8 image, each with its probability, in the order a camera
    applies them: white balance, exposure and gamma with a vignette (`p_color`), defocus (Gaussian)
    blur, motion blur along a random direction, sensor noise (shot + read noise) and JPEG
    re-compression. Returns the image and what was applied."""
    applied: dict = {}
    if rng.random() < p_color:
        gains = np.exp(rng.normal(0, 0.08, 3)).astype(np.float32)  # white balance off by a few percent
        exposure = float(np.exp(rng.normal(0, 0.25)))
        gamma = float(rng.uniform(0.8, 1.25))
        levels = np.arange(256, dtype=np.float32)[:, None] / 255.0
        lut = np.clip(np.power(np.clip(levels * gains * exposure, 0, 1), gamma) * 255 + 0.5, 0, 255).astype(np.uint8)
        image = np.asarray(Image.fromarray(image).point(lut.T.ravel().tolist()))  # each channel through its own curve
        vignette = 1.0 - rng.uniform(0.0, 0.35) * _radius2(*image.shape[:2])
        image = (image * vignette[..., None] + 0.5).astype(np.uint8)
        applied["color"] = {"gains": np.round(gains, 3).tolist(), "exposure": round(exposure, 3), "gamma": round(gamma, 3)}
    if rng.random() < p_blur:
        r = float(rng.uniform(0.3, 1.5))
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(r)))
        applied["blur"] = round(r, 3)
    if rng.random() < p_motion_blur:
        length = int(rng.integers(3, 10))
        angle = float(rng.uniform(0, np.pi))
        steps = np.linspace(-(length - 1) / 2, (length - 1) / 2, length)
        offsets = np.unique(np.rint(np.c_[steps * np.sin(angle), steps * np.cos(angle)]).astype(int), axis=0)
        pad = int(np.abs(offsets).max())
        padded = np.pad(image.astype(np.float32), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        H, W = image.shape[:2]
        acc = sum(padded[pad + dy: pad + dy + H, pad + dx: pad + dx + W] for dy, dx in offsets)
        image = np.clip(acc / len(offsets) + 0.5, 0, 255).astype(np.uint8)
        applied["motion_blur"] = {"length": length, "angle": round(angle, 3)}
    if rng.random() < p_noise:
        sigma = float(rng.uniform(1, 8))
        shot = float(rng.uniform(0.0, 0.6))
        level = sigma + shot * np.sqrt(image.astype(np.float32))
        noisy = image.astype(np.float32) + rng.standard_normal(image.shape, np.float32) * level
        image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        applied["noise"] = round(sigma, 3)
    if rng.random() < p_jpeg:
        q = int(rng.integers(30, 90))
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=q)
        image = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        applied["jpeg"] = q
    return image, applied
