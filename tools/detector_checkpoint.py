"""A training checkpoint (handrecon card, ``train.init_from``) of a packaged hand detector folder, so
that a config can continue the shipped weights (e.g. configs/detector_cpu_stage4.yaml), or start a
deeper detector from them (configs/detector_cpu_deep.yaml), or train them at another input size
(configs/detector_cpu_input320.yaml).

    python tools/detector_checkpoint.py runs/detector_shipped_ckpt [--detector FOLDER] [--depths 2 2 2 2]
                                        [--input-size 320]

``--depths``: more basic blocks per backbone stage than the packaged detector has. The added blocks
start as the identity (their last batch norm at scale 0: `HandDetector(zero_init_residual=True)`),
so the deeper detector gives the packaged one's boxes and scores until training moves them; the
tool checks that on random images and says how many tensors it added. ``--input-size``: the long
side the network reads (its preprocessing config; no weight depends on it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from handrecon.checkpoint import save_checkpoint
from handrecon.models.handos.detections import DetectorConfig
from handrecon.models.handos.hand_detector import ASSET_DIR, HandDetector, load_hand_detector


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the checkpoint folder to write")
    ap.add_argument("--detector", default=None, help="a packaged detector folder (default: the shipped one)")
    ap.add_argument("--depths", type=int, nargs="+", default=None,
                    help="basic blocks per backbone stage, at least the packaged detector's (default: its own)")
    ap.add_argument("--input-size", type=int, default=None,
                    help="the network's input long side in px (default: the packaged detector's)")
    args = ap.parse_args()
    folder = args.detector or str(ASSET_DIR)
    card = json.loads((Path(folder) / "card.json").read_text())
    kwargs, packaged = dict(card["kwargs"]), load_hand_detector(args.detector).model
    old = list(kwargs.get("depths", []))
    if args.depths is not None:
        if len(args.depths) != len(old) or any(n < o for n, o in zip(args.depths, old)):
            print(f"error: --depths {args.depths}: give one count per backbone stage, each at least the packaged "
                  f"detector's {old}", file=sys.stderr)
            return 2
        kwargs.update(depths=list(args.depths), zero_init_residual=True)
    if args.input_size is not None:
        pad = DetectorConfig.pad_multiple
        if not 64 <= args.input_size <= 2048 or args.input_size % pad:
            print(f"error: --input-size {args.input_size}: give a multiple of {pad} from 64 to 2048 (the detector pads "
                  f"its input up to a multiple of {pad}: another size would train on blank margins)", file=sys.stderr)
            return 2
        kwargs["input_size"] = args.input_size
    model = HandDetector(**kwargs)
    missing, unexpected = model.detr.load_state_dict(packaged.state_dict(), strict=args.depths is None)
    stray = unexpected + [k for k in missing if ".encoder.stages." not in k]
    if stray:  # only backbone blocks may be new
        print(f"error: {folder}'s weights do not fit the network its card describes ({len(stray)} tensors, first: "
              f"{stray[0]}); re-package it with tools/package_detector.py", file=sys.stderr)
        return 1
    images = torch.rand(2, 3, kwargs["input_size"], kwargs["input_size"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = packaged.eval()(pixel_values=images), model.eval().detr(pixel_values=images)
    change = max((a.logits - b.logits).abs().max().item(), (a.pred_boxes - b.pred_boxes).abs().max().item())
    if change > 1e-5:
        print(f"error: the checkpoint's outputs differ from {folder}'s by {change:.1e}", file=sys.stderr)
        return 1
    save_checkpoint(args.out, model, {}, {"architecture": "hand_detector", "kwargs": kwargs,
                                          "config": card["config"], "step": card["step"],
                                          "steps_per_epoch": card["config"]["train"]["steps_per_epoch"]})
    changes = f", depths {old} -> {args.depths} ({len(missing)} tensors added as identity blocks)" if args.depths else ""
    changes += f", input {card['kwargs']['input_size']} -> {args.input_size} px" if args.input_size else ""
    print(f"wrote {args.out} (the weights of {folder}, step {card['step']}{changes}; largest output change on random "
          f"images {change:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
