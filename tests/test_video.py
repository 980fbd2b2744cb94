"""Video: One-Euro smoothing, tracking, and `reconstruct` on a synthetic clip rendered by the
engine (a hand moving with exact ground truth): smoothing lowers the acceleration error without
raising the position error by more than 10 %, an interrupted run resumes to the same output."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from handrecon.infer.results import HandResult  # noqa: E402
from handrecon.infer.tracking import HandTracker, OneEuroConfig, OneEuroFilter  # noqa: E402
from handrecon.infer.video import reconstruct_video  # noqa: E402

FPS = 25


def test_one_euro_removes_jitter_and_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=0.0))
    t = np.arange(100) / FPS
    still = [f(np.array([5.0]) + rng.normal(0, 0.1, 1), s)[0] for s in t]
    assert np.std(still[20:]) < 0.5 * 0.1  # jitter at rest shrinks
    g = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=5.0))
    ramp = [g(np.array([10.0 * s]), s)[0] for s in t]
    assert abs(ramp[-1] - 10.0 * t[-1]) < 0.5  # with a speed term it keeps up with a steady motion
    h = OneEuroFilter(OneEuroConfig())
    x = np.random.default_rng(1).normal(size=(3, 778, 3))
    np.testing.assert_array_equal(h(x, 0.0), x)  # the first sample passes through, any shape


def hand(box, shift=0.0):
    kp = np.stack([np.linspace(box[0], box[2], 21), np.linspace(box[1], box[3], 21)], 1) + shift
    return HandResult(box=np.asarray(box, np.float64), side="right", keypoints_2d=kp, keypoints_3d=np.zeros((21, 3)),
                      vertices=np.zeros((5, 3)), cam_t=np.zeros(3))


def test_the_mesh_keeps_up_with_the_2d_keypoints_in_fast_motion():
    """A hand crossing the view at 0.3 m/s (300 px/s in the image): the smoothed 3D (keypoints,
    vertices, translation, in metres) lags no more than the smoothed 2D does, in time, so the mesh
    stays on the hand in the overlay. Filtered in metres, the 3D cut-off barely rose with speed
    and lagged ~150 ms behind the 2D's ~8 ms. At rest both are still de-jittered."""
    tracker = HandTracker(OneEuroConfig())
    rng = np.random.default_rng(0)
    for i in range(50):
        t = i / FPS
        moved = HandResult(box=np.array([300 * t, 0, 300 * t + 150, 150]), side="right",
                           keypoints_2d=np.full((21, 2), 300 * t), keypoints_3d=np.full((21, 3), 0.3 * t),
                           vertices=np.full((5, 3), 0.3 * t), cam_t=np.full(3, 0.3 * t))
        tracker.update([moved], i, t)
    lag = {name: (300 * t - moved.keypoints_2d.mean()) / 300 if name == "keypoints_2d" else
           (0.3 * t - getattr(moved, name).mean()) / 0.3 for name in ("keypoints_2d", "keypoints_3d", "vertices", "cam_t")}
    assert all(0 < v < 0.02 for v in lag.values()), lag  # seconds behind
    still = HandTracker(OneEuroConfig())
    raw, smoothed = [], []
    for i in range(50):
        noise = rng.normal(0, 0.002, 3)  # 2 mm of jitter on a hand at rest
        h = HandResult(box=np.array([0, 0, 150, 150]), side="right", keypoints_2d=np.zeros((21, 2)),
                       keypoints_3d=np.zeros((21, 3)), vertices=np.zeros((5, 3)), cam_t=0.5 + noise)
        still.update([h], i, i / FPS)
        raw.append(noise)
        smoothed.append(h.cam_t - 0.5)
    assert np.std(smoothed[10:]) < 0.6 * np.std(raw[10:])


def test_tracker_keeps_ids_through_reordering_and_gaps():
    tr = HandTracker(smoothing=None, max_age=2)
    a, b = [0, 0, 50, 50], [200, 0, 250, 50]
    assert tr.update([hand(a), hand(b)], 0, 0.0) == [0, 1]
    assert tr.update([hand(b, 3), hand(a, 3)], 1, 0.04) == [1, 0]  # order in the frame does not matter
    assert tr.update([hand(b, 6)], 2, 0.08) == [1]
    assert tr.update([hand(a, 6), hand(b, 6)], 3, 0.12) == [0, 1]  # a gap of one frame keeps the id
    for f in range(4, 8):
        tr.update([hand(b, 6)], f, f / FPS)
    assert tr.update([hand(a), hand(b)], 8, 0.32) == [2, 1]  # gone longer than max_age: a new id
    state = tr.state()
    again = HandTracker(smoothing=None, max_age=2)
    again.load_state(json.loads(json.dumps(state)))
    assert again.update([hand(b)], 9, 0.36) == tr.update([hand(b)], 9, 0.36)


def test_doubtful_hands_only_continue_tracks():
    """birth_score (ByteTrack): a hand scoring below it keeps a track alive but never starts one,
    and the confident hands are assigned first."""
    tr = HandTracker(smoothing=None, min_hits=1)
    a, b = [0, 0, 50, 50], [200, 0, 250, 50]
    scored = lambda box, score, shift=0.0: dataclasses.replace(hand(box, shift), score=score)  # noqa: E731
    assert tr.update([scored(a, 0.9), scored(b, 0.3)], 0, 0.0, birth_score=0.5) == [0, None]  # b: too doubtful to start
    assert tr.update([scored(a, 0.3, 2)], 1, 0.04, birth_score=0.5) == [0]  # a low score continues a
    assert tr.update([scored(a, 0.2, 2), scored(a, 0.8, 4)], 2, 0.08, birth_score=0.5) == [None, 0]  # the confident first
    assert tr.update([scored(b, 0.8)], 3, 0.12, birth_score=0.5) == [1]  # confident: a new track
    assert tr.update([scored(a, 0.3, 5), hand(b)], 4, 0.16, birth_score=0.5) == [0, 1]  # no score (a prompt): confident
    assert HandTracker(smoothing=None).update([scored(b, 0.3)], 0, 0.0) == [0]  # without birth_score: every hand
    tr = HandTracker(smoothing=None, min_hits=3)  # a track continues through doubtful frames once confirmed
    assert tr.update([scored(a, 0.9)], 0, 0.0, birth_score=0.5) == [0]
    assert tr.update([scored(a, 0.3)], 1, 0.04, birth_score=0.5) == [None]  # one confident frame: not yet
    for f in (2, 3):
        assert tr.update([scored(a, 0.9)], f, f / FPS, birth_score=0.5) == [0]
    assert tr.update([scored(a, 0.3)], 4, 4 / FPS, birth_score=0.5) == [0]  # three: confirmed
    again = HandTracker(smoothing=None, min_hits=3)
    again.load_state(json.loads(json.dumps(tr.state())))
    assert again.update([scored(a, 0.3)], 5, 5 / FPS, birth_score=0.5) == [0]  # the count survives a resume


class BrightnessDetector:
    """One hand per frame, scored by the frame's brightness (a frame of grey level g scores g / 255,
    to one decimal); honours the score threshold, as a detector does."""

    kind, side_head = "brightness", None

    def __init__(self):
        self.calls = set()

    def detect(self, images, score_threshold, nms_iou, max_hands=100):
        from handrecon.models.handos.detections import Detections

        self.calls.add((score_threshold, max_hands))
        out = []
        for image in images:
            score = round(float(image.mean()) / 255, 1)
            keep = score >= score_threshold
            out.append(Detections(np.array([[20, 20, 100, 100]] * keep, np.float64).reshape(-1, 4),
                                  np.array([score] * keep), np.arange(int(keep))))
        return out

    def describe(self):
        return {"kind": self.kind}


def test_a_tracked_hand_continues_at_the_track_threshold(tmp_path):
    """Behind a detector, frames where the tracked (and confirmed: three confident frames) hand
    scores 0.3 keep it (track threshold 0.25) where the served 0.5 alone dropped it; a hand scoring
    0.3 with no track never appears."""
    import handrecon
    from handrecon.infer.pipeline import TwoStagePredictor

    clip = tmp_path / "grey.mp4"
    levels = [77, 230, 230, 230, 77, 77, 26, 77, 230]  # scores 0.3, 0.9 x 3, 0.3, 0.3, 0.1, 0.3, 0.9
    container = av.open(str(clip), mode="w")
    stream = container.add_stream("libx264", rate=Fraction(FPS))
    stream.width, stream.height, stream.pix_fmt, stream.options = 128, 128, "yuv444p", {"crf": "8"}
    for g in levels:
        for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((128, 128, 3), g, np.uint8), format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    pipeline = TwoStagePredictor(BrightnessDetector(), handrecon.load("m3dhmr-openhand"))
    counts = {}
    for name, threshold in (("off", None), ("on", 0.25)):
        pipeline.detector.calls.clear()
        reconstruct_video(pipeline, clip, tmp_path / name, None, overlay=False, track_threshold=threshold)
        lines = [json.loads(line) for line in (tmp_path / name / "grey.jsonl").read_text().splitlines()]
        counts[name] = [len(r["hands"]) for r in lines]
        assert {h["track_id"] for r in lines for h in r["hands"]} == {0}  # one hand, one track
        assert pipeline.detector.calls == ({(0.5, 100)} if threshold is None else {(0.25, 8)})  # the verifier reads 8
    assert counts == {"off": [0, 1, 1, 1, 0, 0, 0, 0, 1], "on": [0, 1, 1, 1, 1, 1, 0, 1, 1]}


def test_a_tracks_side_is_its_majority_and_side_score_follows_it():
    """One frame read as the other side keeps the track's side; its side score becomes that of the
    track's side (1 - the frame's own)."""
    tr = HandTracker(smoothing=None)
    box = [0, 0, 50, 50]
    for f in range(3):
        h = dataclasses.replace(hand(box), side="left", side_score=0.8)
        tr.update([h], f, f / FPS)
    odd = dataclasses.replace(hand(box), side="right", side_score=0.7)
    tr.update([odd], 3, 3 / FPS)
    assert odd.side == "left" and odd.side_score == pytest.approx(0.3)
    given = dataclasses.replace(hand(box), side="right")  # a side given, no score
    tr.update([given], 4, 4 / FPS)
    assert given.side == "left" and given.side_score is None


def render_clip(path, frames=30, seed=7):
    """A clip of one hand (the crop preset) drifting and turning; returns the GT joints per frame (m)."""
    from handrecon.data.synth.config import preset
    from handrecon.data.synth.engine import SynthEngine
    from handrecon.data.synth.scene import sample_scene
    from handrecon.geometry.rotations import axis_angle_to_matrix

    import torch

    cfg = dataclasses.replace(preset("crop"), p_blur=0.0, p_noise=0.0, p_jpeg=0.0, p_motion_blur=0.0, p_color=0.0)
    engine = SynthEngine(cfg)
    scene = sample_scene(engine.models, cfg, np.random.default_rng(seed))
    base = scene.hands[0]
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=Fraction(FPS))
    stream.pix_fmt, stream.options = "yuv444p", {"crf": "8"}
    gt = []
    for i in range(frames):
        s = i / FPS
        R = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, 0.6 * np.sin(2 * np.pi * 0.4 * s)]]))[0].numpy()
        offset = np.array([0.02 * np.sin(2 * np.pi * 0.3 * s), 0.015 * np.cos(2 * np.pi * 0.5 * s), 0.0])
        wrist = base.joints[0]
        move = lambda p: (p - wrist) @ R.T + wrist + offset  # noqa: E731
        h = dataclasses.replace(base, vertices=move(base.vertices), joints=move(base.joints))
        frame_scene = dataclasses.replace(scene, hands=[h])
        image = engine.render_scene(frame_scene, np.random.default_rng(seed))[0]  # same background and light
        if i == 0:
            stream.width, stream.height = image.shape[1], image.shape[0]
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
        gt.append(h.joints)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return np.stack(gt), scene.K, base.side


def errors(jsonl, gt):
    pred = np.stack([np.asarray(json.loads(line)["hands"][0]["keypoints_3d"]) for line in open(jsonl)])
    pred = pred - pred[:, :1] + gt[:, :1]  # root-relative: the crop model's depth is not the point here
    position = np.linalg.norm(pred - gt, axis=-1).mean() * 1000
    acc = lambda x: x[2:] - 2 * x[1:-1] + x[:-2]  # noqa: E731
    acceleration = np.linalg.norm(acc(pred) - acc(gt), axis=-1).mean() * 1000
    return position, acceleration


def test_smoothing_on_a_rendered_clip_and_exact_resume(tmp_path):
    import handrecon

    clip = tmp_path / "clip.mp4"
    gt, K, side = render_clip(clip)
    predictor = handrecon.load("m3dhmr-openhand")
    focal = float(K[0, 0])
    raw = reconstruct_video(predictor, clip, tmp_path / "raw", smoothing=None, focal=focal, side=side, overlay=False)
    smooth = reconstruct_video(predictor, clip, tmp_path / "smooth", smoothing=OneEuroConfig(), focal=focal, side=side)
    assert raw.frames == smooth.frames == 30 and smooth.tracks == 1 and smooth.hands == 30
    p_raw, a_raw = errors(tmp_path / "raw" / "clip.jsonl", gt)
    p_smooth, a_smooth = errors(tmp_path / "smooth" / "clip.jsonl", gt)
    assert a_smooth < 0.7 * a_raw, (a_raw, a_smooth)  # jitter (acceleration error) goes down
    assert p_smooth < 1.1 * p_raw, (p_raw, p_smooth)  # and the position error rises by at most 10 %
    overlay = av.open(str(tmp_path / "smooth" / "clip_overlay.mp4"))
    assert sum(1 for _ in overlay.decode(video=0)) == 30
    overlay.close()

    class Interrupt(Exception):
        pass

    def crash(done, total, fps):
        if done >= 16:
            raise Interrupt

    out = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        reconstruct_video(predictor, clip, out, OneEuroConfig(), focal=focal, side=side, overlay=False, on_progress=crash)
    assert len((out / "clip.jsonl").read_text().splitlines()) == 16
    rep = reconstruct_video(predictor, clip, out, OneEuroConfig(), focal=focal, side=side, overlay=False)
    assert rep.resumed_at == 16 and rep.frames == 30
    assert (out / "clip.jsonl").read_text() == (tmp_path / "smooth" / "clip.jsonl").read_text()
    assert reconstruct_video(predictor, clip, out, OneEuroConfig(), focal=focal, side=side,
                             overlay=False).resumed_at == 30  # finished: nothing redone
    out = tmp_path / "retuned"
    with pytest.raises(Interrupt):
        reconstruct_video(predictor, clip, out, OneEuroConfig(), focal=focal, side=side, overlay=False, on_progress=crash)
    rotated = handrecon.load("m3dhmr-openhand", test_time_rotations=(0, -45, 45))
    rep = reconstruct_video(rotated, clip, out, OneEuroConfig(), focal=focal, side=side, overlay=False)
    assert rep.resumed_at == 0 and rep.frames == 30  # other settings: started again, not half of each
    assert (out / "clip.jsonl").read_text() != (tmp_path / "smooth" / "clip.jsonl").read_text()


def test_cli_reconstruct_video_and_a_broken_file(tmp_path):
    from typer.testing import CliRunner

    from handrecon.cli import app

    clip = tmp_path / "clip.mp4"
    render_clip(clip, frames=6)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    r = CliRunner().invoke(app, ["reconstruct", str(clip), str(tmp_path / "broken.mp4"), "--out", str(tmp_path / "out"),
                                 "--no-overlay", "--crop", "--side", "right", "--fit"])
    assert r.exit_code == 1 and "6 frame(s)" in r.output and "broken.mp4" in r.output and "Traceback" not in r.output
    assert next(line for line in r.output.splitlines() if "broken.mp4" in line).count("broken.mp4") == 1
    assert not (tmp_path / "out" / "broken.jsonl").exists()  # nothing written for a video that does not open
    lines = (tmp_path / "out" / "clip.jsonl").read_text().splitlines()
    assert [json.loads(x)["frame_index"] for x in lines] == list(range(6))
    assert all(h["track_id"] == 0 for x in lines for h in json.loads(x)["hands"])
    import pygltflib  # the track's hand, skinned and animated over the 6 frames

    doc = pygltflib.GLTF2().load(str(tmp_path / "out" / "clip_track0.glb"))
    assert doc.skins and doc.animations and doc.accessors[doc.animations[0].samplers[0].input].count == 6
    same = ["reconstruct", str(clip), "--out", str(tmp_path / "out"), "--no-overlay", "--crop", "--side", "right"]
    r = CliRunner().invoke(app, [*same, "--fit"])  # the same settings: nothing redone
    assert r.exit_code == 0 and "already complete" in r.output, r.output
    r = CliRunner().invoke(app, same)  # without --fit: a run of other settings, redone (never half with fits)
    assert r.exit_code == 0 and "already complete" not in r.output and "resumed" not in r.output, r.output
    lines = (tmp_path / "out" / "clip.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all("fit" not in h for x in lines for h in json.loads(x)["hands"])
    for flag, birth in (([], 0.5), (["--track-threshold", "0.5"], None)):  # behind the detector: on unless >= 0.5
        out = tmp_path / f"tracked{len(flag)}"
        r = CliRunner().invoke(app, ["reconstruct", str(clip), "--out", str(out), "--no-overlay", "--formats", "", *flag])
        state = json.loads((out / "clip.state.json").read_text())["settings"]
        assert r.exit_code == 0 and state["birth_score"] == birth, r.output
    (tmp_path / "afile").write_text("")
    r = CliRunner().invoke(app, ["reconstruct", str(clip), "--out", str(tmp_path / "afile"), "--crop"])
    assert r.exit_code == 2 and r.output.strip() == f"error: the output folder {tmp_path / 'afile'} is a file; " \
        "give a folder (new or existing)", r.output  # once, before any video (was a failure per video, exit 1)


def test_a_hand_with_non_finite_numbers_is_left_out_and_reported(tmp_path):
    """A frame's hand whose numbers are NaN is not tracked or written (the JSON Lines stay strict
    JSON) and the report names the frame; the other frames are untouched."""
    import handrecon

    clip = tmp_path / "clip.mp4"
    render_clip(clip, frames=6)
    model = handrecon.load("m3dhmr-openhand")

    class BreaksFrame3:
        source = "breaks frame 3"

        def predict_batch(self, images, Ks, boxes, sides, batch_size=8):
            results = model.predict_batch(images, Ks, boxes, sides, batch_size)
            for k, result in enumerate(results):
                if self.seen + k == 3:
                    result.hands[0].vertices = np.full_like(result.hands[0].vertices, np.nan)
            self.seen += len(results)
            return results

        seen = 0

    rep = reconstruct_video(BreaksFrame3(), clip, tmp_path / "out", overlay=False, batch_size=4)
    assert rep.frames == 6 and rep.hands == 5 and rep.dropped == [(3, "non-finite vertices")]
    strict = lambda s: json.loads(s, parse_constant=lambda c: pytest.fail(f"{c} in the JSON Lines"))  # noqa: E731
    lines = [strict(x) for x in (tmp_path / "out" / "clip.jsonl").read_text().splitlines()]
    assert [len(x["hands"]) for x in lines] == [1, 1, 1, 0, 1, 1]


def test_chunks_side_by_side_give_the_same_track(tmp_path):
    """Several chunks of frames through the predictor at once (`workers`): the JSON Lines equal a
    run one chunk at a time (frames in order, the same track ids and smoothed numbers)."""
    import handrecon

    clip = tmp_path / "clip.mp4"
    render_clip(clip, frames=8)
    model = handrecon.load("m3dhmr-openhand")
    one = reconstruct_video(model, clip, tmp_path / "one", overlay=False, batch_size=2)
    three = reconstruct_video(model, clip, tmp_path / "three", overlay=False, batch_size=2, workers=3)
    assert (one.frames, one.hands, one.tracks) == (three.frames, three.hands, three.tracks) == (8, 8, 1)
    a = [json.loads(x) for x in (tmp_path / "one" / "clip.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "three" / "clip.jsonl").read_text().splitlines()]
    assert [x["frame_index"] for x in b] == list(range(8))
    for x, y in zip(a, b):
        assert [h["track_id"] for h in x["hands"]] == [h["track_id"] for h in y["hands"]]
        np.testing.assert_allclose(x["hands"][0]["keypoints_3d"], y["hands"][0]["keypoints_3d"], atol=1e-5)


def test_cli_reconstruct_finds_videos_inside_folders(tmp_path):
    """A folder's videos are reconstructed with its images; a folder holding only videos is no error; the
    run's own overlay video inside the input folder is not read back on a second run."""
    from PIL import Image
    from typer.testing import CliRunner

    from handrecon.cli import app

    clips, mixed = tmp_path / "clips", tmp_path / "mixed"
    clips.mkdir()
    mixed.mkdir()
    render_clip(clips / "clip.mp4", frames=3)
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(mixed / "still.png")
    (mixed / "more").mkdir()
    render_clip(mixed / "more" / "other.mkv", frames=2)
    out = clips / "out"
    args = ["reconstruct", str(clips), str(mixed), "--out", str(out), "--crop", "--side", "right", "--formats", ""]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "clip.mp4: 3 frame(s)" in r.output and "other.mkv: 2 frame(s)" in r.output
    assert "1 image(s) reconstructed" in r.output
    assert {"clip.jsonl", "clip_overlay.mp4", "other.jsonl", "still.json"} <= {p.name for p in out.iterdir()}
    r = CliRunner().invoke(app, args)  # again: out/clip_overlay.mp4 lies inside the input folder
    assert r.exit_code == 0, r.output
    assert "clip_overlay" not in r.output and not (out / "clip_overlay_overlay.mp4").exists()


def write_sideways_clip(path, upright: list[np.ndarray]) -> None:
    """`upright` frames stored as a phone held upright stores them: turned a quarter turn
    counter-clockwise, with the MP4 track's display matrix saying "turn 90° clockwise to show"."""
    import struct

    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=Fraction(FPS))
    stream.pix_fmt, stream.options = "yuv444p", {"crf": "4"}
    stream.height, stream.width = upright[0].shape[1], upright[0].shape[0]
    for image in upright:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(image, 1)), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    assert data[at + 4] == 0  # version 0: 20 bytes of times, ids and duration before the matrix
    at += 4 + 4 + 20 + 8 + 8
    assert struct.unpack(">9i", data[at:at + 36]) == (65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30)
    data[at:at + 36] = struct.pack(">9i", 0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)
    path.write_bytes(bytes(data))


def test_a_phones_portrait_clip_is_read_upright(tmp_path):
    """Frames are turned by the container's display matrix, as players show them (and as EXIF
    orientation turns photos): a portrait clip stored sideways comes out portrait, right way up,
    through `video_frames` and through `reconstruct`'s JSON Lines."""
    from typer.testing import CliRunner

    from handrecon.cli import app
    from handrecon.infer.video import video_frames

    upright = []
    for i in range(3):
        image = np.full((48, 32, 3), 40, np.uint8)
        image[:12, :16] = (250, 250, 250)  # top left
        image[40:, 8 * i:8 * i + 8] = (250, 40, 40)  # a red mark moving along the bottom
        upright.append(image)
    clip = tmp_path / "portrait.mp4"
    write_sideways_clip(clip, upright)
    first = next(av.open(str(clip)).decode(video=0))
    assert first.rotation == -90 and first.to_ndarray(format="rgb24").shape == (32, 48, 3)  # stored sideways
    frames, _, _ = video_frames(clip)
    decoded = [image for _, image, _ in frames]
    assert [d.shape for d in decoded] == [(48, 32, 3)] * 3
    assert all(np.abs(d.astype(int) - u).mean() < 4 for d, u in zip(decoded, upright))
    r = CliRunner().invoke(app, ["reconstruct", str(clip), "--out", str(tmp_path / "out"), "--no-overlay", "--crop",
                                 "--side", "right"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in (tmp_path / "out" / "portrait.jsonl").read_text().splitlines()]
    assert [x["image_size"] for x in lines] == [[48, 32]] * 3


def test_a_variable_frame_rate_clip_keeps_its_timing(tmp_path):
    """Frame times are the presentation timestamps (a phone records at a variable rate in low
    light), in the JSON Lines and for the smoothing's time steps; not index / average rate."""
    from typer.testing import CliRunner

    from handrecon.cli import app

    clip = tmp_path / "vfr.mp4"
    container = av.open(str(clip), mode="w")
    stream = container.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    stream.codec_context.time_base = Fraction(1, 1000)
    for ms in (0, 40, 100, 120, 200):
        frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 90, np.uint8), format="rgb24")
        frame.pts, frame.time_base = ms, Fraction(1, 1000)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    r = CliRunner().invoke(app, ["reconstruct", str(clip), "--out", str(tmp_path / "out"), "--no-overlay", "--crop",
                                 "--side", "right"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(x) for x in (tmp_path / "out" / "vfr.jsonl").read_text().splitlines()]
    assert [x["time"] for x in lines] == [0.0, 0.04, 0.1, 0.12, 0.2]  # index / average rate: 0, 0.048, 0.096, ...


def test_frame_times_always_move_forward():
    """Timestamps from the first frame; a repeated or backward one (a damaged file) is placed one
    average interval after the frame before, so time steps stay positive (the smoothing) and
    keyframes strictly increasing (glTF); a stream without timestamps counts frames."""
    from handrecon.infer.video import FrameClock

    clock = FrameClock(fps=20.0)
    assert [clock.time(i, s) for i, s in enumerate([1.5, 1.54, 1.6, 1.6, 1.58, 1.7])] == pytest.approx(
        [0.0, 0.04, 0.1, 0.15, 0.2, 0.25])
    clock = FrameClock(fps=25.0)
    assert [clock.time(i, None) for i in range(3)] == pytest.approx([0.0, 0.04, 0.08])


def test_an_animated_image_is_read_as_a_video(tmp_path):
    """An animated GIF or PNG goes through `reconstruct` as a video: every frame composited as
    viewers show it, at the time its predecessors' durations add up to (a 0 ms GIF delay plays at
    100 ms, as in browsers); a still GIF stays an image; `detect` says it reads images only."""
    from PIL import Image
    from typer.testing import CliRunner

    from handrecon.cli import app
    from handrecon.data.schema import is_video
    from handrecon.infer.video import video_frames

    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]
    frames = [Image.fromarray(np.full((48, 64, 3), c, np.uint8)) for c in colours]
    for name in ("clip.gif", "clip.png"):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=[50, 0, 150, 100], loop=0)
        assert is_video(tmp_path / name)
        got, fps, count = video_frames(tmp_path / name)
        got = list(got)
        assert count == 4 and fps == pytest.approx(20.0)
        assert [round(t, 3) for _, _, t in got] == [0.0, 0.05, 0.15, 0.3]
        for (i, image, _), colour in zip(got, colours):
            assert image.shape == (48, 64, 3) and np.abs(image.reshape(-1, 3).mean(0) - colour).max() < 8, (name, i)
        assert [i for i, _, _ in video_frames(tmp_path / name, start=2)[0]] == [2, 3]  # resuming
    frames[0].save(tmp_path / "still.gif")
    assert not is_video(tmp_path / "still.gif") and not is_video(tmp_path / "missing.gif")
    r = CliRunner().invoke(app, ["reconstruct", str(tmp_path / "clip.gif"), "--out", str(tmp_path / "out"), "--crop",
                                 "--side", "right"])
    assert r.exit_code == 0 and "4 frame(s)" in r.output, r.output
    lines = [json.loads(x) for x in (tmp_path / "out" / "clip.jsonl").read_text().splitlines()]
    assert [x["time"] for x in lines] == [0.0, 0.05, 0.15, 0.3] and all(len(x["hands"]) == 1 for x in lines)
    assert (tmp_path / "out" / "clip_overlay.mp4").stat().st_size > 0
    r = CliRunner().invoke(app, ["detect", str(tmp_path / "clip.gif"), "--out", str(tmp_path / "det")])
    assert r.exit_code == 1 and "reconstruct` reads videos" in r.output and "Traceback" not in r.output, r.output
