"""Package a trained hand detector (model ``hand_detector``) as the shipped frozen detector:
``src/handrecon/assets/models/handrecon-hand-detector/``.

    python tools/package_detector.py runs/detector_cpu --training runs/detector_cpu/training.json \
        --metrics heldout=runs/detector_cpu/heldout_metrics.json --metrics foreign=...

Writes the transformers checkpoint (config.json, model.safetensors), detector.json (kind and
preprocessing, read by `load_detector`) and card.json: the training checkpoint's card (config,
step, validation metrics) plus ``heldout_metrics`` ({KEY: each ``--metrics KEY=PATH`` JSON}) and
``training`` (from ``--training``). The folder loads with ``--detector handrecon-hand-detector``.
A ``side_head/`` already in the destination (trained apart, ``tools/train_side_head.sh``, on crops
that do not depend on the detector's weights) is kept. A ``box_verifier/`` is not: it learnt the
candidates of the detector it replaces (train it again for the new one: ``tools/train_box_verifier.sh``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from handrecon.checkpoint import CheckpointError, load_model, read_card, resolve_checkpoint
from handrecon.models.handos.detections import SIDE_HEAD_DIR, VERIFIER_DIR
from handrecon.models.handos.detector import save_detector
from handrecon.models.handos.hand_detector import ASSET_DIR
from handrecon.utils.io import atomic_write_json


def read_json(path: str, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: cannot read the {what} JSON ({e})")


def package(checkpoint: Path, out: Path, metrics: dict, training: dict) -> Path:
    src = resolve_checkpoint(checkpoint)
    card = read_card(src, verify=True)
    model, _ = load_model(src)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_detector(model.frozen(), tmp)
    atomic_write_json(tmp / "card.json", {
        "name": out.name, "architecture": card.get("architecture"), "kwargs": card.get("kwargs"),
        "step": card.get("step"), "val_metrics": card.get("metrics"), "config": card.get("config"),
        "heldout_metrics": metrics, "training": training, "source_checkpoint": str(src),
    })
    if (out / SIDE_HEAD_DIR).is_dir():
        shutil.copytree(out / SIDE_HEAD_DIR, tmp / SIDE_HEAD_DIR)
    if (out / VERIFIER_DIR).is_dir():
        print(f"{out / VERIFIER_DIR}: removed (it re-scores the replaced detector's candidates); train one for this "
              "detector with tools/train_box_verifier.sh")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # the folder appears whole or not at all
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="checkpoint or run directory (its best checkpoint)")
    ap.add_argument("--out", type=Path, default=ASSET_DIR)
    ap.add_argument("--metrics", action="append", default=[], help="KEY=PATH of a metrics JSON; repeatable")
    ap.add_argument("--training", help="JSON with data, seeds, wall time")
    args = ap.parse_args()
    metrics = {}
    for item in args.metrics:
        key, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--metrics {item!r}: expected KEY=PATH")
        metrics[key] = read_json(path, "metrics")
    try:
        out = package(args.checkpoint, args.out, metrics, read_json(args.training, "training") if args.training else {})
    except CheckpointError as e:
        sys.exit(f"error: {e}")
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"packaged {out} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
