"""Synthetic format: writer/reader round trip, atomic shards, resume checks."""

from __future__ import annotations

import numpy as np
import pytest

from handrecon.data import DatasetError, HandAnnotation
from handrecon.data.loaders import build_dataset
from handrecon.data.synthetic_format import (
    ShardWriter,
    init_output,
    list_complete_shards,
    make_meta,
    read_meta,
)

V = 50


def make_hand(rng, side, with_vertices=True):
    kp3 = rng.normal(size=(21, 3)).astype(np.float32) * 0.03 + [0, 0, 0.6]
    verts = (rng.normal(size=(V, 3)) * 0.04 + kp3[0]).astype(np.float32) if with_vertices else None
    return HandAnnotation(
        side=side,
        box=[1, 2, 30, 40],
        keypoints_2d=rng.uniform(0, 32, size=(21, 2)),
        visibility=(rng.random(21) > 0.3).astype(np.float32),
        keypoints_3d=kp3,
        vertices=verts,
        pose=rng.normal(size=(16, 3)) * 0.1,
        shape=rng.normal(size=10),
        transl=[0.01, -0.02, 0.6],
    )


def write_dataset(out, n_shards=3, per_shard=2, image_format="png"):
    rng = np.random.default_rng(0)
    init_output(out, make_meta("crop", 5, n_shards * per_shard, per_shard, "openhand", "abc", image_format))
    written = []
    for s in range(n_shards):
        with ShardWriter(out, s, image_format=image_format) as w:
            for i in range(per_shard):
                img = rng.integers(0, 255, size=(32, 24, 3), dtype=np.uint8)
                hands = [make_hand(rng, "right"), make_hand(rng, "left", with_vertices=i == 0)]
                K = np.array([[100, 0, 12], [0, 100, 16], [0, 0, 1]], np.float32)
                w.add(img, K, hands)
                written.append((img, K, hands))
    return written


def test_round_trip(tmp_path):
    written = write_dataset(tmp_path)
    ds = build_dataset("synthetic", tmp_path)
    assert len(ds) == len(written) == 6
    assert read_meta(tmp_path)["num_shards"] == 3
    for (img, K, hands), s in zip(written, (ds[i] for i in range(len(ds)))):
        np.testing.assert_array_equal(s.image, img)  # png is lossless
        np.testing.assert_allclose(s.K, K)
        assert [h.side for h in s.hands] == ["right", "left"] and s.source == "synthetic"
        for a, b in zip(hands, s.hands):
            for f in ("box", "keypoints_2d", "keypoints_3d", "visibility", "pose", "shape", "transl"):
                np.testing.assert_allclose(getattr(b, f), getattr(a, f), atol=1e-5, err_msg=f)
            if a.vertices is None:
                assert b.vertices is None
            else:  # float16 wrist-relative storage: well under 0.1 mm
                assert np.abs(b.vertices - a.vertices).max() < 1e-4
            assert b.hand_model == "openhand"


def test_jpg_and_splits(tmp_path):
    write_dataset(tmp_path, image_format="jpg")
    assert len(build_dataset("synthetic", tmp_path, "train")) == 4
    val = build_dataset("synthetic", tmp_path, "val")
    assert len(val) == 2 and val[0].meta["shard"] == 2
    assert val[0].image.shape == (32, 24, 3)


def test_interrupted_shard_leaves_nothing_complete(tmp_path):
    write_dataset(tmp_path, n_shards=1)
    rng = np.random.default_rng(1)
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(tmp_path, 1) as w:
            w.add(np.zeros((8, 8, 3), np.uint8), np.eye(3), [make_hand(rng, "right")])
            raise RuntimeError("boom")
    assert list_complete_shards(tmp_path) == [0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json", "shard_00000"]
    # a crash that leaves a temp folder behind (kill -9): not listed, cleaned on the next init
    (tmp_path / ".shard_00001.tmp-x").mkdir()
    (tmp_path / ".shard_00001.tmp-x" / "annotations.json").write_text("{}")
    assert list_complete_shards(tmp_path) == [0]
    init_output(tmp_path, read_meta(tmp_path))
    assert not (tmp_path / ".shard_00001.tmp-x").exists()
    assert len(build_dataset("synthetic", tmp_path)) == 2


def test_resume_rules(tmp_path):
    write_dataset(tmp_path, n_shards=1)
    with pytest.raises(DatasetError, match="already exists"):
        with ShardWriter(tmp_path, 0):
            pass
    other = make_meta("crop", 6, 2, 2, "openhand", "abc", "png")
    with pytest.raises(DatasetError, match=r"\(seed: 5 -> 6\); use a new --out folder"):
        init_output(tmp_path, other)


def test_reader_errors(tmp_path):
    with pytest.raises(DatasetError, match="meta.json: not found"):
        build_dataset("synthetic", tmp_path)
    write_dataset(tmp_path, n_shards=1)
    vertices = tmp_path / "shard_00000" / "vertices.npz"
    intact = vertices.read_bytes()
    for damaged in (b"garbage", b"", intact[: len(intact) // 2]):  # not a zip, empty, cut short in a copy
        vertices.write_bytes(damaged)
        with pytest.raises(DatasetError, match=r"vertices\.npz: not a readable vertex file"):
            build_dataset("synthetic", tmp_path)[0]
    with pytest.raises(DatasetError, match="topology"):
        build_dataset("synthetic", tmp_path, expected_topology_hash="other")


def test_shuffled_access_reads_each_vertex_file_once(tmp_path, monkeypatch):
    """Random-order training access must not re-read a shard's vertices per sample (it did: one
    shard cached, 65 ms per sample on 500-image shards), and the LRU bound is respected."""
    import handrecon.data.loaders.synthetic as synthetic_loader

    write_dataset(tmp_path, n_shards=3, per_shard=4)
    fresh = synthetic_loader.SyntheticDataset(tmp_path, cache_shards=1)  # sequential reads, before the spy
    expected = {i: fresh[i].hands[0].vertices.copy() for i in range(len(fresh))}
    reads = []
    real = synthetic_loader.read_shard_vertices
    monkeypatch.setattr(synthetic_loader, "read_shard_vertices", lambda d: reads.append(d) or real(d))
    ds = build_dataset("synthetic", tmp_path)
    order = np.random.default_rng(1).permutation(np.tile(np.arange(len(ds)), 3))
    for i in order:
        np.testing.assert_array_equal(ds[int(i)].hands[0].vertices, expected[int(i)])
    assert len(reads) == 3
    small = synthetic_loader.SyntheticDataset(tmp_path, cache_shards=1)
    reads.clear()
    for i in (0, 4, 0):  # shards 0, 1, 0 with room for one
        small[i]
    assert len(reads) == 3 and len(small._vertex_cache) == 1
