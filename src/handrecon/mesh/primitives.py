"""Small procedural meshes with known structure (for tests, examples and benchmarks), and tube
connectivity (also the synthetic engine's forearms)."""

from __future__ import annotations

import numpy as np


def hex_patch() -> tuple[np.ndarray, np.ndarray]:
    """Flat hexagonal patch in z=0, 19 vertices, 24 CCW faces (normals +z).

    0 is the centre; 1..6 ring 1 CCW from +x; 7..18 ring 2 CCW from (2,0,0), alternating corners
    (odd) and edge midpoints (even).
    """
    ang = np.deg2rad(np.arange(6) * 60.0)
    r1 = np.stack([np.cos(ang), np.sin(ang), np.zeros(6)], 1)
    corners = 2 * r1
    mids = (corners + np.roll(corners, -1, 0)) / 2
    v = np.concatenate([np.zeros((1, 3)), r1, np.stack([corners, mids], 1).reshape(12, 3)])
    f = []
    for s in range(6):
        a, b = 1 + s, 1 + (s + 1) % 6
        c0, m, c1 = 7 + 2 * s, 8 + 2 * s, 7 + (2 * s + 2) % 12
        f += [(0, a, b), (a, c0, m), (a, m, b), (b, m, c1)]
    return v, np.array(f, dtype=np.int64)


def tube_faces(rings: int, sections: int, closed_end: bool = True) -> np.ndarray:
    """Faces of a tube of `rings` rings of `sections` vertices each (ring r holds vertices
    r * sections .. r * sections + sections - 1, in order round the ring), quads split in two;
    with `closed_end` the last ring is capped by a fan round one more vertex, rings * sections."""
    i = np.arange(rings - 1)[:, None] * sections
    j = np.arange(sections)[None]
    a, b = i + j, i + (j + 1) % sections
    c, d = a + sections, b + sections
    f = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    if closed_end:
        top = (rings - 1) * sections + np.arange(sections)
        f = np.concatenate([f, np.stack([top, np.roll(top, -1), np.full(sections, rings * sections)], 1)])
    return f.astype(np.int64)


def open_tube(rings: int = 8, sections: int = 16, length: float = 1.0, radius: float = 0.2,
              closed_end: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Cylinder along +z, open at z=0 (like a hand at the wrist), optionally capped at z=length
    by a fan around one tip vertex. Faces CCW seen from outside."""
    t = 2 * np.pi * np.arange(sections) / sections
    z = np.linspace(0, length, rings)
    v = np.stack([np.tile(radius * np.cos(t), rings), np.tile(radius * np.sin(t), rings), np.repeat(z, sections)], 1)
    if closed_end:
        v = np.concatenate([v, [[0.0, 0.0, length + radius]]])
    return v, tube_faces(rings, sections, closed_end)
