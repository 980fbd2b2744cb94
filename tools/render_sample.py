"""Render the bundled demo images ``src/handrecon/assets/sample/hand.png`` (one hand crop) and
``scene.jpg`` (a full image with several hands) and their ground truth.

    python tools/render_sample.py [--seed 4242] [--index 0]
    python tools/render_sample.py --scene [--seed 4243] [--index 1]

One sample of the synthetic engine's ``crop`` preset (224×224, one centred hand), or with
``--scene`` of its ``scene`` preset (480×640, 2-3 hands, procedural background: the bundled scene is
index 1, the first of seed 4243 with three hands), from dataset seeds that no training or held-out
set uses (training: 0, held-out: 1000; see configs/m3dhmr_cpu.yaml). The JSON holds the exact ground truth in the library's conventions:
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
    p.add_argument("--scene", action="store_true", help="a full image with 2-3 hands (scene.png) instead of a crop")
    p.add_argument("--seed", type=int, default=None, help="default: 4242 (crop), 4243 (scene)")
    p.add_argument("--index", type=int, default=None, help="default: 0 (crop), 1 (scene)")
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    name = "scene" if a.scene else "hand"
    seed = a.seed if a.seed is not None else (4243 if a.scene else 4242)
    index = a.index if a.index is not None else (1 if a.scene else 0)
    config = preset("scene", image_size=(480, 640), num_hands=(2, 3)) if a.scene else preset("crop")
    sample = SynthEngine(config).sample(index, seed)
    a.out.mkdir(parents=True, exist_ok=True)
    image_file = f"{name}.jpg" if a.scene else f"{name}.png"  # the scene as JPEG (quality 92): 5x smaller
    with atomic_open(a.out / image_file, "wb") as f:
        Image.fromarray(sample.image).save(f, format="JPEG", quality=92) if a.scene else Image.fromarray(sample.image).save(f, format="PNG")
    as_list = lambda x: None if x is None else np.asarray(x, np.float64).round(6).tolist()  # noqa: E731
    gt = {
        "source": f"handrecon synthetic engine, preset {'scene' if a.scene else 'crop'}, seed {seed}, index {index} "
                  "(tools/render_sample.py)",
        "image": image_file,
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
    atomic_write_json(a.out / f"{name}.json", gt)
    print(f"wrote {a.out / image_file} and {name}.json: {len(sample.hands)} hand(s), sides {[h.side for h in sample.hands]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
