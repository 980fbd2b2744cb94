import json

import numpy as np
import pytest
from test_metrics import RefEvalUtil, ref_fscore
from test_procrustes import official_align_by_trafo, official_align_w_scale
from typer.testing import CliRunner

from handrecon.cli import app
from handrecon.eval.submission import (
    FREIHAND_KEYS,
    FreihandSet,
    SubmissionError,
    evaluate_freihand,
    load_freihand_gt,
    load_freihand_submission,
    write_freihand_submission,
)


def official_freihand_main(pred_xyz, pred_verts, gt_xyz, gt_verts):
    """The official eval.py main loop (scores.txt values, lengths converted from cm to mm)."""
    ev_xyz, ev_xyz_al = RefEvalUtil(), RefEvalUtil()
    ev_mesh, ev_mesh_al = RefEvalUtil(gt_verts.shape[1]), RefEvalUtil(gt_verts.shape[1])
    same = pred_verts.shape[1] == gt_verts.shape[1]
    f, f_al = [], []
    for xyz, verts, xp, vp in zip(gt_xyz, gt_verts, pred_xyz, pred_verts):
        ones = np.ones(len(xyz))
        ev_xyz.feed(xyz, ones, xp)
        if same:
            ev_mesh.feed(verts, np.ones(len(verts)), vp)
            vp_al = official_align_w_scale(verts, vp)
        else:
            vp_al = official_align_by_trafo(vp, official_align_w_scale(xyz, xp, return_trafo=True))
        ev_xyz_al.feed(xyz, ones, official_align_w_scale(xyz, xp))
        if same:
            ev_mesh_al.feed(verts, np.ones(len(verts)), vp_al)
        f.append([ref_fscore(verts, vp, t) for t in (0.005, 0.015)])
        f_al.append([ref_fscore(verts, vp_al, t) for t in (0.005, 0.015)])
    out = {}
    for name, ev in (("xyz", ev_xyz), ("xyz_al", ev_xyz_al)) + ((("mesh", ev_mesh), ("mesh_al", ev_mesh_al)) if same else ()):
        mean, _, auc, _, _ = ev.get_measures(0.0, 0.05, 100)
        out[f"{name}_mean3d"], out[f"{name}_auc3d"] = mean * 1000, auc
    f, f_al = np.mean(f, 0), np.mean(f_al, 0)
    out.update(f_score_5=f[0], f_al_score_5=f_al[0], f_score_15=f[1], f_al_score_15=f_al[1])
    return out


def make_set(rng, n=6, v=150):
    gt_xyz = rng.normal(size=(n, 21, 3)) * 0.04 + [0.0, 0.0, 0.6]
    gt_verts = rng.normal(size=(n, v, 3)) * 0.04 + [0.0, 0.0, 0.6]
    pred_xyz = 1.05 * gt_xyz + rng.normal(size=gt_xyz.shape) * 0.006 + [0.01, 0.0, 0.0]
    pred_verts = 0.97 * gt_verts + rng.normal(size=gt_verts.shape) * 0.006
    return FreihandSet(pred_xyz, pred_verts), FreihandSet(gt_xyz, gt_verts)


def write_gt(folder, gt: FreihandSet):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "evaluation_xyz.json").write_text(json.dumps(gt.xyz.tolist()))
    (folder / "evaluation_verts.json").write_text(json.dumps(gt.verts.tolist()))
    return folder


def test_evaluate_matches_official_loop_same_topology():
    pred, gt = make_set(np.random.default_rng(0))
    got = evaluate_freihand(pred, gt)
    ref = official_freihand_main(pred.xyz, pred.verts, gt.xyz, gt.verts)
    assert list(got) == list(FREIHAND_KEYS)
    for k in FREIHAND_KEYS:
        assert got[k] == pytest.approx(ref[k], abs=1e-6), k
    assert got["xyz_al_mean3d"] < got["xyz_mean3d"] and got["f_al_score_15"] > got["f_score_15"]


def test_mirrored_predictions_align_perfectly_like_the_official_script():
    """The official alignment (scipy's orthogonal_procrustes) admits reflections: a prediction that
    is the mirror image of the ground truth, rotated, scaled and moved, aligns to ~0 mm."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(7)
    gt_xyz = rng.normal(size=(4, 21, 3)) * 0.04 + [0.0, 0.0, 0.6]
    gt_verts = rng.normal(size=(4, 120, 3)) * 0.04 + [0.0, 0.0, 0.6]
    R = Rotation.random(4, random_state=8).as_matrix()

    def mirror(x):
        return 1.3 * np.einsum("bij,bnj->bni", R, x * [-1.0, 1.0, 1.0]) + [0.05, -0.02, 0.1]

    pred, gt = FreihandSet(mirror(gt_xyz), mirror(gt_verts)), FreihandSet(gt_xyz, gt_verts)
    got = evaluate_freihand(pred, gt)
    ref = official_freihand_main(pred.xyz, pred.verts, gt.xyz, gt.verts)
    for k in FREIHAND_KEYS:
        assert got[k] == pytest.approx(ref[k], abs=1e-6), k
    assert got["xyz_al_mean3d"] < 1e-4 and got["mesh_al_mean3d"] < 1e-4  # mm
    assert got["f_al_score_5"] == 1.0 and got["xyz_al_auc3d"] > 0.99
    assert got["xyz_mean3d"] > 10.0  # unaligned, the mirror is far off


def test_evaluate_other_topology_uses_joint_trafo_and_no_mesh_errors():
    rng = np.random.default_rng(1)
    pred, gt = make_set(rng)
    pred.verts = rng.normal(size=(6, 90, 3)) * 0.04 + [0.0, 0.0, 0.6]
    got = evaluate_freihand(pred, gt)
    ref = official_freihand_main(pred.xyz, pred.verts, gt.xyz, gt.verts)
    assert all(got[k] is None for k in ("mesh_mean3d", "mesh_auc3d", "mesh_al_mean3d", "mesh_al_auc3d"))
    for k in ref:
        assert got[k] == pytest.approx(ref[k], abs=1e-6), k


def test_write_load_roundtrip_and_gt_extras(tmp_path):
    pred, gt = make_set(np.random.default_rng(2))
    write_freihand_submission(tmp_path / "pred.json", pred.xyz, pred.verts)
    back = load_freihand_submission(tmp_path / "pred.json", expected_count=6)
    np.testing.assert_array_equal(back.xyz, pred.xyz)
    np.testing.assert_array_equal(back.verts, pred.verts)
    folder = write_gt(tmp_path / "gt", gt)
    (folder / "evaluation_K.json").write_text(json.dumps(np.tile(np.eye(3), (6, 1, 1)).tolist()))
    (folder / "evaluation_scale.json").write_text(json.dumps([0.03] * 6))
    loaded = load_freihand_gt(folder)
    assert loaded.K.shape == (6, 3, 3) and loaded.scale.shape == (6,)
    np.testing.assert_array_equal(loaded.verts, gt.verts)


def _write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ({"xyz": []}, "2-element list"),
        ([[], [], []], "2-element list"),
        ("wrong_count", "3 samples, expected 4"),
        ("twenty_joints", r"sample 1 has shape \(20, 3\)"),
        ("nan", "NaN/inf values \\(first in sample 2\\)"),
        ("ragged_verts", "sample 3 has shape"),
    ],
)
def test_malformed_submissions_get_clear_errors(tmp_path, content, message):
    rng = np.random.default_rng(3)
    xyz = rng.normal(size=(4, 21, 3)).tolist()
    verts = rng.normal(size=(4, 30, 3)).tolist()
    if content == "wrong_count":
        content = [xyz[:3], verts[:3]]
    elif content == "twenty_joints":
        xyz[1] = xyz[1][:20]
        content = [xyz, verts]
    elif content == "nan":
        xyz[2][5][1] = float("nan")
        content = [xyz, verts]
    elif content == "ragged_verts":
        verts[3] = verts[3][:29]
        content = [xyz, verts]
    path = _write(tmp_path / "pred.json", content)
    with pytest.raises(SubmissionError, match=message):
        load_freihand_submission(path, expected_count=4)


def test_missing_gt_file_is_named(tmp_path):
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "evaluation_xyz.json").write_text("[]")
    with pytest.raises(SubmissionError, match="evaluation_verts.json is missing"):
        load_freihand_gt(tmp_path / "gt")


def test_cli_writes_official_keys_in_mm(tmp_path):
    pred, gt = make_set(np.random.default_rng(4), n=5)
    folder = write_gt(tmp_path / "gt", gt)
    write_freihand_submission(tmp_path / "pred.json", pred.xyz, pred.verts)
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(
        app, ["evaluate-submission", "--benchmark", "freihand", "--pred", str(tmp_path / "pred.json"), "--gt-dir", str(folder), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "xyz_al_mean3d" in result.output
    scores = json.loads(out.read_text())
    assert list(scores) == list(FREIHAND_KEYS)
    expected = evaluate_freihand(pred, gt)
    assert scores == pytest.approx(expected)
    assert 5 < scores["xyz_al_mean3d"] < 20  # millimetres, not cm or m


def test_cli_failure_is_one_line_and_exit_code_2(tmp_path):
    pred, gt = make_set(np.random.default_rng(5), n=5)
    folder = write_gt(tmp_path / "gt", gt)
    write_freihand_submission(tmp_path / "pred.json", pred.xyz[:4], pred.verts[:4])
    result = CliRunner().invoke(app, ["evaluate-submission", "--pred", str(tmp_path / "pred.json"), "--gt-dir", str(folder)])
    assert result.exit_code == 2
    assert "4 samples, expected 5" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    missing = CliRunner().invoke(app, ["evaluate-submission", "--pred", str(tmp_path / "nope.json"), "--gt-dir", str(folder)])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    swapped = CliRunner().invoke(app, ["evaluate-submission", "--pred", str(folder), "--gt-dir", str(tmp_path / "pred.json")])
    assert swapped.exit_code == 2 and "is a file; give the folder holding evaluation_xyz.json" in swapped.output
    folder_as_pred = CliRunner().invoke(app, ["evaluate-submission", "--pred", str(folder), "--gt-dir", str(folder)])
    assert folder_as_pred.exit_code == 2 and "is a folder, not a JSON file" in folder_as_pred.output  # was "does not exist"
