"""Re-run the planted mutations of issue 9 against the suite: each must make its tests fail.

Each mutation is one textual edit of one source file. The script copies `src/`, `tests/`,
`configs/`, `tools/` (and pyproject.toml, README.md) to a temporary folder, applies one edit there, runs the named test files
against the copy (PYTHONPATH first, so the editable install is shadowed) and reports caught /
SURVIVED. The working tree is never touched. An edit whose text is no longer found is reported as
stale (update it here). The issue's ten bugs are here as 14 edits (each loss term and two
crop-scale strengths separately).

    .venv/bin/python tools/planted_mutations.py            # all 87, about 20 minutes on 2 cores
    .venv/bin/python tools/planted_mutations.py hidden ONNX  # only those whose name holds a word given
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (name, file, old text, new text, test files)
MUTATIONS = [
    ("official Procrustes forced to a proper rotation", "src/handrecon/geometry/procrustes.py",
     "def procrustes_trafo(pred: np.ndarray, gt: np.ndarray, allow_reflection: bool = True)",
     "def procrustes_trafo(pred: np.ndarray, gt: np.ndarray, allow_reflection: bool = False)",
     ["tests/test_procrustes.py"]),
    ("proper-rotation scale = S.sum()", "src/handrecon/geometry/procrustes.py",
     "scale = S[..., 0] + S[..., 1] + d * S[..., 2]", "scale = S.sum(-1)", ["tests/test_procrustes.py"]),
    ("FreiHAND scorer without reflections", "src/handrecon/eval/submission.py",
     "xyz_trafo = procrustes_trafo(pred.xyz, gt.xyz)",
     "xyz_trafo = procrustes_trafo(pred.xyz, gt.xyz, allow_reflection=False)",
     ["tests/test_submission.py", "tests/test_eval_runner.py", "tests/test_metrics.py"]),
    ("mirror dropped from crop_R (flip and the inference view)", "src/handrecon/geometry/crop.py",
     "return mirrored, np.diag(_MIRROR_X) @ np.asarray(R, np.float64)",
     "return mirrored, np.asarray(R, np.float64)",
     ["tests/test_transforms.py", "tests/test_predictor.py"]),
    ("root depth clamp 2.0 -> 1.0 m", "src/handrecon/geometry/root.py",
     "DEPTH_RANGE = (0.05, 2.0)", "DEPTH_RANGE = (0.05, 1.0)", ["tests/test_root.py", "tests/test_predictor.py"]),
    ("pose2d loss compares the prediction with itself", "src/handrecon/models/m3dhmr/loss.py",
     '"pose2d": F.l1_loss(uv, gt_uv)', '"pose2d": F.l1_loss(uv, uv)', ["tests/test_m3dhmr_model.py"]),
    ("norm loss compares the prediction with itself", "src/handrecon/models/m3dhmr/loss.py",
     '"norm": normal_loss(verts, gt_verts, self.faces)', '"norm": normal_loss(verts, verts, self.faces)',
     ["tests/test_m3dhmr_model.py"]),
    ("edge loss compares the prediction with itself", "src/handrecon/models/m3dhmr/loss.py",
     '"edge": edge_loss(verts / s, gt_verts / s, self.faces)', '"edge": edge_loss(verts / s, verts / s, self.faces)',
     ["tests/test_m3dhmr_model.py"]),
    ("FreiHAND evaluation ignores the dataset's K", "src/handrecon/eval/runner.py",
     "[smp.K for smp in samples]", '[None if dataset == "freihand" else smp.K for smp in samples]',
     ["tests/test_eval_runner.py"]),
    ("shipped-model preprocessing RGB -> BGR", "src/handrecon/models/m3dhmr/inference.py",
     "normalize_images(np.stack(crops), self.mean, self.std)",
     "normalize_images(np.stack(crops)[..., ::-1], self.mean, self.std)", ["tests/test_demo.py"]),
    ("shipped-model crop scale x0.85", "src/handrecon/models/m3dhmr/inference.py",
     "scale = self.crop_scale\n", "scale = self.crop_scale * 0.85\n", ["tests/test_demo.py"]),
    ("shipped-model crop scale x1.3", "src/handrecon/models/m3dhmr/inference.py",
     "scale = self.crop_scale\n", "scale = self.crop_scale * 1.3\n", ["tests/test_demo.py"]),
    ("HandOS hierarchical policy: joints and vertices see the camera token", "src/handrecon/models/handos/attention.py",
     "allowed[: J + V, : J + V] = True\n        allowed[tt, :] = True",
     "allowed[:, :] = True\n        allowed[tt, :] = True", ["tests/test_handos.py"]),
    ("HandOS side from normals inverted", "src/handrecon/models/handos/model.py",
     '["right" if v > 0 else "left" for v in volume.tolist()]', '["left" if v > 0 else "right" for v in volume.tolist()]',
     ["tests/test_handos.py"]),
    ("SimOTA ignores the cap on k", "src/handrecon/models/handos/assign.py",
     "        k = np.minimum(k, max_k)\n", "        k = k\n", ["tests/test_handos.py"]),
    ("deformable attention reads every instance from image 0", "src/handrecon/models/handos/attention.py",
     ".permute(0, 2, 3, 1)[image_index, slot]", ".permute(0, 2, 3, 1)[torch.zeros_like(image_index), slot]",
     ["tests/test_handos.py"]),
    ("HandOS 2D OKS compares the prediction with itself", "src/handrecon/models/handos/loss.py",
     '"oks_2d": oks_loss(pred["joints_2d"], gt["joints_2d"], valid, gt["area"]).mean()',
     '"oks_2d": oks_loss(pred["joints_2d"], pred["joints_2d"], valid, gt["area"]).mean()', ["tests/test_handos.py"]),
    ("One-Euro filter ignores the speed term", "src/handrecon/infer/tracking.py",
     "a = self._alpha(c.min_cutoff + c.beta * np.abs(self.dx), dt)", "a = self._alpha(c.min_cutoff, dt)",
     ["tests/test_video.py"]),
    ("IK fit leaves the joint limits", "src/handrecon/hand/fit.py",
     "pose = clamp_pose(pose.detach(), model)", "pose = pose.detach()", ["tests/test_fit.py"]),
    ("rigged GLB inverse bind matrices with the wrong sign", "src/handrecon/infer/rig.py",
     "ibm[:, :3, 3] = -j_rest", "ibm[:, :3, 3] = j_rest", ["tests/test_rig.py"]),
    ("validate() / evaluate: AUC without alignment", "src/handrecon/eval/scoring.py",
     'auc = official["xyz_al_auc3d"]', 'auc = official["xyz_auc3d"]', ["tests/test_m3dhmr_model.py"]),
    ("validate() / evaluate: PA-MPVPE without alignment", "src/handrecon/eval/scoring.py",
     '"pa_mpvpe_mm": official["mesh_al_mean3d"]', '"pa_mpvpe_mm": official["mesh_mean3d"]',
     ["tests/test_m3dhmr_model.py"]),
    ("detection metrics count hidden hands (no crowd flag)", "src/handrecon/eval/detection.py",
     '"iscrowd": int(crowd)', '"iscrowd": 0', ["tests/test_hand_detector.py"]),
    ("a hidden hand is a detection target", "src/handrecon/data/schema.py",
     "return int((self.visibility > 0).sum()) >= MIN_VISIBLE_KEYPOINTS or",
     "return int((self.visibility > 0).sum()) >= 0 or", ["tests/test_hand_detector.py"]),
    ("HandOS heatmap 'init' ignores the heatmap", "src/handrecon/models/handos/decoder.py",
     "start = joint_start.to(start.dtype).clamp(1e-4, 1 - 1e-4)", "pass", ["tests/test_handos.py"]),
    ("detectors (ONNX and torch, detections.find_hands) drop the letterbox scale", "src/handrecon/models/handos/detections.py",
     "input_size, scales[i], image.shape[:2]", "input_size, 1.0, image.shape[:2]", ["tests/test_detector.py"]),
    ("HO3D submission left in the OpenCV frame", "src/handrecon/eval/submission.py",
     "write_freihand_submission(path, op21_to_mano21(xyz) * GL_TO_CV, verts * GL_TO_CV)",
     "write_freihand_submission(path, op21_to_mano21(xyz), verts)", ["tests/test_eval_runner.py"]),
    ("HO3D submission in OP21 order", "src/handrecon/eval/submission.py",
     "write_freihand_submission(path, op21_to_mano21(xyz) * GL_TO_CV", "write_freihand_submission(path, xyz * GL_TO_CV",
     ["tests/test_eval_runner.py"]),
    ("DexYCB result file in metres", "src/handrecon/eval/submission.py",
     "zip(indices.tolist(), xyz * 1000.0)", "zip(indices.tolist(), xyz)", ["tests/test_eval_runner.py"]),
    ("HandOS box prompt keeps the detector's box", "src/handrecon/models/handos/model.py",
     "layers, heat = self.decode(det, pixel_values, image_index, query_index, boxes)",
     "layers, heat = self.decode(det, pixel_values, image_index, query_index)", ["tests/test_handos.py"]),
    ("HandOS box prompt takes the best-scoring query", "src/handrecon/models/handos/model.py",
     "np.lexsort((-scores[b], -iou))[0]", "np.argmax(scores[b])", ["tests/test_handos.py"]),
    ("normalisation table over the mean instead of the std", "src/handrecon/utils/image.py",
     "/ np.asarray(std, np.float32)[:, None]", "/ np.asarray(mean, np.float32)[:, None]", ["tests/test_images.py"]),
    ("cached exports never reused", "src/handrecon/utils/onnx.py", "    if path.is_file():\n", "    if False:\n",
     ["tests/test_infer_onnx.py"]),
    ("serving an exported model imports torch", "src/handrecon/infer/batch.py",
     "import numpy as np\nimport orjson\n", "import numpy as np\nimport orjson\nimport torch  # noqa: F401\n",
     ["tests/test_infer_onnx.py"]),
    ("numpy warp reads the image's edge instead of zeros outside it", "src/handrecon/geometry/crop.py",
     "g = (1 - frac) * ((i0 >= 0) & (i0 < size))", "g = (1 - frac) + 0 * i0", ["tests/test_crop.py"]),
    ("side heads (torch and ONNX, detections.read_box_crops) invert the left probability",
     "src/handrecon/models/handos/detections.py",
     "p_left = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))", "p_left = 1 / (1 + np.exp(np.asarray(logits, np.float64)))",
     ["tests/test_box_verifier.py", "tests/test_side_head.py"]),
    ("ONNX side head reads another output than the logits", "src/handrecon/models/handos/onnx_detector.py",
     "return self.session.run([SIDE_OUTPUT_NAME], {SIDE_INPUT_NAME: crops})[0]",
     "return -self.session.run([SIDE_OUTPUT_NAME], {SIDE_INPUT_NAME: crops})[0]", ["tests/test_detector.py"]),
    ("cached exports are never optimised", "src/handrecon/utils/onnx.py",
     "        optimize_in_place(path)\n", "", ["tests/test_detector.py"]),
    ("a video frame's NaN hand is kept", "src/handrecon/infer/video.py",
     "result.hands = [h for h in result.hands if bad[id(h)] is None]", "pass", ["tests/test_video.py"]),
    ("work run ahead comes back newest first (batches, video chunks, evaluation)", "src/handrecon/utils/threads.py",
     "        if len(pending) > ahead:\n            yield pending.popleft().result()",
     "        if len(pending) > ahead:\n            yield pending.pop().result()",
     ["tests/test_infer_batch.py", "tests/test_video.py"]),
    ("detector hooks record into one place for every thread", "src/handrecon/models/handos/detector.py",
     "_RECORDING = threading.local()", "_RECORDING = type(\"Shared\", (), {})()", ["tests/test_detector.py"]),
    ("side head: left when the cues differ (the parity inverted)", "src/handrecon/models/handos/side_head.py",
     "    return facing == chiral\n", "    return facing != chiral\n", ["tests/test_side_head.py"]),
    ("side head: a mirrored crop keeps its keypoints", "src/handrecon/models/handos/side_head.py",
     "            uv_px[mirror, :, 0] = S - 1 - uv_px[mirror, :, 0]\n", "", ["tests/test_side_head.py"]),
    ("side head: the side logit ignores the chirality", "src/handrecon/models/handos/side_head.py",
     "torch.where(chirality(uv), facing, -facing)", "facing", ["tests/test_side_head.py"]),
    ("evaluate-detector: side accuracy over every detection, matched or not", "src/handrecon/eval/detection.py",
     "    read = detected[detected >= 0]\n", "    read = np.maximum(detected, 0)\n", ["tests/test_side_head.py"]),
    ("HandOS 2D keypoint L1 as a per-coordinate mean (the OKS terms outweigh it)", "src/handrecon/models/handos/loss.py",
     "return ((pred - gt).abs() * w).sum() / max(pred.shape[0], 1)",
     "return ((pred - gt).abs() * w).sum() / (w.sum() * pred.shape[-1]).clamp(min=1.0)", ["tests/test_handos.py"]),
    ("prompted boxes without a side stay right (the side head's reading dropped)", "src/handrecon/infer/pipeline.py",
     "sides[i] = [g if g is not None else r for g, r in zip(given, read.sides)]",
     "sides[i] = [g if g is not None else \"right\" for g, r in zip(given, read.sides)]", ["tests/test_pipeline.py"]),
    ("a weights-only read verifies no file at all", "src/handrecon/card.py",
     "            if files is not None and name not in files:\n", "            if files is not None:\n",
     ["tests/test_train_checkpoint.py"]),
    ("init_from asks for the training state too", "src/handrecon/train/engine.py",
     "card = ckpt.read_card(d, verify=True, files=(ckpt.MODEL_FILE,))", "card = ckpt.read_card(d, verify=True)",
     ["tests/test_handos.py"]),
    ("HandOS targets: the ground-truth index taken in the whole batch, not in its image", "src/handrecon/models/handos/model.py",
     "rows = (counts[image_index.cpu()] + gt_index.cpu())", "rows = (0 * counts[image_index.cpu()] + gt_index.cpu())",
     ["tests/test_handos.py"]),
    ("HandOS ref_3d attached still detaches the 3D references", "src/handrecon/models/handos/decoder.py",
     'if interactive and self.ref_3d == "attached":', 'if False and self.ref_3d == "attached":',
     ["tests/test_handos.py"]),
    ("recolour draws from the random stream even when p_recolour is 0", "src/handrecon/data/synth/engine.py",
     "return recolour(image, rng) if self.cfg.p_recolour > 0 and rng.random() < self.cfg.p_recolour else image",
     "return recolour(image, rng) if rng.random() < self.cfg.p_recolour else image",
     ["tests/test_synth_engine.py"]),
    ("recolour turns hues without the grey axis fixed", "src/handrecon/data/synth/appearance.py",
     "turn = grey + np.cos(a) * (np.eye(3, dtype=np.float32) - grey) + np.sin(a) * cross",
     "turn = np.cos(a) * np.eye(3, dtype=np.float32) + np.sin(a) * cross",
     ["tests/test_synth_engine.py"]),
    ("durable writes skip the fsync", "src/handrecon/utils/io.py",
     "            if durable:\n                os.fsync(f.fileno())", "            pass",
     ["tests/test_io.py"]),
    ("the row-first crop blends with the wrong row weights", "src/handrecon/geometry/crop.py",
     "rows += span.take(y1, 0) * fv[:, None, None]", "rows += span.take(y1, 0) * gv[:, None, None]",
     ["tests/test_crop.py", "tests/test_golden_outputs.py"]),
    ("cutouts are used as backgrounds too", "src/handrecon/data/synth/engine.py",
     "self.backgrounds: list[Path] = [p for p, c in zip(images, cut) if not c]",
     "self.backgrounds: list[Path] = list(images)",
     ["tests/test_synth_engine.py"]),
    ("cutouts pasted without their alpha", "src/handrecon/data/synth/appearance.py",
     "canvas.paste(cut, (int(x), int(y)), cut)", "canvas.paste(cut.convert(\"RGB\"), (int(x), int(y)))",
     ["tests/test_synth_engine.py"]),
    ("hand colour draws from the random stream even when p_hand_colour is 0", "src/handrecon/data/synth/engine.py",
     "return random_hand_colour(rng) if p > 0 and rng.random() < p else None",
     "return random_hand_colour(rng) if rng.random() < p else None",
     ["tests/test_synth_engine.py"]),
    ("int8 export calibrates on blank inputs", "src/handrecon/infer/quantize.py",
     "return None if batch is None else {input_name: batch}",
     "return None if batch is None else {input_name: np.zeros_like(batch)}",
     ["tests/test_infer_onnx.py"]),
    ("int8 export with one weight scale per tensor", "src/handrecon/infer/quantize.py",
     "quant_format=QuantFormat.QDQ, per_channel=True,", "quant_format=QuantFormat.QDQ, per_channel=False,",
     ["tests/test_infer_onnx.py"]),
    ("evaluate-detector measures at NMS 0.7 while 0.5 is served", "src/handrecon/eval/detection.py",
     "score_threshold=0.01, nms_iou=nms_iou)[0]", "score_threshold=0.01, nms_iou=0.7)[0]",
     ["tests/test_hand_detector.py"]),
    ("packaging a detector drops the folder's side head", "tools/package_detector.py",
     "    if (out / SIDE_HEAD_DIR).is_dir():", "    if False:",
     ["tests/test_hand_detector.py"]),
    ("train.channels_last leaves the training batches N C H W", "src/handrecon/train/engine.py",
     "batch = to_device(batch, self.device, self.cfg.train.channels_last)", "batch = to_device(batch, self.device)",
     ["tests/test_train_engine.py"]),
    ("a list of dataset roots reads only its first folder", "src/handrecon/data/stream.py",
     "return ConcatDataset([build_dataset(name, r, split, **kw) for r in roots]), roots",
     "return ConcatDataset([build_dataset(name, r, split, **kw) for r in roots[:1]]), roots",
     ["tests/test_m3dhmr_crops.py"]),
    ("box verifier: served scores ignore the calibrated exponent", "src/handrecon/models/handos/detections.py",
     "** float(exponent)", "** 1.0", ["tests/test_box_verifier.py"]),
    ("box verifier: candidates keep the detector's order after re-scoring", "src/handrecon/models/handos/detections.py",
     "keep = nms(moved, scores, nms_iou)", "keep = nms(moved, found.scores, nms_iou)", ["tests/test_box_verifier.py"]),
    ("box verifier: the candidates' boxes served, not the moved ones", "src/handrecon/models/handos/detections.py",
     "return Detections(moved[keep], scores[keep], found.query[keep])",
     "return Detections(found.boxes[keep], scores[keep], found.query[keep])", ["tests/test_box_verifier.py"]),
    ("box verifier: no NMS after moving boxes", "src/handrecon/models/handos/detections.py",
     "keep = nms(moved, scores, nms_iou)", "keep = nms(moved, scores, 1.0)", ["tests/test_box_verifier.py"]),
    ("box verifier: a mirrored training crop keeps its dx", "src/handrecon/models/handos/box_verifier.py",
     "                deltas[0] = -deltas[0]", "                pass", ["tests/test_box_verifier.py"]),
    ("box verifier: boxes learn to move onto hidden hands too", "src/handrecon/models/handos/box_verifier.py",
     "iou = np.where(np.asarray(detectable, bool)[None], box_iou(boxes, gt), 0.0)", "iou = box_iou(boxes, gt)",
     ["tests/test_box_verifier.py"]),
    ("box verifier: settings with zero passes accepted", "src/handrecon/models/handos/detections.py",
     "                and self.passes >= 1):", "                and True):", ["tests/test_box_verifier.py"]),
    ("box verifier ensemble: mean logit instead of mean p_hand", "src/handrecon/models/handos/box_verifier.py",
     "mean_logit = torch.logsumexp(F.logsigmoid(stacked), 0) - torch.logsumexp(F.logsigmoid(-stacked), 0)",
     "mean_logit = stacked.mean(0)", ["tests/test_box_verifier.py"]),
    ("box verifier ensemble: mean log size instead of mean size", "src/handrecon/models/handos/box_verifier.py",
     "sizes = torch.logsumexp(d[..., 2:].clamp(-MAX_LOG_SCALE, MAX_LOG_SCALE), 0) - log_n",
     "sizes = d[..., 2:].mean(0)", ["tests/test_box_verifier.py"]),
    ("int8 weights loaded without their scales", "src/handrecon/checkpoint.py",
     "t = t.float() * scale.float().view(-1, *[1] * (t.dim() - 1))", "t = t.float()", ["tests/test_package_model.py"]),
    ("box deltas: the centre shift applied backwards", "src/handrecon/geometry/boxes.py",
     "cx, cy = (b[:, 0] + b[:, 2]) / 2 + d[:, 0] * bw", "cx, cy = (b[:, 0] + b[:, 2]) / 2 - d[:, 0] * bw",
     ["tests/test_box_verifier.py"]),
    ("onnxruntime box verifier ignores the exported deltas", "src/handrecon/models/handos/onnx_detector.py",
     "return out[SIDE_OUTPUT_NAME], out.get(DELTAS_OUTPUT_NAME)", "return out[SIDE_OUTPUT_NAME], None",
     ["tests/test_box_verifier.py"]),
    ("box verifiers (torch and ONNX, detections.read_roi_crops) never move their boxes",
     "src/handrecon/models/handos/detections.py",
     "moved = boxes if deltas is None else apply_box_deltas(boxes, deltas)", "moved = boxes", ["tests/test_box_verifier.py"]),
    ("box verifier: RoI crops without context around the box", "src/handrecon/models/handos/detections.py",
     "sx, sy = size / (w * context), size / (h * context)", "sx, sy = size / w, size / h", ["tests/test_box_verifier.py"]),
    ("box verifier: every candidate up to max_hands is verified, not the top_k", "src/handrecon/models/handos/detections.py",
     "settings.candidate_threshold), floor), settings.top_k", "settings.candidate_threshold), floor), max_hands",
     ["tests/test_box_verifier.py"]),
    ("box verifier: the reachable floor drops the exponent (prunes candidates the verifier could serve)",
     "src/handrecon/models/handos/detections.py",
     "max(float(score_threshold), 0.0) ** (1.0 / float(exponent))", "max(float(score_threshold), 0.0)",
     ["tests/test_box_verifier.py"]),
    ("box verifier: a hand-free scene folder is refused as training data", "src/handrecon/models/handos/box_verifier.py",
     "        if not len(self.others):  # a folder without hands", "        if not len(self.hands) or not len(self.others):  # a folder without hands",
     ["tests/test_box_verifier.py"]),
    ("box verifier: a box on a hidden hand is trained as a non-hand", "src/handrecon/models/handos/box_verifier.py",
     "    target[(iou.max(1) >= FOUND_IOU) & (best_detectable < FOUND_IOU)] = np.nan\n", "", ["tests/test_box_verifier.py"]),
    ("box verifier: hard 0/1 targets instead of the IoU ramp", "src/handrecon/models/handos/box_verifier.py",
     "np.clip((best_detectable - lo) / (hi - lo), 0.0, 1.0)", "(best_detectable >= FOUND_IOU).astype(float)",
     ["tests/test_box_verifier.py"]),
    ("the onnxruntime detector's API defaults drift from the served NMS", "src/handrecon/models/handos/onnx_detector.py",
     "nms_iou: float = DEFAULT_NMS_IOU", "nms_iou: float = 0.7", ["tests/test_detector.py"]),
    ("box verifier calibration: the hand-free set is read but its rate is not held", "tools/calibrate_box_verifier.py",
     "if m[\"precision_at_threshold\"] >= target and fp <= target_fp:", "if m[\"precision_at_threshold\"] >= target:",
     ["tests/test_box_verifier.py"]),
    ("a detector stored in float16 runs in float16", "src/handrecon/models/handos/detector.py",
     "use_safetensors=True, dtype=torch.float32)", "use_safetensors=True)", ["tests/test_detector.py"]),
    ("re-packaging a detector keeps the old detector's box verifier", "tools/package_detector.py",
     "        shutil.copytree(out / SIDE_HEAD_DIR, tmp / SIDE_HEAD_DIR)\n",
     "        shutil.copytree(out / SIDE_HEAD_DIR, tmp / SIDE_HEAD_DIR)\n    if (out / VERIFIER_DIR).is_dir():\n        shutil.copytree(out / VERIFIER_DIR, tmp / VERIFIER_DIR)\n",
     ["tests/test_hand_detector.py"]),
]


def run(name: str, file: str, old: str, new: str, tests: list[str]) -> str:
    with tempfile.TemporaryDirectory() as d:
        for part in ("src", "tests", "configs", "tools"):
            shutil.copytree(ROOT / part, Path(d) / part, ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):  # the wheel test builds the copy
            shutil.copy(ROOT / name, Path(d) / name)
        target = Path(d) / file
        text = target.read_text()
        if old not in text:
            return "stale (text not found)"
        target.write_text(text.replace(old, new, 1))
        env = {**os.environ, "PYTHONPATH": str(Path(d) / "src")}
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                              cwd=d, env=env, capture_output=True, text=True)
        failed = [ln.split(" ")[1] for ln in proc.stdout.splitlines() if ln.startswith("FAILED ")]
        return f"caught by {failed[0]}" if proc.returncode == 1 and failed else (
            "SURVIVED" if proc.returncode == 0 else f"error (pytest exit {proc.returncode})")


def main() -> int:
    survived = 0
    words = sys.argv[1:]
    for name, file, old, new, tests in MUTATIONS:
        if words and not any(w.lower() in name.lower() for w in words):
            continue
        outcome = run(name, file, old, new, tests)
        survived += not outcome.startswith("caught")
        print(f"| {name} | {outcome} |", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
