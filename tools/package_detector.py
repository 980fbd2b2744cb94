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
``--live-weights`` packages a weight-averaged run's live weights instead of its average (the card
says so: ``weights``; an averaged one keeps the run's ``ema``).
``--float16`` stores the weights in float16 (half the size; loaded back as float32, scores within
about 0.002 of the float32 weights'). ``--to-float16 FOLDER`` does that to a packaged folder in place,
keeping its card (``weights_dtype`` added), side head and box verifier:

    python tools/package_detector.py --to-float16 src/handrecon/assets/models/handrecon-hand-detector

``--num-queries K FOLDER`` sets, in place, how many of the encoder's proposals (its top K by score,
RT-DETR's two-stage selection) the decoder refines at inference: the transformers config's
``num_queries``, which holds no weights, so a detector trained with 40 can serve 100 (the card
records ``serving_num_queries`` beside the training config's). More proposals reach hands the
encoder ranks low, at a small cost in decoder time; the change re-exports the ONNX graph (its cache
key covers config.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from handrecon.checkpoint import CheckpointError, load_model, read_card, resolve_checkpoint
from handrecon.models.handos.detections import SIDE_HEAD_DIR, VERIFIER_DIR
from handrecon.models.handos.detector import DetectorError, load_detector, save_detector
from handrecon.models.handos.hand_detector import ASSET_DIR
from handrecon.train.ema import checkpoint_weights, live_weights_card
from handrecon.utils.io import atomic_write_json


def read_json(path: str, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: cannot read the {what} JSON ({e})")


def package(checkpoint: Path, out: Path, metrics: dict, training: dict, float16: bool = False,
            live: bool = False) -> Path:
    """``live``: a weight-averaged run's live weights instead of its average (`checkpoint_weights`)."""
    src = resolve_checkpoint(checkpoint)
    card = read_card(src, verify=True)
    model, _ = load_model(src)
    if live:
        model.load_state_dict(checkpoint_weights(src, live=True))
    tmp = _fresh(out)
    save_detector(model.frozen(), tmp, float16)
    packaged = {
        "name": out.name, "architecture": card.get("architecture"), "kwargs": card.get("kwargs"),
        "step": card.get("step"), "val_metrics": card.get("metrics"), "config": card.get("config"),
        "heldout_metrics": metrics, "training": training, "source_checkpoint": str(src),
        "weights_dtype": "float16" if float16 else "float32", **({"ema": card["ema"]} if "ema" in card else {}),
    }
    atomic_write_json(tmp / "card.json", live_weights_card(packaged) if live else packaged)
    if (out / SIDE_HEAD_DIR).is_dir():
        shutil.copytree(out / SIDE_HEAD_DIR, tmp / SIDE_HEAD_DIR)
    if (out / VERIFIER_DIR).is_dir():
        print(f"{out / VERIFIER_DIR}: removed (it re-scores the replaced detector's candidates); train one for this "
              "detector with tools/train_box_verifier.sh")
    return _replace(tmp, out)


def to_float16(folder: Path) -> Path:
    """A packaged detector folder with its weights re-stored in float16; card, side head and box verifier kept."""
    detector = load_detector(str(folder))
    tmp = _fresh(folder)
    save_detector(detector, tmp, float16=True)
    card = json.loads((folder / "card.json").read_text())
    atomic_write_json(tmp / "card.json", {**card, "weights_dtype": "float16"})
    for head in (SIDE_HEAD_DIR, VERIFIER_DIR):
        if (folder / head).is_dir():
            shutil.copytree(folder / head, tmp / head)
    return _replace(tmp, folder)


def set_num_queries(folder: Path, num_queries: int) -> Path:
    """A packaged detector folder whose decoder refines the encoder's top `num_queries` proposals
    (config.json's ``num_queries``); weights, heads and the rest of the card kept."""
    if num_queries < 1:
        raise ValueError(f"--num-queries K FOLDER: K must be >= 1, got {num_queries}")
    config = json.loads((folder / "config.json").read_text())
    card = json.loads((folder / "card.json").read_text())
    if "num_queries" not in config:
        raise ValueError(f"{folder}/config.json has no num_queries: not a detector with a top-K proposal selection")
    tmp = _fresh(folder)
    shutil.copytree(folder, tmp)
    atomic_write_json(tmp / "config.json", {**config, "num_queries": int(num_queries)})
    atomic_write_json(tmp / "card.json", {**card, "serving_num_queries": int(num_queries)})
    load_detector(str(tmp))  # it still loads
    return _replace(tmp, folder)


def _fresh(out: Path) -> Path:
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    return tmp


def _replace(tmp: Path, out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # the folder appears whole or not at all
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, nargs="?", help="checkpoint or run directory (its best checkpoint)")
    ap.add_argument("--out", type=Path, default=ASSET_DIR)
    ap.add_argument("--metrics", action="append", default=[], help="KEY=PATH of a metrics JSON; repeatable")
    ap.add_argument("--training", help="JSON with data, seeds, wall time")
    ap.add_argument("--float16", action="store_true", help="store the weights in float16 (half the size)")
    ap.add_argument("--live-weights", action="store_true",
                    help="a run trained with a weight average (train.ema_decay): package its live weights, not the average")
    ap.add_argument("--to-float16", type=Path, metavar="FOLDER", help="re-store a packaged folder's weights in float16")
    ap.add_argument("--num-queries", nargs=2, metavar=("K", "FOLDER"),
                    help="set how many encoder proposals a packaged folder's decoder refines at inference, in place")
    args = ap.parse_args()
    if sum(x is not None for x in (args.checkpoint, args.to_float16, args.num_queries)) != 1:
        ap.error("give one of: a checkpoint to package, --to-float16 FOLDER, --num-queries K FOLDER")
    if args.num_queries:
        k, folder = args.num_queries
        if not k.isdigit():
            ap.error(f"--num-queries K FOLDER: K must be a whole number, got {k!r}")
        try:
            out = set_num_queries(Path(folder), int(k))
        except (DetectorError, OSError, ValueError) as e:
            sys.exit(f"error: {e}")
        print(f"{out}: the decoder refines the encoder's top {int(k)} proposals")
        return
    if args.to_float16:
        try:
            out = to_float16(args.to_float16)
        except (DetectorError, OSError, ValueError) as e:
            sys.exit(f"error: {e}")
        print(f"{out}: weights in float16 ({sum(p.stat().st_size for p in out.rglob('*') if p.is_file()) / 2**20:.1f} MB "
              "with its heads)")
        return
    metrics = {}
    for item in args.metrics:
        key, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"--metrics {item!r}: expected KEY=PATH")
        metrics[key] = read_json(path, "metrics")
    try:
        out = package(args.checkpoint, args.out, metrics, read_json(args.training, "training") if args.training else {},
                      args.float16, args.live_weights)
    except CheckpointError as e:
        sys.exit(f"error: {e}")
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"packaged {out} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
