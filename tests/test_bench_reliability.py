"""benchmarks/bench_reliability.py: its per-hand errors are the ones `handrecon evaluate` averages,
and its summary (quartiles, hands set aside) says what it claims on known numbers."""

from __future__ import annotations

import numpy as np
import pytest

import handrecon
from handrecon.eval.runner import evaluate
from helpers import load_script
from test_eval_runner import write_synthetic

bench = load_script("benchmarks/bench_reliability.py")


def test_per_hand_errors_average_to_evaluate_and_peaks_are_the_results(tmp_path):
    write_synthetic(tmp_path / "syn")  # 4 images, 6 hands of both sides
    model = handrecon.load("m3dhmr-openhand", threads=1)
    errors, peaks = bench.hand_errors(model, str(tmp_path / "syn"), whole_image=False, limit=None, batch=3)
    assert errors.shape == peaks.shape == (6,) and np.all((peaks > 0) & (peaks <= 1))
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
