"""Package a trained checkpoint (any family: M3DHMR, HandOS) as a shipped model: ``src/handrecon/assets/models/<name>/``.

    python tools/package_model.py runs/m3dhmr_cpu --training runs/m3dhmr_cpu/training.json \
        --metrics pipeline=runs/m3dhmr_cpu/heldout_eval/metrics.json \
        --metrics network=runs/m3dhmr_cpu/heldout_eval/crop_metrics.json

    python tools/package_model.py runs/box_verifier_cpu runs/box_verifier_cpu_v --name box_verifier \
        --out-root DETECTOR_FOLDER --int8     # two box verifiers served as one ensemble

    python tools/package_model.py runs/a/checkpoints/step_00002400 runs/b/checkpoints/step_00002400 \
        --average                             # one model: the two runs' weights averaged

Copies the checkpoint's weights (the best one of a run directory, see
`handrecon.checkpoint.resolve_checkpoint`) as ``model.safetensors`` (in float16 when the float32
file would exceed ``--max-mb``; with ``--int8`` convolution and linear weights in int8,
`handrecon.checkpoint.quantize_weights_int8`, loaded as float32) and writes ``card.json``: the
checkpoint card (architecture, kwargs, the model's inference spec as the trainer wrote it, config,
step, validation metrics), copied unchanged, with ``files`` listing only the weights, plus
``heldout_metrics`` ({KEY: contents of each ``--metrics KEY=PATH`` JSON}) and ``training`` (data,
seeds, wall time, commands, from ``--training``). The result loads with ``handrecon.load(name)``.
Several box-verifier checkpoints are packaged as one ``hand_box_verifier_ensemble``
(`ensemble_card`; weights under ``members.I.``). With ``--average``, several checkpoints of one
architecture are packaged as one model of that architecture whose weights are their uniform average
(`average_checkpoints`: a "model soup", Wortsman et al. 2022 — runs fine-tuned from the same weights
average into one model of the same size and speed). With ``--live-weights`` a run trained with a weight
average (``train.ema_decay``, whose checkpoints hold the average) is packaged from its live weights (the
training state's) instead; the card then says so (``weights``) and drops ``ema``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from handrecon.checkpoint import (
    CARD_FILE, INT8_FORMAT, MODEL_FILE, CheckpointError, quantize_weights_int8, read_card,
    resolve_checkpoint, same_model, seal_card,
)
from handrecon.train.ema import checkpoint_weights, live_weights_card
from handrecon.utils.io import atomic_write_bytes, atomic_write_json

ASSETS = Path(__file__).resolve().parent.parent / "src" / "handrecon" / "assets" / "models"


def read_json(path: Path | None, what: str) -> dict:
    if path is None:
        return {}
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: cannot read the {what} JSON ({e})")


ENSEMBLES = {"hand_box_verifier": "hand_box_verifier_ensemble"}  # families whose checkpoints package as one model


def package(checkpoint: Path | list[Path], name: str, metrics: dict, training: dict, max_mb: float,
            out_root: Path = ASSETS, int8: bool = False, average: bool = False, live: bool = False) -> Path:
    """Write ``out_root/name/{model.safetensors, card.json}``; returns the directory. Several
    checkpoints (box verifiers: `ENSEMBLES`) are packaged as one ensemble model (`ensemble_card`),
    or with `average` as one model with their mean weights (`average_checkpoints`);
    `int8`: convolution and linear weights stored in int8 (`checkpoint.quantize_weights_int8`);
    `live`: a weight-averaged run's live weights (`checkpoint_weights`)."""
    checkpoints = checkpoint if isinstance(checkpoint, list) else [checkpoint]
    sources = [resolve_checkpoint(c) for c in checkpoints]
    cards = [read_card(src, verify=True) for src in sources]
    for src, card in zip(sources, cards):
        if not isinstance(card.get("inference"), dict):
            raise CheckpointError(f"{src}: the card has no inference spec (written by the trainer since handrecon "
                                  "0.1.0's model-family layout); re-save the checkpoint before packaging it")
    if len(sources) == 1:
        card, tensors = cards[0], checkpoint_weights(sources[0], live)
    elif average:
        card, tensors = average_checkpoints(sources, cards, live)
    else:
        card = ensemble_card(sources, cards)
        tensors = {f"members.{i}.{k}": v for i, src in enumerate(sources)
                   for k, v in checkpoint_weights(src, live).items()}
    if live:
        card = live_weights_card(card)
    parameters = int(sum(v.numel() for v in tensors.values() if v.is_floating_point()))
    blob, dtype = st_save(tensors), "float32"
    if int8:
        blob, dtype = st_save(quantize_weights_int8(tensors), metadata={"weights": INT8_FORMAT}), INT8_FORMAT
    elif len(blob) > max_mb * 2**20:
        blob, dtype = st_save({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}), "float16"
    if len(blob) > max_mb * 2**20:
        raise SystemExit(f"{', '.join(map(str, sources))}: weights are {len(blob) / 2**20:.1f} MB in {dtype} "
                         f"(limit {max_mb} MB; --int8 stores them in about a quarter of float32's size)")
    out = out_root / name
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / MODEL_FILE, blob)
    card.update(
        name=name,
        source_checkpoint=str(sources[0]) if len(sources) == 1 else [str(src) for src in sources],
        weights_dtype=dtype,
        parameters=parameters,
        heldout_metrics=metrics,
        training={**card.get("training", {}), **training},
        files={MODEL_FILE: hashlib.sha256(blob).hexdigest()},
    )
    atomic_write_json(out / CARD_FILE, seal_card(card))
    return out


def average_checkpoints(sources: list[Path], cards: list[dict], live: bool = False) -> tuple[dict, dict[str, torch.Tensor]]:
    """(card, weights) of the uniform average of checkpoints of one model (`same_model`: the same
    architecture and kwargs, loss weights aside) and tensors: floating-point tensors averaged (in
    float64, stored in their own dtype), integer buffers (batch-norm step counts) taken from the
    first. The card is the first's, its
    ``metrics`` (a validation of the first alone) moved into ``averaged_from``, one entry per
    checkpoint (source, step, metrics, config, time)."""
    first = cards[0]
    for src, card in zip(sources[1:], cards[1:]):
        if not same_model(card.get("architecture"), card.get("kwargs"), first.get("architecture"), first.get("kwargs")):
            raise CheckpointError(f"{src}: --average needs one architecture with the same kwargs (loss weights aside) as {sources[0]}; "
                                  f"got {card.get('architecture')!r} {card.get('kwargs')} vs "
                                  f"{first.get('architecture')!r} {first.get('kwargs')}")
    weights = [checkpoint_weights(src, live) for src in sources]
    for src, w in zip(sources[1:], weights[1:]):
        if {k: v.shape for k, v in w.items()} != {k: v.shape for k, v in weights[0].items()}:
            raise CheckpointError(f"{src / MODEL_FILE}: its tensors differ in names or shapes from "
                                  f"{sources[0] / MODEL_FILE}; only checkpoints of one model can be averaged")
    tensors = {k: (torch.stack([w[k].double() for w in weights]).mean(0).to(v.dtype) if v.is_floating_point() else v)
               for k, v in weights[0].items()}
    members = [{"source_checkpoint": str(src), **{k: card.get(k) for k in ("step", "metrics", "config", "time")}}
               for src, card in zip(sources, cards)]
    return {**first, "metrics": {}, "averaged_from": members}, tensors


def ensemble_card(sources: list[Path], cards: list[dict]) -> dict:
    """The card of checkpoints of one family packaged as its ensemble (`ENSEMBLES`): architecture
    ``<family>_ensemble``, kwargs ``{"members": [each member's kwargs]}``, the first member's
    inference spec with the member count, and each member's source, step, metrics, config and time."""
    families = {card.get("architecture") for card in cards}
    family = families.pop() if len(families) == 1 else None
    if family not in ENSEMBLES:
        raise CheckpointError(f"several checkpoints package as one ensemble only for {sorted(ENSEMBLES)}; "
                              f"got architectures {sorted(str(c.get('architecture')) for c in cards)}")
    members = [{"source_checkpoint": str(src), **{k: card.get(k) for k in ("step", "metrics", "config", "time")}}
               for src, card in zip(sources, cards)]
    header = {k: cards[0][k] for k in ("format", "format_version", "handrecon_version") if k in cards[0]}
    return {**header, "architecture": ENSEMBLES[family], "kwargs": {"members": [card.get("kwargs") or {} for card in cards]},
            "inference": {**cards[0]["inference"], "members": len(cards)}, "members": members}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, nargs="+",
                   help="checkpoint dir or run dir (its best checkpoint); several box verifiers: one ensemble")
    p.add_argument("--name", default="m3dhmr-openhand")
    p.add_argument("--metrics", action="append", default=[], metavar="KEY=PATH",
                   help="held-out metrics JSON stored under heldout_metrics[KEY] (repeatable)")
    p.add_argument("--training", type=Path, help="JSON describing the training run (data, seeds, wall time)")
    p.add_argument("--max-mb", type=float, default=25.0)
    p.add_argument("--out-root", type=Path, default=ASSETS)
    p.add_argument("--average", action="store_true",
                   help="several checkpoints of one architecture: package the uniform average of their weights as one model")
    p.add_argument("--int8", action="store_true",
                   help="store convolution and linear weights in int8 with a scale per output channel (loaded as float32)")
    p.add_argument("--live-weights", action="store_true",
                   help="a run trained with a weight average (train.ema_decay): package its live weights, not the average")
    a = p.parse_args(argv)
    metrics = {}
    for item in a.metrics:
        key, sep, path = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--metrics expects KEY=PATH, got {item!r}")
        metrics[key] = read_json(Path(path), "metrics")
    try:
        out = package(a.checkpoint, a.name, metrics, read_json(a.training, "training"), a.max_mb, a.out_root, a.int8,
                      a.average, a.live_weights)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    size = (out / MODEL_FILE).stat().st_size / 2**20
    print(f"packaged {out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    raise SystemExit(main())
