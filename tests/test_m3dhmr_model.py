"""M3DHMR model: ablation switches, units, loss, root placement, validation, engine and ONNX."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from handrecon.models.m3dhmr.loss import M3DHMRLoss, apply_affine
from handrecon.models.heads import local_soft_argmax_2d, normalized_to_pixels, pixels_to_normalized, sample_features_at
from handrecon.eval.scoring import METRIC_NAMES
from handrecon.models.m3dhmr import M3DHMR, M3DHMRAdapter, pixel_affine_to_normalized
from handrecon.models.m3dhmr.model import reported_keypoints
from handrecon.models.m3dhmr.inference import KEYPOINT_WINDOW
from handrecon.registry import register_dataset
from handrecon.train import config_from_dict, train


SIZE = 64  # small crops keep the tests fast; the model is size-agnostic (multiples of 32)
SMALL = {"stacked_resnet18": {"width": 16, "decoder_width": 16}, "stacked_resnet34": {"width": 16, "decoder_width": 16},
         "hourglass2": {"channels": 32}}


def small_model(backbone: str = "stacked_resnet18", **kw) -> M3DHMR:
    torch.manual_seed(0)
    return M3DHMR(backbone=backbone, backbone_kwargs=SMALL[backbone], **kw)


def crop_K(batch: int, f: float = 120.0) -> torch.Tensor:
    K = torch.tensor([[f, 0.0, (SIZE - 1) / 2], [0.0, f, (SIZE - 1) / 2], [0.0, 0.0, 1.0]])
    return K.expand(batch, 3, 3).clone()


def rot_z(deg: float) -> torch.Tensor:
    a = math.radians(deg)
    return torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def random_sample(g: torch.Generator, two_views: bool = True) -> dict:
    """One sample with the batch keys of `handrecon.models.m3dhmr.model` (random values)."""
    s = {
        "image": torch.randn(3, SIZE, SIZE, generator=g),
        "joints_2d": torch.rand(21, 2, generator=g) * (SIZE - 1),
        "verts_3d": torch.randn(778, 3, generator=g) * 0.03,
        "joints_3d": torch.randn(21, 3, generator=g) * 0.03,
        "K": crop_K(1)[0],
        "root": torch.tensor([0.0, 0.0, 0.6]),
        "box": torch.tensor([0.0, 0.0, SIZE, SIZE]),
    }
    if two_views:
        s["view2"] = {k: v.clone() for k, v in s.items()}
        s["view2_R"] = torch.eye(3)
        s["view2_affine"] = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    return s


def random_batch(n: int = 2, seed: int = 0, two_views: bool = True) -> dict:
    g = torch.Generator().manual_seed(seed)
    samples = [random_sample(g, two_views) for _ in range(n)]
    return torch.utils.data.default_collate(samples)


@register_dataset("m3dhmr_random_test")
class RandomCrops(Dataset):
    """Random tensors shaped like the M3DHMR batch (engine smoke test only)."""

    def __init__(self, n: int = 8, seed: int = 0, two_views: bool = True):
        self.n, self.seed, self.two_views = n, seed, two_views

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return random_sample(torch.Generator().manual_seed(self.seed * 1000 + i), self.two_views)


@pytest.mark.parametrize(
    "backbone,conv,kernels,roi",
    [("stacked_resnet18", c, 8, r) for c in ("dsc", "spiral", "dsep") for r in (True, False)]
    + [("stacked_resnet18", "dsc", k, True) for k in (2, 4, 16)]
    + [("stacked_resnet34", "dsc", 8, True), ("hourglass2", "dsc", 8, True)],
)
def test_output_shapes_for_every_switch(backbone, conv, kernels, roi):
    m = small_model(backbone, conv=conv, num_kernels=kernels, roi=roi).eval()
    assert (m.decoder.roi is not None) == roi
    with torch.no_grad():
        out = m(torch.randn(2, 3, SIZE, SIZE))
    assert out["uv"].shape == (2, 21, 2) and out["uv_stacks"].shape == (2, 2, 21, 2)
    assert out["verts"].shape == (2, 778, 3) and out["joints"].shape == (2, 21, 3)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_bad_switches_are_clear_errors():
    with pytest.raises(ValueError, match="landmark encoder"):
        M3DHMR(backbone="resnet18")
    with pytest.raises(ValueError, match="unknown decoder conv"):
        M3DHMR(conv="gcn")
    with pytest.raises(ValueError, match="unknown M3DHMR loss term"):
        small_model(loss_weights={"meshh": 1.0})


def test_units_metres_and_regressed_joints():
    m = small_model().eval()
    image = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        out = m(image)
        enc = m.encoder(image)
        raw = m.decoder(enc["latent"], enc["uv"])
    torch.testing.assert_close(out["verts"], raw * 0.2)  # decoder regresses in units of 0.2 m
    from handrecon.hand.openhand import load_openhand

    kp = torch.as_tensor(load_openhand().kp_regressor)
    torch.testing.assert_close(out["joints"], torch.einsum("jv,bvc->bjc", kp, out["verts"]))
    # the head predicts offsets from the root-relative rest mesh: its regressed wrist is the origin
    template = m.decoder.template * 0.2
    torch.testing.assert_close((kp @ template)[0], torch.zeros(3), atol=1e-6, rtol=0)
    extent = (template.amax(0) - template.amin(0)).max()
    assert 0.1 < extent < 0.3  # a hand, in metres
    # the model takes normalised float crops only (utils.image.normalize_images is the one place)
    with pytest.raises(ValueError, match="normalised float"):
        m(torch.randint(0, 256, (1, 3, SIZE, SIZE), dtype=torch.uint8))


def test_loss_zero_at_ground_truth():
    m = small_model().eval()
    batch = random_batch(2, two_views=False)
    with torch.no_grad():
        out = m(batch["image"])
    batch["verts_3d"] = out["verts"].clone()
    batch["joints_2d"] = normalized_to_pixels(out["uv"], SIZE, SIZE)
    total, terms = m.loss(out, batch)
    assert set(terms) == {"mesh", "pose2d", "norm", "edge"}
    for k, v in terms.items():
        assert float(v) < 1e-5, (k, float(v))
    batch["verts_3d"] = batch["verts_3d"] + 0.01
    assert float(m.loss(out, batch)[1]["mesh"]) == pytest.approx(0.05, rel=1e-4)  # 1 cm = 0.05 units of 0.2 m


def _hand_mesh():
    """(verts (1, V, 3) metres, faces (F, 3)) of the OpenHand rest mesh, root-relative."""
    from handrecon.hand.model import HandModel

    hm = HandModel.openhand("right")
    v = hm.v_template[None].float()
    return v - v.mean(1, keepdim=True), hm.faces.numpy()


def _edges(v, faces):
    tri = v[:, torch.as_tensor(faces).long()]
    return tri.roll(-1, dims=2) - tri  # (B, F, 3, 3) v1-v0, v2-v1, v0-v2


def test_each_supervised_term_rises_only_with_its_own_target():
    """Perturb one target at a time; the perturbed term takes the value derived independently
    from its definition (module doc of losses.m3dhmr) and no other term moves."""
    verts, faces = _hand_mesh()
    loss = M3DHMRLoss(faces)
    uv = torch.rand(1, 21, 2, generator=torch.Generator().manual_seed(0))
    base = loss.supervised(verts, uv, verts.clone(), uv.clone())
    assert all(float(v) < 1e-6 for v in base.values()), base

    def moved(terms, own):
        assert float(terms[own]) > 1e-3, own
        assert all(float(v) < 1e-6 for k, v in terms.items() if k != own), (own, terms)

    # 2D: gt landmarks shifted by (0.03, -0.01) crop fractions -> L1 mean 0.02
    t = loss.supervised(verts, uv, verts, uv + torch.tensor([0.03, -0.01]))
    moved(t, "pose2d")
    assert float(t["pose2d"]) == pytest.approx(0.02, rel=1e-5)
    # mesh: gt translated by 1 cm in x only -> mean |dx| over 3 coords = 1/3 cm = (1/3) * 0.05 units
    t = loss.supervised(verts, uv, verts + torch.tensor([0.01, 0.0, 0.0]), uv)
    moved(t, "mesh")
    assert float(t["mesh"]) == pytest.approx(0.05 / 3, rel=1e-4)
    # edge: the prediction scaled by 1.1 about its centre (normals unchanged; vertices move too)
    t = loss.supervised(verts * 1.1, uv, verts, uv)
    expected_edge = (0.1 * _edges(verts, faces).norm(dim=-1)).mean() / 0.2
    assert float(t["edge"]) == pytest.approx(float(expected_edge), rel=1e-4)
    assert float(t["norm"]) < 1e-6 and float(t["pose2d"]) < 1e-6
    # normal: the gt rotated about its centre (edge lengths unchanged): mean |unit(e_pred) . n_gt|
    R = rot_z(20.0) @ torch.tensor([[1.0, 0, 0], [0, 0.0, -1.0], [0, 1.0, 0.0]])
    gt_rot = verts @ R.T
    t = loss.supervised(verts, uv, gt_rot, uv)
    e = torch.nn.functional.normalize(_edges(verts, faces), dim=-1)
    tri = gt_rot[:, torch.as_tensor(faces).long()]
    n = torch.nn.functional.normalize(torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0]), dim=-1)
    expected_norm = (e * n[:, :, None]).sum(-1).abs().mean()
    assert float(t["norm"]) == pytest.approx(float(expected_norm), rel=1e-4) and float(expected_norm) > 0.05
    assert float(t["edge"]) < 1e-5


def test_model_loss_compares_prediction_with_the_batch_targets():
    """`M3DHMR.loss` feeds each term the batch's own targets (2D in pixels -> crop fractions)."""
    m = small_model().eval()
    batch = random_batch(2, two_views=False)
    with torch.no_grad():
        out = m(batch["image"])
    batch["verts_3d"] = out["verts"].clone()
    batch["joints_2d"] = normalized_to_pixels(out["uv"], SIZE, SIZE) + torch.tensor([0.1 * SIZE, 0.0])
    terms = m.loss(out, batch)[1]
    assert float(terms["pose2d"]) == pytest.approx(0.05, rel=1e-4)  # 0.1 of the side on one of 2 coords
    assert float(terms["mesh"]) < 1e-6 and float(terms["norm"]) < 1e-6 and float(terms["edge"]) < 1e-6


def test_consistency_zero_for_matching_views_and_positive_otherwise():
    loss = M3DHMRLoss(np.array([[0, 1, 2]]))
    g = torch.Generator().manual_seed(1)
    verts1, uv1 = torch.randn(2, 5, 3, generator=g), torch.rand(2, 21, 2, generator=g)
    R = torch.stack([rot_z(30.0), rot_z(-75.0)])
    A = torch.tensor([[[0.8, 0.3, 0.1], [-0.3, 0.8, 0.05]]]).expand(2, 2, 3)
    terms = loss.consistency(verts1, verts1 @ R.transpose(1, 2), uv1, apply_affine(uv1, A), R, A)
    assert float(terms["con3d"]) < 1e-6 and float(terms["con2d"]) < 1e-6
    terms = loss.consistency(verts1, verts1, uv1, uv1, R, A)  # rotation not undone
    assert float(terms["con3d"]) > 0.1 and float(terms["con2d"]) > 0.01


def test_pixel_affine_to_normalized_matches_the_pixel_map():
    g = torch.Generator().manual_seed(2)
    A_px = torch.randn(3, 2, 3, generator=g)
    px1 = torch.rand(3, 7, 2, generator=g) * 63
    px2 = apply_affine(px1, A_px)
    A_n = pixel_affine_to_normalized(A_px, (64, 64), (96, 96))
    torch.testing.assert_close(apply_affine(pixels_to_normalized(px1, 64, 64), A_n), pixels_to_normalized(px2, 96, 96))


def test_two_view_training_forward_consistency_and_temperature():
    m = small_model(tau_start=30.0, tau_anneal_steps=4)
    batch = random_batch(2)
    m.train()
    out = m(batch)
    assert out["verts"].shape == (2, 778, 3) and out["view2"]["verts"].shape == (2, 778, 3)
    total, terms = m.loss(out, batch)
    assert set(terms) == {"mesh", "pose2d", "norm", "edge", "con3d", "con2d"}
    # identical views through the same batch-norm batch: the consistency terms vanish
    assert terms["con3d"].item() < 1e-6 and terms["con2d"].item() < 1e-6
    total.backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert int(m.train_step) == 1 and m.temperature() == pytest.approx(30.0 - 29.0 / 4)
    m.set_progress(10)
    m.eval()
    with torch.no_grad():
        m(batch)
    assert int(m.train_step) == 10 and m.temperature() == 1.0
    assert all(layer.tau == 1.0 for layer in m.decoder.layers)


def test_camera_space_recovers_the_root():
    m = small_model(refine_root=True)
    g = torch.Generator().manual_seed(3)
    joints = torch.randn(2, 21, 3, generator=g) * 0.04
    root = torch.tensor([[0.05, -0.02, 0.5], [-0.1, 0.03, 0.8]])
    K = crop_K(2)
    q = (joints + root[:, None]) @ K.transpose(1, 2)
    uv = pixels_to_normalized(q[..., :2] / q[..., 2:], SIZE, SIZE)
    verts = torch.randn(2, 778, 3, generator=g) * 0.04
    placed = m.camera_space({"joints": joints, "uv": uv, "verts": verts}, K, (SIZE, SIZE))
    torch.testing.assert_close(placed["translation"], root, atol=1e-5, rtol=0)
    torch.testing.assert_close(placed["joints_cam"], joints + root[:, None], atol=1e-5, rtol=0)
    torch.testing.assert_close(placed["verts_cam"], verts + root[:, None], atol=1e-5, rtol=0)


def test_validate_reports_perfect_scores_for_perfect_predictions():
    m = small_model().eval()
    batch = random_batch(4, two_views=False)
    with torch.no_grad():
        out = m.forward_crops(batch["image"], heatmaps=True)
        landmarks, keypoints = out["uv"], reported_keypoints(out["heatmaps"][:, -1])
        wrist = out["joints"][:, :1]  # the batch convention: 3D relative to the wrist, root = camera wrist
        batch.update(verts_3d=out["verts"] - wrist, joints_3d=out["joints"] - wrist,
                     joints_2d=normalized_to_pixels(keypoints, SIZE, SIZE))
        batch["root"] = m.camera_space({**out, "uv": keypoints}, batch["K"], (SIZE, SIZE))["joints_cam"][:, 0]
        metrics = m.validate([batch])
    assert set(metrics) == set(METRIC_NAMES)  # the metrics `handrecon evaluate` reports
    assert metrics["pa_mpjpe_mm"] < 1e-3 and metrics["pa_mpvpe_mm"] < 1e-3 and metrics["root_error_mm"] < 1e-3
    assert metrics["mpjpe_mm"] < 1e-3 and metrics["recall"] == metrics["side_accuracy"] == 1.0
    assert metrics["f@5"] == metrics["f@15"] == metrics["pck2d@0.1"] == 1.0
    assert metrics["auc"] > 0.99  # errors ~1e-9 m miss only the 0 mm threshold: 1 - 1/198
    # the 2D scored and the root fitted are the served keypoints, not the trained landmarks
    assert (landmarks - keypoints).norm(dim=-1).mean() > 0.1
    with torch.no_grad():
        root = m.camera_space(out, batch["K"], (SIZE, SIZE))["joints_cam"][:, 0]
        at_landmarks = m.validate([{**batch, "joints_2d": normalized_to_pixels(landmarks, SIZE, SIZE), "root": root}])
    assert at_landmarks["pck2d@0.1"] < 0.9 and at_landmarks["root_error_mm"] > 1.0
    batch["joints_2d"] = batch["joints_2d"] + 0.2 * SIZE  # every joint off by 0.28 crop sides
    assert m.validate([batch])["pck2d@0.1"] == 0.0


def test_validate_equals_the_official_metrics_on_imperfect_predictions():
    """validate() on a random model's (imperfect) predictions equals the official FreiHAND scores
    (eval.submission, each set aligned by its own Procrustes fit) and the box-PCK of eval.metrics."""
    from handrecon.eval.metrics import pck_2d
    from handrecon.eval.submission import FreihandSet, evaluate_freihand

    m = small_model().eval()
    batch = random_batch(6, seed=4, two_views=False)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        out = m.forward_crops(batch["image"], heatmaps=True)
    # ground truth = the prediction rotated, scaled and noised (so alignment matters a lot)
    R = torch.stack([rot_z(40.0 * i) for i in range(6)])
    batch["verts_3d"] = 1.2 * out["verts"] @ R.transpose(1, 2) + 0.003 * torch.randn(out["verts"].shape, generator=g)
    batch["joints_3d"] = 1.2 * out["joints"] @ R.transpose(1, 2) + 0.003 * torch.randn(out["joints"].shape, generator=g)
    batch["joints_2d"] = normalized_to_pixels(out["uv"], SIZE, SIZE) + 4.0 * torch.randn(6, 21, 2, generator=g)
    with torch.no_grad():
        metrics = m.validate([{k: v[:3] for k, v in batch.items()}, {k: v[3:] for k, v in batch.items()}])
    d = lambda x: x.double().numpy()  # noqa: E731
    official = evaluate_freihand(FreihandSet(d(out["joints"]), d(out["verts"])),
                                 FreihandSet(d(batch["joints_3d"]), d(batch["verts_3d"])))
    assert metrics["pa_mpjpe_mm"] == pytest.approx(official["xyz_al_mean3d"], rel=1e-5)
    assert metrics["pa_mpvpe_mm"] == pytest.approx(official["mesh_al_mean3d"], rel=1e-5)
    assert metrics["auc"] == pytest.approx(official["xyz_al_auc3d"], rel=1e-5)
    assert metrics["f@5"] == pytest.approx(official["f_al_score_5"], rel=1e-5)
    assert metrics["f@15"] == pytest.approx(official["f_al_score_15"], rel=1e-5)
    assert official["xyz_mean3d"] > 3 * official["xyz_al_mean3d"]  # unaligned scores would differ
    crop = np.tile([0.0, 0.0, SIZE, SIZE], (6, 1))
    pred_px = normalized_to_pixels(reported_keypoints(out["heatmaps"][:, -1]), SIZE, SIZE)
    assert metrics["pck2d@0.1"] == pytest.approx(pck_2d(d(pred_px), d(batch["joints_2d"]), crop, 0.1))
    assert 0.0 < metrics["pck2d@0.1"] < 1.0


def test_engine_trains_a_few_steps_and_validates(tmp_path):
    cfg = config_from_dict({
        "output": str(tmp_path),
        "model": {"name": "m3dhmr", "kwargs": {"backbone": "stacked_resnet18", "num_kernels": 2, "tau_anneal_steps": 2,
                                               "backbone_kwargs": SMALL["stacked_resnet18"]}},
        "data": {"train": {"name": "m3dhmr_random_test", "kwargs": {"n": 8}},
                 "val": {"name": "m3dhmr_random_test", "kwargs": {"n": 4, "seed": 1, "two_views": False}},
                 "batch_size": 2},
        "optim": {"name": "adam", "lr": 1e-3},
        "train": {"max_steps": 3, "log_every": 1, "val_every": 3, "ckpt_every": 3, "progress": "off",
                  "best_metric": "pa_mpjpe_mm"},
    })
    res = train(cfg)
    assert res.step == 3 and int(res.model.train_step) == 3
    assert set(METRIC_NAMES) <= set(res.metrics)
    assert all(np.isfinite(v) for v in res.metrics.values())
    header = (tmp_path / "train_log.csv").read_text().splitlines()[0].split(",")
    assert {"mesh", "pose2d", "norm", "edge", "con3d", "con2d"} <= set(header)
    from handrecon.checkpoint import load_model

    loaded, _ = load_model(res.last_checkpoint)
    assert int(loaded.train_step) == 3  # the temperature schedule position is checkpointed


def test_onnx_export_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m = small_model().eval()
    path = M3DHMRAdapter({**m.inference_spec(), "input_size": SIZE}).export_network(m, tmp_path / "m3dhmr.onnx")
    assert not m.training  # the exporter must not leave batch norm on batch statistics
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = torch.randn(2, 3, SIZE, SIZE)
    for batch in (image, image[:1]):
        got = sess.run(None, {"image": batch.numpy()})
        with torch.no_grad():
            out = m.forward_crops(batch, heatmaps=True)
        keypoints = local_soft_argmax_2d(out["heatmaps"][:, -1], KEYPOINT_WINDOW)
        want = {"uv_px": normalized_to_pixels(out["uv"], SIZE, SIZE), "verts": out["verts"], "joints": out["joints"],
                "keypoints_px": normalized_to_pixels(keypoints, SIZE, SIZE)}
        outputs = dict(zip([o.name for o in sess.get_outputs()], got))
        for name, w in want.items():
            np.testing.assert_allclose(outputs[name], w.numpy(), atol=1e-4, rtol=0)


def test_network_reports_keypoints_near_the_peak_and_decodes_at_the_trained_landmarks():
    m = small_model().eval()
    net = m.inference_network()
    image = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        enc = m.encoder(image)
        uv_px, _, features, keypoints_px = net.first_stage(image)
    logits = enc["heatmaps"][:, -1]
    torch.testing.assert_close(keypoints_px, normalized_to_pixels(local_soft_argmax_2d(logits, KEYPOINT_WINDOW), SIZE, SIZE))
    torch.testing.assert_close(uv_px, normalized_to_pixels(enc["uv"], SIZE, SIZE))
    assert (keypoints_px - uv_px).abs().max() > 0.5  # random maps are spread: the two decodings differ
    torch.testing.assert_close(features, sample_features_at(enc["latent"], enc["uv"]))


def test_intermediate_stack_supervision_and_bf16_autocast():
    m = small_model(loss_weights={"stacks": 0.5})
    batch = random_batch(2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(batch)
        total, terms = m.loss(out, batch)
    assert "stacks" in terms and total.dtype == torch.float32 and torch.isfinite(total)
    expected = sum(v * (0.5 if k == "stacks" else 1.0) for k, v in terms.items())
    torch.testing.assert_close(total, expected)


def test_heatmap_guidance_is_zero_at_target_and_trains_logits():
    from handrecon.models.m3dhmr.loss import HEATMAP_SIGMA
    from handrecon.models.heads import gaussian_heatmaps

    crit = M3DHMRLoss(np.array([[0, 1, 2]]), {"heatmap": 1.0})
    uv = torch.rand(2, 21, 2) * 0.8 + 0.1
    target = gaussian_heatmaps(uv, 8, 8, HEATMAP_SIGMA)
    target = target / target.sum((-1, -2), keepdim=True)
    at_target = torch.log(target).unsqueeze(1).repeat(1, 2, 1, 1, 1)  # (B, S=2, J, h, w)
    assert crit.heatmap(at_target, uv).abs() < 1e-5
    flat = torch.zeros(2, 2, 21, 8, 8, requires_grad=True)
    loss = crit.heatmap(flat, uv)
    loss.backward()
    assert loss > 0.5 and torch.isfinite(flat.grad).all() and flat.grad.abs().sum() > 0


def test_heatmap_term_only_when_weighted_and_training():
    batch = random_batch(2)
    m = small_model(loss_weights={"heatmap": 0.1}).train()
    out = m(batch)
    total, terms = m.loss(out, batch)
    assert out["heatmaps"].shape[:3] == (2, 2, 21) and out["view2"]["heatmaps"].shape[:3] == (2, 2, 21)
    assert "heatmap" in terms and torch.isfinite(total)
    torch.testing.assert_close(total, sum(v * (0.1 if k == "heatmap" else 1.0) for k, v in terms.items()))
    assert "heatmaps" not in m.eval()(batch)  # inference outputs are unchanged
    assert "heatmaps" not in small_model().train()(batch)  # default weight 0: nothing extra computed


def test_mirror_negatives_flatten_the_mirror_images_heatmaps():
    """mirror_negatives: in training the first crops of a batch are also read mirrored (left hands)
    and their heatmaps pulled flat — KL(U || softmax) is zero for flat maps, positive for peaked
    ones — with a gradient into the encoder; evaluation and the default (0) compute nothing extra."""
    crit = M3DHMRLoss(np.array([[0, 1, 2]]))
    assert crit.flat_heatmap(torch.full((2, 2, 21, 8, 8), 3.0)).abs() < 1e-5
    peaked = torch.zeros(2, 2, 21, 8, 8)
    peaked[..., 3, 4] = 6.0
    assert crit.flat_heatmap(peaked) > 1.0
    batch = random_batch(4, two_views=False)
    torch.manual_seed(0)
    m = small_model(mirror_negatives=0.5).train()
    out = m(batch)
    assert out["mirror_heatmaps"].shape[:3] == (2, 2, 21)
    with torch.no_grad():
        expected = m.encoder(batch["image"][:2].flip(-1))["heatmaps"]
    torch.testing.assert_close(out["mirror_heatmaps"], expected)
    total, terms = m.loss(out, batch)
    assert terms["mirror"] > 0
    terms["mirror"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.encoder.parameters())
    assert "mirror_heatmaps" not in m.eval()(batch) and "mirror_heatmaps" not in small_model().train()(batch)
    with pytest.raises(ValueError, match="mirror_negatives"):
        small_model(mirror_negatives=1.5)


def test_exact_resume_of_a_real_m3dhmr_run(tmp_path):
    """A real M3DHMR run on the rendered two-view stream (batch norm, DSC temperature annealing,
    both views' augmentation): 4 steps straight == 2 steps, checkpoint, resume, 2 more, bit for bit."""
    from handrecon.checkpoint import load_model
    from handrecon.checkpoint import read_card

    def cfg(out):
        return config_from_dict({
            "output": str(out), "imports": ["handrecon.models.m3dhmr.data"],
            "model": {"name": "m3dhmr", "kwargs": {"backbone": "stacked_resnet18", "num_kernels": 2,
                                                   "tau_start": 30.0, "tau_anneal_steps": 3,
                                                   "backbone_kwargs": SMALL["stacked_resnet18"]}},
            "data": {"train": {"name": "m3dhmr_stream", "kwargs": {"seed": 3, "image_size": [96, 96],
                                                                  "input_size": SIZE, "two_views": True}},
                     "batch_size": 2, "num_workers": 0},
            "optim": {"name": "adam", "lr": 1e-3},
            "train": {"max_steps": 4, "steps_per_epoch": 2, "log_every": 1, "ckpt_every": 2, "progress": "off"},
        })

    train(cfg(tmp_path / "a"))
    mid = tmp_path / "a" / "checkpoints" / "step_00000002"
    assert read_card(mid)["step"] == 2
    torch.manual_seed(999)
    train(cfg(tmp_path / "b"), resume=str(mid))
    a, _ = load_model(tmp_path / "a" / "checkpoints" / "step_00000004")
    b, _ = load_model(tmp_path / "b" / "checkpoints" / "step_00000004")
    sa, sb, sm = a.state_dict(), b.state_dict(), load_model(mid)[0].state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sb[k], sa[k], rtol=0, atol=0, msg=k)
    assert int(a.train_step) == int(b.train_step) == 4 and a.temperature() == b.temperature() == 1.0
    running = [k for k in sa if k.endswith("running_mean")]
    assert running and any(not torch.equal(sa[k], sm[k]) for k in running)  # batch-norm state moved and matches
