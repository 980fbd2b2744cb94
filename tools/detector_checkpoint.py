"""A training checkpoint (handrecon card, ``train.init_from``) of a packaged hand detector folder, so
that a config can continue the shipped weights (e.g. configs/detector_cpu_stage4.yaml).

    python tools/detector_checkpoint.py runs/detector_shipped_ckpt [--detector FOLDER]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from handrecon.checkpoint import save_checkpoint
from handrecon.models.handos.hand_detector import ASSET_DIR, HandDetector, load_hand_detector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the checkpoint folder to write")
    ap.add_argument("--detector", default=None, help="a packaged detector folder (default: the shipped one)")
    args = ap.parse_args()
    folder = args.detector or str(ASSET_DIR)
    card = json.loads((Path(folder) / "card.json").read_text())
    model = HandDetector(**card["kwargs"])
    model.detr.load_state_dict(load_hand_detector(args.detector).model.state_dict(), strict=True)
    save_checkpoint(args.out, model, {}, {"architecture": "hand_detector", "kwargs": card["kwargs"],
                                          "config": card["config"], "step": card["step"],
                                          "steps_per_epoch": card["config"]["train"]["steps_per_epoch"]})
    print(f"wrote {args.out} (the weights of {folder}, step {card['step']})")


if __name__ == "__main__":
    main()
