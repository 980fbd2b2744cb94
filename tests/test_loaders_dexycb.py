"""DexYCB loader on a tiny fixture tree in the real layout: official splits, order, no-hand frames."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml
from test_loaders_ho3d import write_fake_mano

from handrecon.data import DatasetError
from handrecon.data.loaders import build_dataset, common
from handrecon.data.loaders.dexycb import SERIALS, SUBJECTS, split_selection

SEQS, FRAMES = 5, 2  # per subject / per sequence (the real dataset has 100 sequences)


def seq_name(s):
    return f"20200709_1416{s:02d}"


def write_dexycb(root, hand_frames):
    """All label files; `hand_frames` maps (subject idx, seq idx, serial idx, frame) -> pose_m seed."""
    rng = np.random.default_rng(0)
    intr = root / "calibration" / "intrinsics"
    intr.mkdir(parents=True)
    for c, serial in enumerate(SERIALS):
        (intr / f"{serial}_640x480.yml").write_text(yaml.safe_dump(
            {"color": {"fx": 600.0 + c, "fy": 601.0, "ppx": 320.0, "ppy": 240.0}, "depth": {"fx": 1.0}}))
    for calib in ("20200709-subject-01_left", "x_right"):
        (root / "calibration" / f"mano_{calib}").mkdir(parents=True)
        (root / "calibration" / f"mano_{calib}" / "mano.yml").write_text(yaml.safe_dump({"betas": rng.normal(size=10).tolist()}))
    labels = {}
    for a, subject in enumerate(SUBJECTS):
        for s in range(SEQS):
            seq = root / subject / seq_name(s)
            seq.mkdir(parents=True)
            side = "left" if s % 2 == 0 else "right"
            calib = "20200709-subject-01_left" if side == "left" else "x_right"
            (seq / "meta.yml").write_text(yaml.safe_dump(
                {"num_frames": FRAMES, "mano_sides": [side], "mano_calib": [calib], "ycb_ids": [1, 2], "ycb_grasp_ind": 0}))
            for c, serial in enumerate(SERIALS):
                (seq / serial).mkdir()
                for f in range(FRAMES):
                    j3d, j2d, pose_m = -np.ones((1, 21, 3)), -np.ones((1, 21, 2)), np.zeros((1, 51))
                    if (a, s, c, f) in hand_frames:
                        r = np.random.default_rng(hand_frames[(a, s, c, f)])
                        j3d = r.normal(size=(1, 21, 3)) * 0.03 + [0, 0, 0.7]
                        j2d = r.uniform(100, 400, size=(1, 21, 2))
                        pose_m = r.normal(size=(1, 51)) * 0.5
                        labels[(a, s, c, f)] = (j3d[0], j2d[0], pose_m[0])
                    np.savez(seq / serial / f"labels_{f:06d}.npz", joint_3d=j3d.astype(np.float32),
                             joint_2d=j2d.astype(np.float32), pose_m=pose_m.astype(np.float32))
    return labels


@pytest.fixture(scope="module")
def dex(tmp_path_factory):
    root = tmp_path_factory.mktemp("dexycb")
    labels = write_dexycb(root, {(0, 0, 0, 1): 1, (0, 1, 2, 0): 2, (1, 4, 3, 1): 3})
    return root, labels


def test_official_split_selection():
    subj, ser, seq = split_selection("s0", "train")
    assert len(subj) == 10 and len(ser) == 8 and seq[:5] == [0, 1, 2, 3, 5] and len(seq) == 80
    assert split_selection("s0", "test")[0] == list(SUBJECTS[2:]) and split_selection("s0", "val")[2][:2] == [4, 9]
    assert split_selection("s1", "train")[0] == [SUBJECTS[i] for i in (0, 1, 2, 3, 4, 5, 9)]
    assert split_selection("s1", "val")[0] == [SUBJECTS[6]] and split_selection("s1", "test")[0] == [SUBJECTS[7], SUBJECTS[8]]
    assert split_selection("s2", "train")[1] == list(SERIALS[:6]) and split_selection("s2", "test")[1] == [SERIALS[7]]
    s3 = {k: split_selection("s3", k)[2] for k in ("train", "val", "test")}
    assert s3["val"] == list(range(15, 20)) + list(range(95, 100)) and len(s3["test"]) == 15 and len(s3["train"]) == 75
    assert not set(s3["train"]) & (set(s3["val"]) | set(s3["test"]))
    with pytest.raises(ValueError, match="s0-s3"):
        split_selection("s4", "train")


def test_split_sizes_and_official_order(dex, caplog):
    root, _ = dex
    common._warned.difference_update({k for k in common._warned if k.startswith("dexycb-count")})
    with caplog.at_level(logging.WARNING, logger="handrecon.data"):
        train = build_dataset("dexycb", root, "s0_train")
    assert any("5 sequences instead of 100" in r.message for r in caplog.records)
    assert len(train) == 10 * 4 * 8 * FRAMES  # positions 0-3 of 5 (position 4 is held out)
    assert len(build_dataset("dexycb", root, "s0_val")) == 2 * 1 * 8 * FRAMES
    assert len(build_dataset("dexycb", root, "s1_test")) == 2 * SEQS * 8 * FRAMES
    assert len(build_dataset("dexycb", root, "s2_val")) == 10 * SEQS * 1 * FRAMES
    # order: subject -> sequence -> camera -> frame
    parts = [train[i].image_path.relative_to(root).parts for i in range(3)]
    assert parts[0] == (SUBJECTS[0], seq_name(0), SERIALS[0], "color_000000.jpg")
    assert parts[1][2:] == (SERIALS[0], "color_000001.jpg") and parts[2][2:] == (SERIALS[1], "color_000000.jpg")
    assert train[8 * FRAMES].image_path.parts[-3] == seq_name(1)


def test_hand_and_no_hand_frames(dex):
    root, labels = dex
    ds = build_dataset("dexycb", root, "s0_train")
    empty = ds[0]
    assert empty.hands == [] and empty.meta["index"] == 0 and empty.sample_id == "s0_train/0"
    s = ds[1]  # subject 0, sequence 0 (left hand), serial 0, frame 1
    j3d, j2d, pose_m = labels[(0, 0, 0, 1)]
    h = s.hands[0]
    assert h.side == "left" and h.vertices is None and h.pose is None
    np.testing.assert_allclose(h.keypoints_3d, j3d, rtol=1e-6)
    np.testing.assert_allclose(h.keypoints_2d, j2d, rtol=1e-6)
    np.testing.assert_allclose(h.meta["pose_m"], pose_m, rtol=1e-6)
    np.testing.assert_allclose(h.box, [*j2d.min(0), *j2d.max(0)], rtol=1e-6)
    np.testing.assert_allclose(s.K, [[600, 0, 320], [0, 601, 240], [0, 0, 1]])
    calib = yaml.safe_load((root / "calibration" / "mano_20200709-subject-01_left" / "mano.yml").read_text())
    np.testing.assert_allclose(h.shape, calib["betas"], rtol=1e-6)
    right = ds[FRAMES * 8 + 2 * FRAMES].hands[0]  # sequence 1 (right), serial 2, frame 0
    assert right.side == "right"


def test_drop_empty_keeps_official_indices(dex):
    root, _ = dex
    ds = build_dataset("dexycb", root, "s0_train", drop_empty=True)
    assert len(ds) == 2  # (1, 4, ...) is sequence position 4: held out of s0_train
    assert [ds[i].meta["index"] for i in range(2)] == [1, 8 * FRAMES + 2 * FRAMES]
    assert all(ds[i].hands for i in range(2))


def _rodrigues(r):
    theta = np.linalg.norm(r) + 1e-12
    k = r / theta
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * Kx + (1 - np.cos(theta)) * Kx @ Kx


def manopth_vertices(arr, pose_m, betas):
    """manopth's ManoLayer(use_pca=True, ncomps=45, flat_hand_mean=False), written out in numpy per
    joint: the DexYCB reference for its `pose_m` labels (root rotation, 45 PCA coefficients, trans)."""
    pose = np.concatenate([pose_m[:3], arr["hands_mean"] + pose_m[3:48] @ arr["hands_components"]]).reshape(16, 3)
    v_shaped = arr["v_template"] + arr["shapedirs"] @ betas
    J = arr["J_regressor"] @ v_shaped
    Rs = [_rodrigues(p) for p in pose]
    v_posed = v_shaped + arr["posedirs"] @ np.concatenate([(R - np.eye(3)).ravel() for R in Rs[1:]])
    parents = arr["kintree_table"][0]
    G = [None] * 16
    for j in range(16):
        local = np.eye(4)
        local[:3, :3] = Rs[j]
        local[:3, 3] = J[j] - (J[parents[j]] if j else 0)
        G[j] = local if j == 0 else G[parents[j]] @ local
    skin = np.zeros((len(v_shaped), 4, 4))
    for j in range(16):
        A = G[j].copy()
        A[:3, 3] -= G[j][:3, :3] @ J[j]
        skin += arr["weights"][:, j, None, None] * A
    v = np.einsum("vij,vj->vi", skin[:, :3], np.c_[v_posed, np.ones(len(v_posed))])
    return v + pose_m[48:]


def test_mano_pca_expansion_left_and_right(dex, tmp_path):
    """Vertices from the `pose_m` labels equal manopth's layer evaluated independently in numpy
    (with the subject's calibrated betas), for both sides (the left file is the right one mirrored)."""
    root, labels = dex
    right_arr, left_arr = write_fake_mano(tmp_path, left=True)
    ds = build_dataset("dexycb", root, "s0_train", mano_dir=tmp_path)
    for idx, key, arr, side in ((1, (0, 0, 0, 1), left_arr, "left"), (8 * FRAMES + 2 * FRAMES, (0, 1, 2, 0), right_arr, "right")):
        h = ds[idx].hands[0]
        assert h.side == side
        pose_m = labels[key][2].astype(np.float64)
        fingers = arr["hands_mean"] + pose_m[3:48] @ arr["hands_components"]  # manopth, native frame of the side
        np.testing.assert_allclose(h.pose[1:].ravel(), fingers, atol=1e-4)
        np.testing.assert_allclose(h.pose[0], pose_m[:3], atol=1e-6)
        np.testing.assert_allclose(h.transl, pose_m[48:], atol=1e-6)
        np.testing.assert_allclose(h.vertices, manopth_vertices(arr, pose_m, np.asarray(h.shape, np.float64)), atol=2e-5)
        assert np.abs(h.vertices - arr["v_template"]).max() > 0.01  # posed and moved: the check has teeth


def test_errors(dex, tmp_path):
    with pytest.raises(DatasetError, match=r"836212060125_640x480\.yml: YAML file not found"):
        build_dataset("dexycb", tmp_path, "s0_train")
    damaged = tmp_path / "damaged"
    write_dexycb(damaged, {(0, 0, 0, 1): 1})
    ds = build_dataset("dexycb", damaged, "s0_train")
    for label in damaged.rglob("labels_000001.npz"):  # a label file cut short in a copy: one line naming it
        label.write_bytes(label.read_bytes()[:100])
    with pytest.raises(DatasetError, match=r"labels_000001\.npz: not a readable DexYCB label file"):
        ds[1]
    root, _ = dex
    with pytest.raises(DatasetError, match=r"MANO_RIGHT\.pkl: MANO model file not found"):
        build_dataset("dexycb", root, "s0_val", mano_dir=tmp_path)
