"""`eval.runner.evaluate`: protocol, submission file and metrics on tiny FreiHAND / synthetic sets.

A ground-truth oracle in place of the network proves the protocol end to end (crops around GT
boxes, sides, K, root recovery, ordering): its metrics must be perfect. A random-weights model
checks the FreiHAND path, the topology rule and the no-ground-truth case."""

from __future__ import annotations

import dataclasses

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_loaders_freihand import write_freihand
from test_predictor import tiny_checkpoint

import handrecon
from handrecon.data.loaders import build_dataset
from handrecon.data.schema import HandAnnotation
from handrecon.data.synthetic_format import ShardWriter, init_output, make_meta
from handrecon.eval.metrics import pa_mpjpe
from handrecon.eval.runner import SIDES_GIVEN_NOTE, evaluate
from handrecon.eval.submission import load_freihand_submission
from handrecon.geometry.camera import intrinsics, project
from handrecon.hand.model import HandModel
from handrecon.infer.predictor import Predictor


def write_synthetic(root, n_shards=2, per_shard=2, outside: bool = False):
    """Images with one or two posed OpenHand hands each, exact 2D/3D/K ground truth; `outside`:
    each image also holds a right hand entirely left of the frame (the engine draws such hands).
    Each hand's meta names its side's pose kind ("fist" right, "open" left) and each image's its
    shard's background ("photo" in shard 0, "procedural" after), as the engine records them."""
    models = {s: HandModel.openhand(s) for s in ("right", "left")}
    g = torch.Generator().manual_seed(0)
    init_output(root, make_meta("crop", 0, n_shards * per_shard, per_shard, "openhand", "test", "png"))
    K = intrinsics(150.0, 150.0, 63.5, 47.5)
    for s in range(n_shards):
        with ShardWriter(root, s, image_format="png", vertex_dtype="float32") as w:
            for i in range(per_shard):
                hands = []
                places = [(side, 0.06 * (2 * j - 1)) for j, side in enumerate(("right", "left")[: 1 + (i + s) % 2])]
                for side, x in places + ([("right", -0.6)] if outside else []):
                    pose = torch.randn(1, models[side].num_joints, 3, generator=g) * 0.15
                    out = models[side](pose, transl=torch.tensor([[x, 0.01, 0.5]]))
                    verts, joints = out.vertices[0].numpy(), out.joints[0].numpy()
                    uv = project(verts, K)
                    hands.append(HandAnnotation(side=side, box=np.r_[uv.min(0), uv.max(0)], keypoints_2d=project(joints, K),
                                                visibility=np.ones(21), keypoints_3d=joints, vertices=verts,
                                                hand_model="openhand",
                                                meta={"pose_kind": "fist" if side == "right" else "open"}))
                w.add(np.random.default_rng(i).integers(0, 256, (96, 128, 3), dtype=np.uint8), K, hands,
                      extra={"background": "photo" if s == 0 else "procedural"})


class Oracle(Predictor):
    """A Predictor whose 'network' returns the ground truth of the queued hands in the crop views
    it is given (so every metric must be perfect)."""

    def __init__(self, base: Predictor, queue: list[tuple[np.ndarray, np.ndarray]]) -> None:
        super().__init__(base.adapter, self.oracle, True, base.card, "oracle")
        self.queue = list(queue)

    def prepare(self, *args):
        self.prepared = super().prepare(*args)
        return self.prepared

    def ground_truth(self, view: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(verts, joints) in the camera frame of the hand whose crop view this is."""
        return self.queue.pop(0)

    def oracle(self, inputs):
        out = {"uv_px": [], "verts": [], "joints": []}
        for image_hands in self.prepared.views:
            for view in (v for hand in image_hands for v in hand.views):
                verts, joints = self.ground_truth(view.image)
                X, V = joints @ view.R.T, verts @ view.R.T  # camera frame -> view frame (mirror included)
                out["uv_px"].append(project(X, view.K))
                out["joints"].append(X - X[0])
                out["verts"].append(V - X[0])
        return {k: np.stack(v).astype(np.float32) for k, v in out.items()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tiny_checkpoint(tmp_path_factory.mktemp("ck") / "ck")
    return path, handrecon.load(path, second_look=False)  # the oracles' network has no heatmap peaks


def test_oracle_on_synthetic_scores_perfectly(tmp_path, tiny):
    write_synthetic(tmp_path / "syn")
    ds = build_dataset("synthetic", tmp_path / "syn", "all")
    gt = [(h.vertices.astype(np.float64), h.keypoints_3d.astype(np.float64)) for i in range(len(ds)) for h in ds[i].hands]
    assert len(gt) == 6 and {h.side for i in range(len(ds)) for h in ds[i].hands} == {"left", "right"}
    res = evaluate(Oracle(tiny[1], gt), "synthetic", tmp_path / "syn", split="all", out=tmp_path / "out", batch_size=4)
    m = res.metrics
    assert res.num_samples == 4 and res.num_hands == 6 and res.notes == [SIDES_GIVEN_NOTE]
    assert m["recall"] == m["precision"] == m["side_accuracy"] == 1.0
    assert m["pa_mpjpe_mm"] < 0.01 and m["pa_mpvpe_mm"] < 0.01 and m["mpjpe_mm"] < 0.01
    assert m["root_error_mm"] < 0.01 and m["root_depth_error_mm"] < 0.01
    assert m["f@5"] == 1.0 and m["f@15"] == 1.0 and m["auc"] > 0.99 and m["pck2d@0.1"] == 1.0
    sub = load_freihand_submission(tmp_path / "out" / "pred.json", expected_count=6)  # in item order
    np.testing.assert_allclose(sub.xyz, np.stack([x for _, x in gt]), atol=1e-5)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["metrics"] == pytest.approx(m) and saved["split"] == "all"


def test_read_sides_lets_a_crop_model_read_each_hands_side(tmp_path, tiny):
    """By default a crop model is given each hand's ground-truth side (and the result says so);
    with read_sides it gets the boxes alone, reads the sides itself, and side_accuracy scores that."""
    write_synthetic(tmp_path / "syn")
    given = []

    class Spy:
        hand_model = tiny[1].hand_model

        def predict_batch(self, images, Ks=None, boxes=None, sides=None, batch_size=32):
            given.append(sides)
            results = tiny[1].predict_batch(images, Ks, boxes, sides, batch_size=batch_size)
            for r in results:  # read "sides": every hand called left
                r.hands = [dataclasses.replace(h, side="left") for h in r.hands]
            return results

    told = evaluate(Spy(), "synthetic", tmp_path / "syn", split="all", batch_size=4)
    assert given[-1] is not None and all(s in ("left", "right") for image in given[-1] for s in image)
    assert SIDES_GIVEN_NOTE in told.notes
    read = evaluate(Spy(), "synthetic", tmp_path / "syn", split="all", batch_size=4, read_sides=True)
    assert given[-1] is None and SIDES_GIVEN_NOTE not in read.notes
    ds = build_dataset("synthetic", tmp_path / "syn", "all")
    share = np.mean([h.side == "left" for i in range(len(ds)) for h in ds[i].hands])
    assert 0 < share < 1 and read.metrics["side_accuracy"] == pytest.approx(share)


def test_hands_no_box_prompt_can_show_are_left_out_and_named(tmp_path, tiny):
    """A crop model is given every ground-truth box as its prompt; a hand entirely outside its image
    (no crop can show it) is left out of the prompts and the scores with a note naming it, instead
    of stopping the whole evaluation on a box error."""
    write_synthetic(tmp_path / "syn", outside=True)
    ds = build_dataset("synthetic", tmp_path / "syn", "all")
    hands = [h for i in range(len(ds)) for h in ds[i].hands]
    assert len(hands) == 10 and sum(h.box[2] < 0 for h in hands) == 4
    gt = [(h.vertices.astype(np.float64), h.keypoints_3d.astype(np.float64)) for h in hands if h.box[2] >= 0]
    res = evaluate(Oracle(tiny[1], gt), "synthetic", tmp_path / "syn", split="all", out=tmp_path / "out", batch_size=4)
    assert res.num_hands == 6 and res.metrics["pa_mpjpe_mm"] < 0.01 and res.metrics["recall"] == 1.0
    assert len(res.notes) == 2 and res.notes[0].startswith("4 ground-truth hand(s) left out") and "outside" in res.notes[0]


def test_random_model_on_synthetic_val_split(tmp_path, tiny):
    write_synthetic(tmp_path / "syn")
    res = evaluate(tiny[1], "synthetic", tmp_path / "syn", out=tmp_path / "out")  # default split: val
    assert res.split == "val" and res.num_samples == 2 and res.num_hands == 3  # the held-out last shard: 1 + 2 hands
    assert all(v is not None and np.isfinite(v) for v in res.metrics.values())
    sub = load_freihand_submission(tmp_path / "out" / "pred.json")
    ds = build_dataset("synthetic", tmp_path / "syn", "val")
    gt = np.stack([h.keypoints_3d for i in range(len(ds)) for h in ds[i].hands])
    assert res.metrics["pa_mpjpe_mm"] == pytest.approx(1000 * pa_mpjpe(sub.xyz, gt), rel=1e-9)
    one = evaluate(tiny[1], "synthetic", tmp_path / "syn", out=tmp_path / "one", batch_size=1)
    side_by_side = evaluate(tiny[1], "synthetic", tmp_path / "syn", out=tmp_path / "two", batch_size=1, workers=2)
    assert side_by_side.metrics == pytest.approx(one.metrics, rel=1e-9)  # two batches at once, scored in order
    np.testing.assert_allclose(load_freihand_submission(tmp_path / "two" / "pred.json").xyz,
                               load_freihand_submission(tmp_path / "one" / "pred.json").xyz, atol=1e-9)


class Counting:
    """A predictor's stand-in that counts the batches it passes on: an argument error must come before
    any image reaches the model."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor, self.hand_model, self.batches = predictor, predictor.hand_model, 0

    def predict_batch(self, *args, **kwargs):
        self.batches += 1
        return self.predictor.predict_batch(*args, **kwargs)


def test_by_scores_each_group_of_hands_as_the_whole_set_is(tmp_path, tiny):
    """`by`: the hands grouped by a key of their meta, else of their image's; each group's metrics are
    those of its own hands (recomputed here from pred.json); a key nothing carries is an error before
    any image reaches the model."""
    write_synthetic(tmp_path / "syn")
    ds = build_dataset("synthetic", tmp_path / "syn", "all")
    hands = [(h, ds[i].meta["background"]) for i in range(len(ds)) for h in ds[i].hands]
    whole = evaluate(tiny[1], "synthetic", tmp_path / "syn", split="all", out=tmp_path / "whole", batch_size=4)
    xyz = load_freihand_submission(tmp_path / "whole" / "pred.json").xyz
    gt = np.stack([h.keypoints_3d for h, _ in hands])
    for key, labels in (("pose_kind", [h.meta["pose_kind"] for h, _ in hands]), ("background", [b for _, b in hands])):
        res = evaluate(tiny[1], "synthetic", tmp_path / "syn", split="all", out=tmp_path / key, batch_size=4, by=key)
        assert res.metrics == pytest.approx(whole.metrics, rel=1e-9)  # the whole set's scores unchanged
        groups = res.breakdown["groups"]
        assert res.breakdown["by"] == key and sorted(groups) == sorted(set(labels)) and len(groups) == 2
        for value, group in groups.items():
            rows = [i for i, label in enumerate(labels) if label == value]
            assert group["num_hands"] == len(rows) and "precision" not in group["metrics"]
            assert group["metrics"]["pa_mpjpe_mm"] == pytest.approx(1000 * pa_mpjpe(xyz[rows], gt[rows]), rel=1e-9)
            assert group["metrics"]["recall"] == 1.0
        assert json.loads((tmp_path / key / "metrics.json").read_text())["breakdown"] == json.loads(json.dumps(res.breakdown))
    counting = Counting(tiny[1])
    with pytest.raises(ValueError, match="do not carry the meta key 'skin'.*pose_kind.*background"):
        evaluate(counting, "synthetic", tmp_path / "syn", split="all", by="skin")
    with pytest.raises(ValueError, match="names a meta key"):
        evaluate(counting, "synthetic", tmp_path / "syn", split="all", by=" ")
    assert counting.batches == 0
    shard = tmp_path / "syn" / "shard_00000" / "annotations.json"  # an image's meta holding a mapping: no label
    record = json.loads(shard.read_text())
    record["images"][0]["extra"]["light"] = "sun"
    record["images"][1]["extra"]["light"] = {"kind": "rim"}
    shard.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="meta key 'light' .* holds a dict, not a label"):
        evaluate(tiny[1], "synthetic", tmp_path / "syn", split="all", by="light")


def test_bootstrap_gives_intervals_around_the_metrics_for_the_set_and_each_group(tmp_path, tiny):
    """`bootstrap`: a percentile interval of PA-MPJPE, PA-MPVPE, MPJPE and PCK@0.1 around the set's own numbers, and
    around each `by` group's, saved in metrics.json; the same run twice gives the same intervals; an
    image's hands are resampled together (`write_synthetic`: six images, one or two hands each); a count
    under 100 is an error before any image is read."""
    write_synthetic(tmp_path / "syn", n_shards=3)
    res = evaluate(tiny[1], "synthetic", tmp_path / "syn", split="all", out=tmp_path / "ev", batch_size=4,
                   by="pose_kind", bootstrap=300)
    assert res.intervals["resamples"] == 300 and res.intervals["level"] == 0.95
    assert set(res.intervals["metrics"]) == {"pa_mpjpe_mm", "pa_mpvpe_mm", "mpjpe_mm", "pck2d@0.1"}
    for key, interval in res.intervals["metrics"].items():
        assert interval["value"] == pytest.approx(res.metrics[key], rel=1e-12)
        assert interval["low"] < interval["value"] < interval["high"], (key, interval)
    for group in res.breakdown["groups"].values():
        for key, interval in group["intervals"].items():
            assert interval["value"] == pytest.approx(group["metrics"][key], rel=1e-12)
            assert interval["low"] <= interval["value"] <= interval["high"]
    saved = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert saved["intervals"] == json.loads(json.dumps(res.intervals))
    again = evaluate(tiny[1], "synthetic", tmp_path / "syn", split="all", batch_size=4, bootstrap=300)
    assert again.intervals == res.intervals and again.breakdown is None
    assert evaluate(tiny[1], "synthetic", tmp_path / "syn", split="all", batch_size=4).intervals is None
    counting = Counting(tiny[1])
    with pytest.raises(ValueError, match="resamples must be an integer >= 100"):
        evaluate(counting, "synthetic", tmp_path / "syn", split="all", bootstrap=20)
    assert counting.batches == 0


def test_compare_evaluations_pairs_two_models_on_the_same_hands(tmp_path, tiny):
    """`compare_evaluations`: two `evaluate(bootstrap=...)` folders of the same images give each metric's
    A, B and B − A (here the ground-truth oracle against a random model: B − A < 0 in every mm metric,
    the interval too); a model against itself differs by exactly 0; folders without the per-hand file,
    of other images, or with a corrupt file are errors that say which folder and what to do."""
    from handrecon.eval.runner import DETECTIONS_FILE, PER_HAND_FILE, compare_evaluations

    write_synthetic(tmp_path / "syn", n_shards=3)
    ds = build_dataset("synthetic", tmp_path / "syn", "all")
    gt = [(h.vertices.astype(np.float64), h.keypoints_3d.astype(np.float64)) for i in range(len(ds)) for h in ds[i].hands]
    evaluate(tiny[1], "synthetic", tmp_path / "syn", split="all", out=tmp_path / "a", batch_size=4, bootstrap=200)
    evaluate(Oracle(tiny[1], gt), "synthetic", tmp_path / "syn", split="all", out=tmp_path / "b", batch_size=4,
             bootstrap=200)
    rows = compare_evaluations(tmp_path / "a", tmp_path / "b", 200)
    assert list(rows) == ["pa_mpjpe_mm", "pa_mpvpe_mm", "mpjpe_mm", "pck2d@0.1"]  # METRIC_NAMES' order
    assert not (tmp_path / "a" / DETECTIONS_FILE).exists()  # a crop model given the boxes: no boxes of its own
    saved = {k: json.loads((tmp_path / k / "metrics.json").read_text())["metrics"] for k in "ab"}
    for key, r in rows.items():
        assert r["a"] == pytest.approx(saved["a"][key], rel=1e-9) and r["b"] == pytest.approx(saved["b"][key], rel=1e-9)
        assert r["low"] <= r["difference"] <= r["high"]
        if key.endswith("_mm"):
            assert r["high"] < 0, (key, r)
    same = compare_evaluations(tmp_path / "a", tmp_path / "a", 200)
    assert all(r["difference"] == r["low"] == r["high"] == 0 for r in same.values())
    with pytest.raises(ValueError, match="per_hand.npz: not found; run `handrecon evaluate .* --bootstrap"):
        compare_evaluations(tmp_path / "a", tmp_path / "nowhere")
    evaluate(tiny[1], "synthetic", tmp_path / "syn", split="all", out=tmp_path / "c", batch_size=4, limit=2, bootstrap=200)
    with pytest.raises(ValueError, match="did not score the same hands"):
        compare_evaluations(tmp_path / "a", tmp_path / "c")
    write_synthetic(tmp_path / "other", n_shards=3)  # the same indices, other hands
    shard = tmp_path / "other" / "shard_00000" / "annotations.json"
    record = json.loads(shard.read_text())
    record["images"][0]["hands"][0]["box"][0] += 1.0
    shard.write_text(json.dumps(record))
    evaluate(tiny[1], "synthetic", tmp_path / "other", split="all", out=tmp_path / "d", batch_size=4, bootstrap=200)
    with pytest.raises(ValueError, match="did not score the same hands"):
        compare_evaluations(tmp_path / "a", tmp_path / "d")
    for junk in (b"not an npz", b"", b"PK\x03\x04 broken zip"):
        (tmp_path / "c" / PER_HAND_FILE).write_bytes(junk)
        with pytest.raises(ValueError, match="not a per-hand file"):
            compare_evaluations(tmp_path / "a", tmp_path / "c")
    np.savez(tmp_path / "c" / PER_HAND_FILE, image=np.arange(3))  # readable, but not what evaluate writes
    with pytest.raises(ValueError, match=r"not a per-hand file of `handrecon evaluate --bootstrap` \(no gt_box array\)"):
        compare_evaluations(tmp_path / "a", tmp_path / "c")


class ColourOracle(Oracle):
    """An Oracle that reads which evaluation image it got from the image's colour (instead of the
    queue order), so any slip in K, crop or order shows."""

    def __init__(self, base: Predictor, gt_xyz: np.ndarray, gt_verts: np.ndarray, colours: list[int]) -> None:
        super().__init__(base, [])
        self.hand_model = "mano"
        self.gt_xyz, self.gt_verts, self.colours = gt_xyz, gt_verts, colours

    def ground_truth(self, view):
        i = int(np.argmin([abs(float(view[..., 0].mean()) - c) for c in self.colours]))
        return self.gt_verts[i], self.gt_xyz[i]


def test_freihand_protocol_with_a_ground_truth_oracle(tmp_path, tiny):
    """Whole 224x224 image as the crop, the dataset's own K per image, right hands, official order:
    an oracle that knows only the image content must score perfectly, camera-space root included."""
    from PIL import Image

    from handrecon.geometry.camera import default_intrinsics

    root = tmp_path / "fh"
    root.mkdir()
    write_freihand(root)
    colours = [40, 200]  # evaluation image i is filled with red = colours[i]
    for i, c in enumerate(colours):
        Image.new("RGB", (224, 224), (c, 0, 0)).save(root / "evaluation" / "rgb" / f"{i:08d}.jpg", quality=100)
    ds = build_dataset("freihand", root, "evaluation")
    gt_xyz = np.stack([ds[i].hands[0].keypoints_3d for i in range(2)]).astype(np.float64)
    gt_verts = np.stack([ds[i].hands[0].vertices for i in range(2)]).astype(np.float64)
    Ks = np.stack([ds[i].K for i in range(2)])
    assert not np.allclose(Ks[0], default_intrinsics((224, 224)))  # the default K would misplace the root
    res = evaluate(ColourOracle(tiny[1], gt_xyz, gt_verts, colours), "freihand", root, out=tmp_path / "out",
                   batch_size=1)
    m = res.metrics
    assert res.notes == [SIDES_GIVEN_NOTE] and res.num_samples == 2
    assert m["pa_mpjpe_mm"] < 0.01 and m["pa_mpvpe_mm"] < 0.01 and m["mpjpe_mm"] < 0.01
    assert m["root_error_mm"] < 0.01 and m["root_depth_error_mm"] < 0.01 and m["pck2d@0.1"] == 1.0
    sub = load_freihand_submission(tmp_path / "out" / "pred.json", expected_count=2)
    np.testing.assert_allclose(sub.xyz, gt_xyz, atol=1e-5)  # camera space, in the official order
    np.testing.assert_allclose(sub.verts, gt_verts, atol=1e-5)


def test_freihand_uses_the_whole_image_and_the_dataset_K(tmp_path, tiny, monkeypatch):
    """The runner hands each FreiHAND image to the predictor whole (no box), as a right hand, with
    the K of that very sample."""
    root = tmp_path / "fh"
    root.mkdir()
    write_freihand(root)
    ds = build_dataset("freihand", root, "evaluation")
    seen = []
    real = tiny[1].predict_batch

    def spy(images, Ks=None, boxes=None, sides=None, batch_size=32):
        assert boxes is None
        seen.extend(zip([None] * len(images), sides, Ks))
        return real(images, Ks, boxes, sides, batch_size=batch_size)

    monkeypatch.setattr(tiny[1], "predict_batch", spy)
    evaluate(tiny[1], "freihand", root)
    assert [b for b, _, _ in seen] == [None, None] and [s for _, s, _ in seen] == [["right"], ["right"]]
    for i, (_, _, K) in enumerate(seen):
        np.testing.assert_array_equal(K, ds[i].K)


def test_freihand_openhand_model_reports_joint_metrics_only(tmp_path, tiny):
    (tmp_path / "fh").mkdir()
    write_freihand(tmp_path / "fh")
    res = evaluate(tiny[1], "freihand", tmp_path / "fh", out=tmp_path / "out")
    assert res.split == "evaluation" and res.num_samples == 2
    m = res.metrics
    assert m["pa_mpvpe_mm"] is None and m["f@5"] is None and m["f@15"] is None
    sub = load_freihand_submission(tmp_path / "out" / "pred.json", expected_count=2)
    ds = build_dataset("freihand", tmp_path / "fh", "evaluation")
    gt = np.stack([ds[i].hands[0].keypoints_3d for i in range(2)]).astype(np.float64)
    assert m["pa_mpjpe_mm"] == pytest.approx(1000 * pa_mpjpe(sub.xyz, gt), rel=1e-9)
    assert m["root_error_mm"] == pytest.approx(1000 * np.linalg.norm(sub.xyz[:, 0] - gt[:, 0], axis=-1).mean(), rel=1e-9)
    assert any("different topologies" in n for n in res.notes)
    assert res.official["mesh_al_mean3d"] is None and res.official["f_al_score_5"] is None
    assert sub.verts.shape == (2, 778, 3)


def test_freihand_without_ground_truth_writes_predictions_only(tmp_path, tiny):
    (tmp_path / "fh").mkdir()
    write_freihand(tmp_path / "fh", eval_gt=False)
    res = evaluate(tiny[1], "freihand", tmp_path / "fh", out=tmp_path / "out")
    assert all(v is None for v in res.metrics.values()) and "no ground truth" in res.notes[0]
    assert load_freihand_submission(tmp_path / "out" / "pred.json").xyz.shape == (2, 21, 3)


def test_bad_arguments(tmp_path, tiny):
    with pytest.raises(ValueError, match="supports datasets"):
        evaluate(tiny[1], "ho4d", tmp_path)
    with pytest.raises(ValueError, match="batch size"):
        evaluate(tiny[1], "freihand", tmp_path, batch_size=0)


def test_whole_image_protocol_on_synthetic_crops(tmp_path, tiny):
    """--whole-image: each image whole to the model with its ground-truth side (no box), its first
    hand scored; a ground-truth oracle then scores perfectly."""
    write_synthetic(tmp_path / "syn")
    ds = build_dataset("synthetic", tmp_path / "syn", "all")
    first = [ds[i].hands[0] for i in range(len(ds))]
    oracle = Oracle(tiny[1], [(h.vertices.astype(np.float64), h.keypoints_3d.astype(np.float64)) for h in first])
    seen = []
    real = oracle.predict_batch

    def spy(images, Ks=None, boxes=None, sides=None, batch_size=32):
        seen.append((boxes, sides))
        return real(images, Ks, boxes, sides, batch_size=batch_size)

    oracle.predict_batch = spy
    res = evaluate(oracle, "synthetic", tmp_path / "syn", split="all", whole_image=True)
    assert all(b is None for b, _ in seen) and [s for _, ss in seen for s in ss] == [[h.side] for h in first]
    assert res.num_hands == len(first) == 4
    assert res.metrics["pa_mpjpe_mm"] < 0.01 and res.metrics["root_error_mm"] < 0.01


class BoxOracle:
    """A full-image model that 'finds' each ground-truth hand of a dataset by its box, with its
    2D keypoints moved by `shift` px and 3D joints that project onto them (for HandOS-protocol runs)."""

    detects_hands = True
    hand_model = "openhand"

    def __init__(self, samples: dict, shift: float = 0.0) -> None:
        self.samples, self.shift = samples, shift

    def predict_batch(self, images, Ks, boxes, sides, batch_size=32):
        from handrecon.geometry.camera import default_intrinsics
        from handrecon.infer.results import HandResult, ImageResult

        out = []
        for image, K in zip(images, Ks):
            smp = self.samples[image.tobytes()]
            K = default_intrinsics((image.shape[1], image.shape[0])) if K is None else np.asarray(K, np.float64)
            hands = []
            for h in smp.hands:
                uv = np.asarray(h.keypoints_2d, np.float64) + self.shift
                xyz = np.concatenate([(uv - K[:2, 2]) / K[[0, 1], [0, 1]] * 0.5, np.full((21, 1), 0.5)], 1)
                hands.append(HandResult(box=np.asarray(h.box), side="right", keypoints_2d=uv, keypoints_3d=xyz,
                                        vertices=np.zeros((778, 3)), cam_t=xyz[0], score=0.9))
            out.append(ImageResult(K=K, image_size=image.shape[:2], hands=hands))
        return out


def test_hint_with_a_full_image_model_reports_visible_and_occluded_pck(tmp_path, monkeypatch):
    """HInt (2D only) through `evaluate`: PCK of the 2D and projected keypoints, over all, visible
    and occluded keypoints, box AP; a perfect model scores 1, a shifted one less."""
    from test_loaders_hint import write_item

    rng = np.random.default_rng(0)
    for i in range(3):
        kp = np.concatenate([rng.uniform(20, 100, (21, 2)), np.ones((21, 1))], 1)
        occ = [1 if j in (5, 6, 7) else 0 for j in range(21)]
        write_item(tmp_path / ("TEST_newdays_img" if i < 2 else "TEST_epick_img"), f"ND_v{i}_frame00000{i}_r",
                   kp.tolist(), occ, bbox=((kp[:, 0].min(), kp[:, 1].min(), kp[:, 0].max(), kp[:, 1].max()),))
    ds = build_dataset("hint", tmp_path, "test")
    samples = {}
    for i in range(len(ds)):
        smp = ds[i]
        smp._image = (rng.random(smp.image.shape) * 255).astype(np.uint8)  # tell the images apart
        samples[smp.image.tobytes()] = smp

    class Fixed:  # the dataset with the distinguishable images
        def __init__(self):
            self.items = list(samples.values())

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    monkeypatch.setattr("handrecon.eval.runner.build_dataset", lambda *a, **k: Fixed())
    perfect = evaluate(BoxOracle(samples), "hint", tmp_path).metrics
    shifted = evaluate(BoxOracle(samples, shift=8.0), "hint", tmp_path).metrics
    for key in ("pck2d@0.1", "pck2d_proj@0.1", "pck2d@0.1_visible", "pck2d@0.1_occluded", "pck2d_proj@0.1_occluded"):
        assert perfect[key] == pytest.approx(1.0), key
    assert perfect["ap50"] == pytest.approx(1.0) and perfect["recall"] == 1.0
    assert shifted["pck2d@0.05"] < 1.0 and shifted["pck2d@0.05"] <= shifted["pck2d@0.15"]
    by_subset = evaluate(BoxOracle(samples, shift=8.0), "hint", tmp_path, by="subset")  # the papers' per-subset table
    groups = by_subset.breakdown["groups"]
    assert {k: g["num_hands"] for k, g in groups.items()} == {"epick": 1, "newdays": 2}
    assert np.mean([g["metrics"]["pck2d@0.05"] for g in groups.values() for _ in range(g["num_hands"])]) == \
        pytest.approx(shifted["pck2d@0.05"])  # every hand has 21 annotated keypoints: the hand-weighted mean


class GivenHands:
    """A full-image model that returns, image after image in call order, the hands it is given."""

    detects_hands = True
    hand_model = "openhand"

    def __init__(self, hands_per_image: list[list]) -> None:
        self.queue = list(hands_per_image)

    def predict_batch(self, images, Ks, boxes, sides, batch_size=32):
        from handrecon.infer.results import ImageResult

        return [ImageResult(K=np.asarray(K, np.float64), image_size=im.shape[:2], hands=self.queue.pop(0))
                for im, K in zip(images, Ks)]


def _hand(box, xyz, verts, K):
    from handrecon.infer.results import HandResult

    return HandResult(box=np.asarray(box, np.float64), side="right", keypoints_2d=project(xyz, K), keypoints_3d=xyz,
                      vertices=verts, cam_t=xyz[0], score=0.9)


def test_ho3d_train_split_round_trips_to_the_files_own_joints(tmp_path):
    """HO3D train: the ground truth given back as the prediction scores 0 mm in every joint metric
    (scale-translation alignment included), and the submission written from it holds exactly the
    joints of the meta file: OpenGL frame, HO3D order (the inverse of the loader's conversion)."""
    from test_loaders_ho3d import write_ho3d

    metas = write_ho3d(tmp_path / "ho3d")
    ds = build_dataset("ho3d", tmp_path / "ho3d", "train")
    hands = [[_hand(h.box, h.keypoints_3d.astype(np.float64), np.zeros((778, 3)), ds[i].K) for h in ds[i].hands]
             for i in range(len(ds))]
    res = evaluate(GivenHands(hands), "ho3d", tmp_path / "ho3d", split="train", out=tmp_path / "out")
    assert res.num_hands == 1 and res.metrics["recall"] == 1.0
    for key in ("pa_mpjpe_mm", "mpjpe_mm", "st_mpjpe_mm", "root_error_mm"):
        assert res.metrics[key] == pytest.approx(0.0, abs=1e-3), key
    sub = json.loads((tmp_path / "out" / "pred.json").read_text())
    np.testing.assert_allclose(sub[0][0], metas[("train", "SEQA", "0000")]["handJoints3D"], atol=1e-6)


def test_ho3d_scale_translation_error_forgives_scale_and_offset_only(tmp_path):
    from test_loaders_ho3d import write_ho3d

    write_ho3d(tmp_path / "ho3d")
    ds = build_dataset("ho3d", tmp_path / "ho3d", "train")
    h, K = ds[0].hands[0], ds[0].K
    gt = h.keypoints_3d.astype(np.float64)
    scaled = (gt - gt[0]) * 1.3 + gt[0] + [0.01, -0.02, 0.05]
    res = evaluate(GivenHands([[_hand(h.box, scaled, np.zeros((778, 3)), K)], []]), "ho3d", tmp_path / "ho3d", split="train")
    assert res.metrics["st_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3) and res.metrics["mpjpe_mm"] > 10
    bent = gt.copy()
    bent[8] += [0.02, 0.0, 0.0]  # one fingertip 2 cm off: the alignment cannot hide it
    res = evaluate(GivenHands([[_hand(h.box, bent, np.zeros((778, 3)), K)], []]), "ho3d", tmp_path / "ho3d", split="train")
    assert res.metrics["st_mpjpe_mm"] == pytest.approx(20.0 / 21, rel=1e-3)


def test_ho3d_evaluation_split_writes_the_codalab_submission(tmp_path):
    """HO3D evaluation (box and root only): pred.json in OpenGL/HO3D order, one entry per frame, no
    keypoint metrics (withheld ground truth) but recall and box AP, and a note saying what to do."""
    from test_loaders_ho3d import FLIP, write_ho3d

    from handrecon.hand.keypoints import op21_to_mano21

    write_ho3d(tmp_path / "ho3d")
    smp = build_dataset("ho3d", tmp_path / "ho3d", "evaluation")[0]
    rng = np.random.default_rng(1)
    xyz, verts = rng.normal(size=(21, 3)) * 0.03 + [0, 0, 0.5], rng.normal(size=(778, 3)) * 0.03 + [0, 0, 0.5]
    res = evaluate(GivenHands([[_hand(smp.hands[0].box, xyz, verts, smp.K)]]), "ho3d", tmp_path / "ho3d",
                   out=tmp_path / "out")
    assert res.split == "evaluation" and res.metrics["recall"] == 1.0 and res.metrics["ap50"] == pytest.approx(1.0)
    assert res.metrics["pck2d@0.1"] is None and res.metrics["pa_mpjpe_mm"] is None
    assert any("Codalab" in n for n in res.notes) and not any("no 3D ground truth" in n for n in res.notes)
    sub = json.loads((tmp_path / "out" / "pred.json").read_text())
    np.testing.assert_allclose(sub[0][0], op21_to_mano21(xyz) * FLIP, atol=1e-9)
    np.testing.assert_allclose(sub[1][0], verts * FLIP, atol=1e-9)


def test_mano_dir_only_for_datasets_with_mano_ground_truth(tmp_path, tiny):
    with pytest.raises(ValueError, match="applies to ho3d and dexycb"):
        evaluate(tiny[1], "freihand", tmp_path, dataset_options={"mano_dir": tmp_path})


def test_gt_boxes_need_whole_images_with_boxes(tmp_path, tiny):
    with pytest.raises(ValueError, match="apply to whole images"):
        evaluate(tiny[1], "freihand", tmp_path, gt_boxes=True)


def test_dexycb_writes_the_toolkit_result_file_and_its_three_errors(tmp_path, monkeypatch):
    """DexYCB: results.txt has the toolkit's 64-field lines (official index, joints in mm) and the
    three toolkit errors are reported; the ground truth given back scores 0 in each, a shifted
    prediction keeps its offset in the absolute error only."""
    from test_loaders_dexycb import write_dexycb

    write_dexycb(tmp_path / "dex", {(0, 0, 0, 1): 1, (0, 1, 2, 0): 2})
    ds = build_dataset("dexycb", tmp_path / "dex", "s0_train", drop_empty=True)
    samples = [ds[i] for i in range(len(ds))]
    for smp in samples:
        smp._image = np.zeros((480, 640, 3), np.uint8)
    monkeypatch.setattr("handrecon.eval.runner.build_dataset", lambda *a, **k: samples)

    def run(offset):
        hands = [[_hand(h.box, h.keypoints_3d.astype(np.float64) + offset, np.zeros((778, 3)), smp.K) for h in smp.hands]
                 for smp in samples]
        return evaluate(GivenHands(hands), "dexycb", tmp_path / "dex", out=tmp_path / "out")

    exact = run(0.0)
    for name in ("abs", "rr", "pa"):
        assert exact.metrics[f"dexycb_{name}_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
        assert exact.metrics[f"dexycb_{name}_auc"] > 0.99
    lines = (tmp_path / "out" / "results.txt").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines] == [smp.meta["index"] for smp in samples]
    assert all(len(line.split(",")) == 64 for line in lines)
    np.testing.assert_allclose(np.array(lines[0].split(",")[1:], float).reshape(21, 3),
                               samples[0].hands[0].keypoints_3d * 1000, atol=1e-3)
    shifted = run(np.array([0.0, 0.0, 0.01]))
    assert shifted.metrics["dexycb_abs_mpjpe_mm"] == pytest.approx(10.0, abs=1e-3)
    assert shifted.metrics["dexycb_rr_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)


def test_compare_evaluations_of_two_detecting_models_pairs_their_boxes_too(tmp_path):
    """Models that find the hands themselves: `evaluate(bootstrap=..., out=...)` also keeps their boxes
    (`DETECTIONS_FILE`), and `compare_evaluations` adds the detector's metrics to the per-hand ones: a
    model that misses hands has the lower AP50 and recall, the same boxes differ by exactly 0; a crop
    model's folder holds no boxes, and comparing it adds none."""
    from handrecon.eval.runner import DETECTIONS_FILE, compare_evaluations

    write_synthetic(tmp_path / "syn", n_shards=3)
    ds = build_dataset("synthetic", tmp_path / "syn", "all")

    def found(keep):  # every hand of every image, given back; `keep(i, j)`: whether hand j of image i is found
        return GivenHands([[replace(_hand(h.box, h.keypoints_3d, h.vertices, ds[i].K), side=h.side)
                            for j, h in enumerate(ds[i].hands) if keep(i, j)] for i in range(len(ds))])

    for name, keep in (("all", lambda i, j: True), ("some", lambda i, j: (i + j) % 3 != 0)):
        res = evaluate(found(keep), "synthetic", tmp_path / "syn", split="all", out=tmp_path / name, batch_size=1,
                       bootstrap=200)
        assert res.files["detections"] == str(tmp_path / name / DETECTIONS_FILE)
    rows = compare_evaluations(tmp_path / "all", tmp_path / "some", 200)
    assert {"pa_mpjpe_mm", "ap50", "recall50_at_threshold", "precision_at_threshold"} <= set(rows)
    assert rows["ap50"]["a"] == pytest.approx(1.0) and rows["ap50"]["difference"] < 0
    assert rows["recall50_at_threshold"]["difference"] < 0 and rows["precision_at_threshold"]["difference"] == 0
    saved = json.loads((tmp_path / "some" / "metrics.json").read_text())["metrics"]
    assert rows["ap50"]["b"] == pytest.approx(saved["ap50"], rel=1e-12)
    same = compare_evaluations(tmp_path / "some", tmp_path / "some", 200)
    assert all(r["difference"] == r["low"] == r["high"] == 0 for r in same.values())
    (tmp_path / "all" / DETECTIONS_FILE).unlink()  # one side without boxes: the per-hand metrics alone
    assert "ap50" not in compare_evaluations(tmp_path / "all", tmp_path / "some", 200)
    evaluate(found(lambda i, j: True), "synthetic", tmp_path / "syn", split="all", out=tmp_path / "some", batch_size=1)
    assert not (tmp_path / "some" / DETECTIONS_FILE).exists()  # no bootstrap this time: the last run's files go
    with pytest.raises(ValueError, match="per_hand.npz: not found"):
        compare_evaluations(tmp_path / "all", tmp_path / "some", 200)


def test_a_detecting_model_is_not_expected_to_find_a_hand_outside_its_image(tmp_path):
    """HandOS's protocol (the model finds the hands): a hand entirely outside its image is no
    target, so a model that finds every hand in view has recall and AP50 1, not 6 / 10."""
    write_synthetic(tmp_path / "syn", outside=True)
    ds = build_dataset("synthetic", tmp_path / "syn", "all")
    found = [[replace(_hand(h.box, h.keypoints_3d, h.vertices, ds[i].K), side=h.side)
              for h in ds[i].hands if h.box[2] >= 0] for i in range(len(ds))]
    res = evaluate(GivenHands(found), "synthetic", tmp_path / "syn", split="all", out=tmp_path / "out", batch_size=1)
    assert res.num_hands == 6 and res.metrics["recall"] == 1.0 and res.metrics["ap50"] == pytest.approx(1.0)
    assert res.notes and res.notes[0].startswith("4 ground-truth hand(s) left out")
