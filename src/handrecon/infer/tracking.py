"""Hands over video frames: stable track ids and One-Euro smoothing.

`HandTracker.update(hands, t)` gives every hand of a frame a track id — the assignment (Hungarian,
`scipy.optimize.linear_sum_assignment`) minimises 1 - box IoU plus the mean 2D keypoint distance
over the box size, and refuses pairs with IoU below `min_iou` and keypoints further than
`max_keypoint_distance` box sizes — and, with a `OneEuroConfig`, replaces its 2D and 3D
keypoints, vertices and camera translation by their One-Euro-filtered values (Casiez et al.,
CHI 2012: a low-pass whose cut-off rises with speed, so slow motion is de-jittered and fast
motion keeps up). The 2D keypoints' cut-offs follow their own speeds (pixels per second); every
3D field of the hand (metres) is filtered with the cut-off of the hand's mean 2D speed, so the
mesh moves with the 2D keypoints (in metres the 3D cut-off hardly rose with speed and the mesh
trailed the keypoints by ~150 ms in fast motion) and depth jitter, which the 2D does not show,
never opens the filter. Tracks unseen for `max_age` frames end; a new hand starts a new id and an
unfiltered state. A track's side is the majority vote of its frames so far.

With `birth_score` (ByteTrack's idea, Zhang et al., ECCV 2022), hands scoring below it only
continue a track: the confident hands are assigned first, then the others to the tracks still free
that are confirmed (`min_hits` confident frames, SORT's rule: a false hand that scored high once
does not live on), and a doubtful hand that continues nothing is dropped. A video can then run its
detector at a lower threshold than a new hand needs, so a hand already followed is not lost in the
frames where it scores low (blur, a busy background, a turn), while a false hand still needs the
full score to appear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from handrecon.geometry.boxes import box_iou
from handrecon.infer.results import HandResult

SMOOTHED_FIELDS = ("keypoints_2d", "keypoints_3d", "vertices", "cam_t")  # the first drives the others' cut-off


@dataclass(frozen=True)
class OneEuroConfig:
    """min_cutoff (Hz): the cut-off at rest (lower: smoother, more lag); beta (Hz per px/s of 2D
    keypoint speed): how fast the cut-off rises with speed (higher: less lag in fast motion);
    d_cutoff (Hz): the derivative's cut-off."""

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise ValueError(f"One-Euro filter: min_cutoff and d_cutoff must be > 0 and beta >= 0, got {self}")


class OneEuroFilter:
    """A One-Euro filter over arrays of any shape (every element filtered independently, in one
    vectorised step). The speed that drives the cut-off is per element, or the `speed` given."""

    def __init__(self, config: OneEuroConfig) -> None:
        self.config = config
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, speed: float | None = None) -> np.ndarray:
        """The filtered `x` at time `t` (s); `speed`: drive the cut-off by this speed instead of x's own."""
        x = np.asarray(x, np.float64)
        if self.x is None or self.t is None or t <= self.t:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x
        c, dt = self.config, t - self.t
        dx = (x - self.x) / dt
        a_d = self._alpha(c.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        a = self._alpha(c.min_cutoff + c.beta * (np.abs(self.dx) if speed is None else speed), dt)
        self.x = a * x + (1 - a) * self.x
        self.t = t
        return self.x

    def state(self) -> dict:
        return {"x": None if self.x is None else self.x.tolist(), "dx": None if self.dx is None else self.dx.tolist(),
                "t": self.t}

    def load_state(self, state: dict) -> None:
        self.x = None if state["x"] is None else np.asarray(state["x"], np.float64)
        self.dx = None if state["dx"] is None else np.asarray(state["dx"], np.float64)
        self.t = state["t"]


@dataclass
class Track:
    id: int
    box: np.ndarray
    keypoints_2d: np.ndarray
    last_frame: int
    sides: dict[str, int] = field(default_factory=dict)
    filters: dict[str, OneEuroFilter] = field(default_factory=dict)
    hits: int = 0  # frames in which a confident hand continued it (or started it)


class HandTracker:
    """Track ids and smoothing over a video's frames (module docstring). smoothing None: ids only."""

    def __init__(self, smoothing: OneEuroConfig | None = OneEuroConfig(), min_iou: float = 0.1,
                 max_keypoint_distance: float = 0.5, max_age: int = 5, min_hits: int = 3) -> None:
        self.smoothing, self.min_iou, self.max_dist, self.max_age = smoothing, min_iou, max_keypoint_distance, max_age
        self.min_hits = min_hits
        self.tracks: list[Track] = []
        self.next_id = 0

    def update(self, hands: list[HandResult], frame: int, t: float, birth_score: float | None = None
               ) -> list[int | None]:
        """Assign ids to the hands of frame `frame` (time `t` seconds) and smooth them in place.
        birth_score: hands with a score below it only continue a track (module doc); the id of one
        that does not is None, and it is left untouched (the caller drops it)."""
        self.tracks = [tr for tr in self.tracks if frame - tr.last_frame <= self.max_age]
        doubtful = [birth_score is not None and h.score is not None and h.score < birth_score for h in hands]
        ids = [-1] * len(hands)
        free = list(range(len(self.tracks)))
        for round_ in (False, True):  # the confident hands first, then the doubtful ones to the tracks left
            members = [i for i, d in enumerate(doubtful) if d == round_]
            if round_:  # only confirmed tracks: a false hand that scored high once must not live on
                free = [k for k in free if self.tracks[k].hits >= self.min_hits]
            for r, c in self._assign([hands[i] for i in members], [self.tracks[k] for k in free]):
                ids[members[r]] = free[c]
            free = [k for k in free if k not in ids]
        out: list[int | None] = []
        for hand, k, d in zip(hands, ids, doubtful):
            if k < 0 and d:
                out.append(None)
                continue
            if k < 0:
                track = Track(self.next_id, np.asarray(hand.box), np.asarray(hand.keypoints_2d), frame)
                self.tracks.append(track)
                self.next_id += 1
            else:
                track = self.tracks[k]
            track.box, track.keypoints_2d, track.last_frame = np.asarray(hand.box), np.asarray(hand.keypoints_2d), frame
            track.hits += not d
            track.sides[hand.side] = track.sides.get(hand.side, 0) + 1
            voted = max(track.sides, key=lambda s: (track.sides[s], s == hand.side))
            if voted != hand.side and hand.side_score is not None:  # this frame's own reading, of the other side
                hand.side_score = 1.0 - hand.side_score
            hand.side = voted
            if self.smoothing is not None:
                speed = None
                for name in SMOOTHED_FIELDS:
                    f = track.filters.setdefault(name, OneEuroFilter(self.smoothing))
                    setattr(hand, name, f(getattr(hand, name), t, speed).astype(np.float32))
                    if speed is None:  # the 2D keypoints' mean speed, px/s, drives the 3D fields
                        speed = float(np.linalg.norm(f.dx, axis=-1).mean())
            out.append(track.id)
        return out

    def _assign(self, hands: list[HandResult], tracks: list[Track]) -> list[tuple[int, int]]:
        """(hand, track) index pairs: the Hungarian assignment on 1 - box IoU plus the mean 2D keypoint
        distance over the hand's box size, pairs within `min_iou` or `max_keypoint_distance` only."""
        if not hands or not tracks:
            return []
        boxes = np.array([h.box for h in hands], np.float64)
        iou = box_iou(boxes, np.array([tr.box for tr in tracks]))
        size = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0).max(1)
        kp = np.array([h.keypoints_2d for h in hands], np.float64)
        dist = np.linalg.norm(kp[:, None] - np.array([tr.keypoints_2d for tr in tracks])[None], axis=-1)
        dist = dist.mean(-1) / size[:, None]
        rows, cols = linear_sum_assignment((1 - iou) + dist)
        return [(r, c) for r, c in zip(rows, cols) if iou[r, c] >= self.min_iou or dist[r, c] <= self.max_dist]

    def state(self) -> dict:
        """Everything `load_state` needs to continue exactly (JSON-able)."""
        return {"next_id": self.next_id, "tracks": [
            {"id": tr.id, "box": tr.box.tolist(), "keypoints_2d": np.asarray(tr.keypoints_2d).tolist(),
             "last_frame": tr.last_frame, "sides": tr.sides, "hits": tr.hits,
             "filters": {k: f.state() for k, f in tr.filters.items()}}
            for tr in self.tracks]}

    def load_state(self, state: dict) -> None:
        self.next_id = int(state["next_id"])
        self.tracks = []
        for s in state["tracks"]:
            tr = Track(int(s["id"]), np.asarray(s["box"]), np.asarray(s["keypoints_2d"]), int(s["last_frame"]),
                       dict(s["sides"]), hits=int(s["hits"]))
            for k, fs in s["filters"].items():
                tr.filters[k] = OneEuroFilter(self.smoothing or OneEuroConfig())
                tr.filters[k].load_state(fs)
            self.tracks.append(tr)


__all__ = ["HandTracker", "OneEuroConfig", "OneEuroFilter", "SMOOTHED_FIELDS"]
