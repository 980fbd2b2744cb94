"""M3DHMR training datasets: batch keys/shapes/units, exact two-view transforms, determinism, stream."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from handrecon.data import DatasetError
from handrecon.models.m3dhmr.data import BATCH_KEYS, M3DHMRCrops, M3DHMRStream
from handrecon.data.synth import preset
from handrecon.data.synth.writer import generate
from handrecon.registry import DATASETS

CFG = preset("crop", image_size=(64, 64), p_left=0.5)
S = 48


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_crops")
    generate(out, CFG, 6, seed=3, shard_size=3, progress=False)
    return out


def project(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    uv = X @ K.T
    return uv[:, :2] / uv[:, 2:]


def check_view(v: dict, V: int = 778) -> None:
    shapes = {"image": (3, S, S), "joints_2d": (21, 2), "verts_3d": (V, 3), "joints_3d": (21, 3), "K": (3, 3), "root": (3,),
              "box": (4,)}
    assert {k: tuple(v[k].shape) for k in BATCH_KEYS} == shapes
    assert all(v[k].dtype == torch.float32 for k in BATCH_KEYS)
    assert v["image"].abs().max() < 3.0  # ImageNet-normalised, not 0-255
    # root-relative metres in the crop camera: joint 0 at the origin, a hand is ~0.1-0.25 m long
    assert torch.allclose(v["joints_3d"][0], torch.zeros(3))
    assert 0.05 < float(v["verts_3d"].norm(dim=-1).max()) < 0.3
    assert 0.1 < float(v["root"][2]) < 5.0
    # the crop camera K projects the 3D joints onto the 2D joints (crop pixels)
    torch.testing.assert_close(project(v["joints_3d"] + v["root"], v["K"]), v["joints_2d"], atol=1e-2, rtol=0)
    # the box (the validation PCK normaliser) is the hand's extent in crop pixels: it holds the
    # visible joints, within the crop
    box, uv = v["box"], v["joints_2d"]
    inside = (uv >= -0.5).all(-1) & (uv <= S - 0.5).all(-1)
    assert (box[:2] >= -0.5).all() and (box[2:] <= S - 0.5).all() and (box[2:] > box[:2]).all()
    assert (uv[inside] >= box[:2] - 1.0).all() and (uv[inside] <= box[2:] + 1.0).all()


def test_registered_and_keys_shapes_units(root):
    assert DATASETS.get("m3dhmr_crops") is M3DHMRCrops and DATASETS.get("m3dhmr_stream") is M3DHMRStream
    ds = M3DHMRCrops(root, input_size=S)
    assert len(ds) == 6
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == set(BATCH_KEYS) | {"view2", "view2_R", "view2_affine"}
        check_view(item)
        check_view(item["view2"])
        assert item["view2_R"].shape == (3, 3) and item["view2_affine"].shape == (2, 3)


def test_two_view_transforms_undo_exactly(root):
    ds = M3DHMRCrops(root, input_size=S, rotation_deg=60.0)
    for i in range(len(ds)):
        a = ds[i]
        b, R, A = a["view2"], a["view2_R"], a["view2_affine"]
        assert abs(float(torch.det(R)) - 1.0) < 1e-5  # a rotation: flips apply to both views or neither
        for key in ("joints_3d", "verts_3d"):  # camera-space points map with R; the wrist offset too
            X1 = a[key] + a["root"]
            torch.testing.assert_close(X1 @ R.T, b[key] + b["root"], atol=1e-5, rtol=0)
        torch.testing.assert_close(a["joints_2d"] @ A[:, :2].T + A[:, 2], b["joints_2d"], atol=1e-3, rtol=0)
    # the two views are different crops of the same image
    assert not torch.allclose(ds[0]["image"], ds[0]["view2"]["image"])


def signed_volume(verts, faces) -> float:
    """Signed volume of the mesh: its sign says whether the vertices are mirrored (left) or not."""
    v = np.asarray(verts, np.float64)[faces]
    return float(np.linalg.det(v).sum() / 6.0)


def test_left_hands_are_mirrored_to_right(root):
    from handrecon.data.loaders import build_dataset
    from handrecon.hand.openhand import load_openhand

    faces = load_openhand().faces
    raw = build_dataset("synthetic", root)
    raw_sign = {h.side: np.sign(signed_volume(h.vertices, faces)) for h in (raw[i].hands[0] for i in range(len(raw)))}
    assert set(raw_sign) == {"left", "right"} and raw_sign["left"] == -raw_sign["right"], "fixture should hold both sides"
    ds = M3DHMRCrops(root, input_size=S)
    for i in range(len(ds)):
        for view in (ds[i], ds[i]["view2"]):
            assert np.sign(signed_volume(view["verts_3d"].numpy(), faces)) == raw_sign["right"]


def test_deterministic_per_seed_epoch_index(root):
    a, b = M3DHMRCrops(root, input_size=S, seed=1), M3DHMRCrops(root, input_size=S, seed=1)
    for k in ("image", "joints_2d", "verts_3d"):
        assert torch.equal(a[2][k], b[2][k])
    b.set_epoch(1)
    assert not torch.equal(a[2]["joints_2d"], b[2]["joints_2d"])  # a new augmentation each epoch
    assert not torch.equal(a[2]["joints_2d"], M3DHMRCrops(root, input_size=S, seed=2)[2]["joints_2d"])
    # validation crops: no second view, the same whatever the epoch, the centre of the scale range
    v = M3DHMRCrops(root, split="val", val_shards=1, input_size=S, augment=False, limit=2)
    assert len(v) == 2 and "view2" not in v[0]
    first = v[1]
    v.set_epoch(5)
    assert torch.equal(first["image"], v[1]["image"])
    check_view(first)


def test_collates_into_a_model_batch(root):
    ds = M3DHMRCrops(root, input_size=S)
    batch = next(iter(DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, S, S) and batch["view2"]["verts_3d"].shape == (3, 778, 3)
    assert batch["view2_R"].shape == (3, 3, 3) and batch["view2_affine"].shape == (3, 2, 3)


def test_stream_renders_deterministic_items():
    cfg_kw = dict(image_size=(64, 64), input_size=S, two_views=False, seed=4)
    s1, s2 = M3DHMRStream(**cfg_kw), M3DHMRStream(**cfg_kw)
    s1.set_position(0, 0, 2)
    s2.set_position(0, 0, 2)
    x = list(itertools.islice(iter(s1), 3))
    y = list(itertools.islice(iter(s2), 3))
    for a, b in zip(x, y):
        assert set(a) == set(BATCH_KEYS)
        check_view(a)
        assert torch.equal(a["image"], b["image"])
    assert not torch.equal(x[0]["image"], x[1]["image"])
    s2.set_position(0, 1, 2)  # resume at batch 1 = items 2, 3 of the uninterrupted stream
    assert torch.equal(next(iter(s2))["image"], x[2]["image"])


def test_clear_error_without_data(tmp_path):
    with pytest.raises(DatasetError, match="meta.json: not found.*handrecon synth"):
        M3DHMRCrops(tmp_path)


def test_several_roots_concatenate_in_order(root, tmp_path):
    other = tmp_path / "other"
    generate(other, CFG, 6, seed=4, shard_size=3, progress=False)
    one, two = M3DHMRCrops(root, input_size=S, augment=False), M3DHMRCrops(other, input_size=S, augment=False)
    both = M3DHMRCrops([root, other, other], input_size=S, augment=False)
    assert len(both) == len(one) + 2 * len(two) == 18
    assert torch.equal(both[1]["joints_2d"], one[1]["joints_2d"])
    assert torch.equal(both[len(one)]["joints_2d"], two[0]["joints_2d"])
    assert torch.equal(both[len(one) + len(two)]["joints_2d"], two[0]["joints_2d"])
    # "val" is the last shard of each folder
    assert len(M3DHMRCrops([root, other], split="val", input_size=S)) == 3 + 3
    with pytest.raises(ValueError, match="empty list of roots"):
        M3DHMRCrops([], input_size=S)
