"""Pure numpy rasterizer: the fallback when no EGL context can be made. Same outputs as the GL path.

Triangles are clipped against the near plane in camera space, projected with K, and every
(triangle, pixel) pair inside the triangle's pixel bounding box is tested at once with plane
equations (in chunks to bound memory). A z-buffer keeps the nearest candidate per pixel, and only
the winners are interpolated (perspective-correct) and shaded. No Python loop runs over pixels
or triangles; only over chunks of candidates.
"""

from __future__ import annotations

import numpy as np

from handrecon.render.common import Lights, Mesh, RenderResult, composite, shade

_CHUNK = 1 << 20  # (triangle, pixel) candidates tested per step (bounds memory to ~50 MB)


def _pack(meshes: list[Mesh]):
    """Concatenate the meshes: corner attributes (T, 3, 9) = position|normal|albedo and instance ids (T,)."""
    per_vertex = np.concatenate([np.concatenate([m.vertices, m.normals, m.color], 1) for m in meshes])
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    faces = np.concatenate([m.faces + o for m, o in zip(meshes, offsets)])
    inst = np.repeat(np.arange(1, len(meshes) + 1, dtype=np.int32), [len(m.faces) for m in meshes])
    return per_vertex.astype(np.float64)[faces], inst


def clip_near(corners: np.ndarray, near: float) -> tuple[np.ndarray, np.ndarray]:
    """Clip triangles against the plane z = near, in camera space.

    corners: (T, 3, C) corner attributes whose first three channels are the camera-frame
    position; every attribute is interpolated along the clipped edges. Returns (clipped
    corners (T', 3, C), source triangle of each (T',)). Winding is preserved.
    """
    inside = corners[..., 2] >= near
    n_in = inside.sum(1)
    if (n_in == 3).all():
        return corners, np.arange(len(corners))
    keep = np.nonzero(n_in == 3)[0]
    out, src = [corners[keep]], [keep]
    for count in (1, 2):
        idx = np.nonzero(n_in == count)[0]
        if not len(idx):
            continue
        # roll each triangle so the lone vertex (inside for count 1, outside for 2) comes first
        lone = np.argmax(inside[idx] if count == 1 else ~inside[idx], axis=1)
        perm = (lone[:, None] + np.arange(3)) % 3
        a, b, c = np.moveaxis(np.take_along_axis(corners[idx], perm[:, :, None], axis=1), 1, 0)
        ab = a + ((near - a[:, 2]) / (b[:, 2] - a[:, 2]))[:, None] * (b - a)  # on edge a-b at z = near
        ac = a + ((near - a[:, 2]) / (c[:, 2] - a[:, 2]))[:, None] * (c - a)
        if count == 1:  # a inside: one smaller triangle (a, ab, ac)
            out.append(np.stack([a, ab, ac], 1))
            src.append(idx)
        else:  # a outside, b and c inside: quad (ab, b, c, ac) -> two triangles
            out += [np.stack([ab, b, c], 1), np.stack([ab, c, ac], 1)]
            src += [idx, idx]
    return np.concatenate(out), np.concatenate(src)


def _candidates(bw: np.ndarray, counts: np.ndarray):
    """Every pixel of every triangle's bounding box: (triangle, col, row) with col, row relative to the box."""
    tri = np.repeat(np.arange(len(counts)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return tri, local % bw[tri], local // bw[tri]


def render_soft(meshes: list[Mesh], K: np.ndarray, H: int, W: int, lights: Lights, background,
                near: float, far: float) -> RenderResult:
    """Rasterize `meshes` into an (H, W) image; see handrecon.render.render for the arguments."""
    depth = np.full((H, W), np.inf, np.float32)
    instance = np.zeros((H, W), np.int32)
    normals = np.zeros((H, W, 3), np.float32)
    color = np.zeros((H, W, 3), np.uint8)
    blank = RenderResult(composite(color, instance, background), depth, instance, normals)
    if not meshes or sum(len(m.faces) for m in meshes) == 0:
        return blank

    corners, inst = _pack(meshes)
    corners, source = clip_near(corners, near)
    inst = inst[source]
    z = corners[..., 2]
    u = (K[0, 0] * corners[..., 0] + K[0, 1] * corners[..., 1]) / z + K[0, 2]
    v = K[1, 1] * corners[..., 1] / z + K[1, 2]
    x0 = np.maximum(np.ceil(u.min(1)), 0)
    x1 = np.minimum(np.floor(u.max(1)), W - 1)
    y0 = np.maximum(np.ceil(v.min(1)), 0)
    y1 = np.minimum(np.floor(v.max(1)), H - 1)
    # barycentric b_k = coef[:, k] . (col - x0, row - y0, 1), local to the bounding box so that
    # float32 keeps sub-pixel precision; edge k is opposite corner k
    u, v = u - x0[:, None], v - y0[:, None]
    u1, u2, v1, v2 = np.roll(u, -1, 1), np.roll(u, -2, 1), np.roll(v, -1, 1), np.roll(v, -2, 1)
    coef = np.stack([v1 - v2, u2 - u1, u1 * v2 - u2 * v1], axis=2)  # (T, 3 corners, 3)
    area2 = coef[:, :, 2].sum(1)  # twice the signed area; > 0 means the back faces the camera
    ids = np.nonzero((np.abs(area2) > 1e-12) & (x1 >= x0) & (y1 >= y0))[0]
    if not len(ids):
        return blank
    coef = coef[ids] / area2[ids, None, None]
    inv_z = np.einsum("tkc,tk->tc", coef, 1.0 / z[ids])  # 1/z is affine in screen space
    edge32 = np.ascontiguousarray(coef.transpose(1, 2, 0), dtype=np.float32)  # (3 corners, 3, T)
    x0, y0 = x0[ids].astype(np.int64), y0[ids].astype(np.int64)
    bw = x1[ids].astype(np.int64) - x0 + 1
    counts = bw * (y1[ids].astype(np.int64) - y0 + 1)

    # test all candidates chunk by chunk, keeping those inside and between near and far
    hits = []
    cum = np.cumsum(counts)
    cuts = np.searchsorted(cum, np.arange(1, cum[-1] // _CHUNK + 1) * _CHUNK, side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [len(ids)]]))
    for start, end in zip(bounds[:-1], bounds[1:]):
        t, lx, ly = _candidates(bw[start:end], counts[start:end])
        t += start
        fx, fy = lx.astype(np.float32), ly.astype(np.float32)
        inside = edge32[0, 0, t] * fx + edge32[0, 1, t] * fy + edge32[0, 2, t] >= 0
        for k in (1, 2):
            inside &= edge32[k, 0, t] * fx + edge32[k, 1, t] * fy + edge32[k, 2, t] >= 0
        t, lx, ly = t[inside], lx[inside], ly[inside]
        zz = 1.0 / (inv_z[t, 0] * lx + inv_z[t, 1] * ly + inv_z[t, 2])
        valid = (zz >= near) & (zz <= far)
        hits.append((t[valid], (y0[t] + ly)[valid] * W + (x0[t] + lx)[valid], zz[valid]))
    t, pix, zz = (np.concatenate(h) for h in zip(*hits))
    if not len(t):
        return blank

    # z-buffer: the nearest candidate per pixel wins (ties: any one of them)
    zbuf = np.full(H * W, np.inf)
    np.minimum.at(zbuf, pix, zz)
    win = zz == zbuf[pix]
    owner = np.full(H * W, -1, np.int64)
    owner[pix[win]] = t[win]
    pix = np.nonzero(owner >= 0)[0]
    t = owner[pix]
    zp = zbuf[pix]

    # perspective-correct interpolation, for the winners only
    lx, ly = pix % W - x0[t], pix // W - y0[t]
    b = coef[t, :, 0] * lx[:, None] + coef[t, :, 1] * ly[:, None] + coef[t, :, 2]
    tri = ids[t]
    a = np.einsum("nk,nkc->nc", b / z[tri] * zp[:, None], corners[tri])
    n = a[:, 3:6] / np.maximum(np.linalg.norm(a[:, 3:6], axis=1, keepdims=True), 1e-12)
    n *= np.where(area2[tri] > 0, -1.0, 1.0)[:, None]  # two-sided: turn back faces to the camera
    rgb = shade(a[:, 6:9], n, a[:, :3], lights)

    depth.reshape(-1)[pix] = zp
    instance.reshape(-1)[pix] = inst[tri]
    normals.reshape(-1, 3)[pix] = n
    color.reshape(-1, 3)[pix] = np.rint(rgb * 255).astype(np.uint8)
    return RenderResult(composite(color, instance, background), depth, instance, normals)
