"""Render the bundled demo image ``src/handrecon/assets/sample/hand.png`` and its ground truth.

    python tools/render_sample.py [--seed 4242] [--index 0]

One sample of the synthetic engine's ``crop`` preset (224×224, one centred hand) from a dataset
seed that no training or held-out set uses (training: 0, held-out: 1000; see
configs/m3dhmr_cpu.yaml). ``hand.json`` holds the exact ground truth in the library's conventions:
K, and for each hand its side, box, OP21 2D keypoints (px), visibility, 3D keypoints (camera frame,
metres), pose (axis-angle), shape and translation.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from handrecon.data.synth import SynthEngine, preset
from handrecon.utils.io import atomic_open, atomic_write_json

OUT = Path(__file__).resolve().parent.parent / "src" / "handrecon" / "assets" / "sample"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=4242)
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    sample = SynthEngine(preset("crop")).sample(a.index, a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    with atomic_open(a.out / "hand.png", "wb") as f:
        Image.fromarray(sample.image).save(f, format="PNG")
    as_list = lambda x: None if x is None else np.asarray(x, np.float64).round(6).tolist()  # noqa: E731
    gt = {
        "source": f"handrecon synthetic engine, preset crop, seed {a.seed}, index {a.index} (tools/render_sample.py)",
        "image": "hand.png",
        "width": int(sample.image.shape[1]), "height": int(sample.image.shape[0]),
        "K": as_list(sample.K),
        "hands": [{
            "side": h.side, "box": as_list(h.box), "keypoints_2d": as_list(h.keypoints_2d),
            "visibility": np.asarray(h.visibility, bool).tolist(), "keypoints_3d": as_list(h.keypoints_3d),
            "pose": as_list(h.pose), "shape": as_list(h.shape), "transl": as_list(h.transl),
            "hand_model": h.hand_model,
        } for h in sample.hands],
        "units": "metres, OpenCV camera (x right, y down, z forward); pixels with centres at integers; OP21 order",
    }
    atomic_write_json(a.out / "hand.json", gt)
    print(f"wrote {a.out / 'hand.png'} and hand.json: {len(sample.hands)} hand(s), sides {[h.side for h in sample.hands]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
