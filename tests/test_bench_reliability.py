"""benchmarks/bench_reliability.py: its per-hand errors are the ones `handrecon evaluate` averages,
and its summary (quartiles, hands set aside) says what it claims on known numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import handrecon
from handrecon.eval.runner import evaluate
from handrecon.geometry.rotations import rotation_between
from handrecon.hand.keypoints import OP21_TIPS
from handrecon.hand.model import HandModel
from helpers import load_script
from test_eval_runner import write_synthetic

bench = load_script("benchmarks/bench_reliability.py")


def test_per_hand_errors_average_to_evaluate_and_peaks_are_the_results(tmp_path):
    write_synthetic(tmp_path / "syn")  # 4 images, 6 hands of both sides
    model = handrecon.load("m3dhmr-openhand", threads=1)
    errors, peaks, joints = bench.hand_errors(model, str(tmp_path / "syn"), whole_image=False, limit=None, batch=3)
    assert errors.shape == peaks.shape == (6,) and np.all((peaks > 0) & (peaks <= 1)) and joints.shape == (6, 21, 3)
    res = evaluate(model, "synthetic", tmp_path / "syn", split="all", gt_boxes=True)
    assert errors.mean() == pytest.approx(res.metrics["pa_mpjpe_mm"], rel=1e-6)
    with pytest.raises(SystemExit, match="one hand per image"):  # two-hand images are not crops
        bench.hand_errors(model, str(tmp_path / "syn"), whole_image=True, limit=None)


def test_summary_on_known_numbers():
    peaks = np.arange(1, 21) / 100.0  # 20 hands; error falls as the peak rises, two failures at the bottom
    errors = np.r_[40.0, 30.0, np.linspace(15, 5, 18)]
    r = bench.reliability(errors, peaks)
    assert r["hands"] == 20 and r["spearman"] == pytest.approx(-1.0)
    assert r["quartile_mean_mm"][0] == pytest.approx(errors[:5].mean()) and r["quartile_failed"][0] == pytest.approx(0.4)
    assert r["quartile_failed"][1:] == [0.0, 0.0, 0.0]
    assert r["drop_0.10"]["dropped_mm"] == pytest.approx(35.0) and r["drop_0.10"]["kept_mm"] == pytest.approx(errors[2:].mean())
    assert r["drop_0.10"]["kept_by_error_mm"] == pytest.approx(np.sort(errors)[:18].mean())
    with pytest.raises(SystemExit, match="no heatmap_peak"):
        bench.reliability(errors, np.full(20, np.nan))


def rotation_y(deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_hand_kinds_open_and_edge_on():
    """The rest hand is open; facing the camera it is not edge-on, turned 80 degrees about the
    vertical it is; with the fingers curled it is no longer open."""
    model = HandModel.openhand("right")
    rest = model(torch.zeros(1, model.num_joints, 3)).joints[0].double().numpy()
    rest = rest - rest.mean(0)
    normal = np.cross(rest[5] - rest[0], rest[17] - rest[0])
    facing = rotation_between(torch.tensor(normal), torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)).numpy()
    place = np.array([0.0, 0.0, 0.5])
    joints = np.stack([rest @ facing.T + place, rest @ facing.T @ rotation_y(80).T + place])
    curled = joints[:1].copy()
    curled[0, list(OP21_TIPS)] = curled[0, [2, 6, 10, 14, 18]]  # fingertips pulled back to the first joints
    kinds = bench.hand_kinds(np.concatenate([joints, curled]))
    assert kinds["open"].tolist() == [True, True, False]
    assert kinds["edge-on"].tolist() == [False, True, False]
    tail = bench.error_tail(np.array([30.0] + [1.0] * 9 + [2.0] * 10), np.concatenate([joints[1:]] + [joints[:1]] * 19))
    assert tail["worst_tenth_error_share"] == pytest.approx((30 + 2) / 59)
    assert tail["kinds"]["edge-on"]["worst_tenth"] == 0.5 and tail["kinds"]["edge-on"]["all"] == 0.05

