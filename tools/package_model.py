"""Package a trained checkpoint (any family: M3DHMR, HandOS) as a shipped model: ``src/handrecon/assets/models/<name>/``.

    python tools/package_model.py runs/m3dhmr_cpu --training runs/m3dhmr_cpu/training.json \
        --metrics pipeline=runs/m3dhmr_cpu/heldout_eval/metrics.json \
        --metrics network=runs/m3dhmr_cpu/heldout_eval/crop_metrics.json

Copies the checkpoint's weights (the best one of a run directory, see
`handrecon.checkpoint.resolve_checkpoint`) as ``model.safetensors`` — in float16 when the
float32 file would exceed ``--max-mb`` — and writes ``card.json``: the checkpoint card (architecture,
kwargs, the model's inference spec as the trainer wrote it, config, step, validation metrics), copied
unchanged, with ``files`` listing only the weights, plus ``heldout_metrics`` ({KEY: contents of each
``--metrics KEY=PATH`` JSON}) and ``training`` (data, seeds, wall time, commands, from
``--training``). The result loads with ``handrecon.load(name)``.
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
    CARD_FILE, MODEL_FILE, CheckpointError, load_tensors, read_card, resolve_checkpoint, seal_card,
)
from handrecon.utils.io import atomic_write_bytes, atomic_write_json

ASSETS = Path(__file__).resolve().parent.parent / "src" / "handrecon" / "assets" / "models"


def read_json(path: Path | None, what: str) -> dict:
    if path is None:
        return {}
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"{path}: cannot read the {what} JSON ({e})")


def package(checkpoint: Path, name: str, metrics: dict, training: dict, max_mb: float, out_root: Path = ASSETS) -> Path:
    """Write ``out_root/name/{model.safetensors, card.json}``; returns the directory."""
    src = resolve_checkpoint(checkpoint)
    card = read_card(src, verify=True)
    tensors = load_tensors(src / MODEL_FILE)
    blob = st_save(tensors)
    dtype = "float32"
    if len(blob) > max_mb * 2**20:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        blob, dtype = st_save(tensors), "float16"
        if len(blob) > max_mb * 2**20:
            raise SystemExit(f"{src}: weights are {len(blob) / 2**20:.1f} MB even in float16 (limit {max_mb} MB)")
    if not isinstance(card.get("inference"), dict):
        raise CheckpointError(f"{src}: the card has no inference spec (written by the trainer since handrecon "
                              "0.1.0's model-family layout); re-save the checkpoint before packaging it")
    out = out_root / name
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / MODEL_FILE, blob)
    card.update(
        name=name,
        source_checkpoint=str(src),
        weights_dtype=dtype,
        parameters=int(sum(v.numel() for k, v in tensors.items() if v.is_floating_point())),
        heldout_metrics=metrics,
        training={**card.get("training", {}), **training},
        files={MODEL_FILE: hashlib.sha256(blob).hexdigest()},
    )
    atomic_write_json(out / CARD_FILE, seal_card(card))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, help="checkpoint dir or run dir (its best checkpoint)")
    p.add_argument("--name", default="m3dhmr-openhand")
    p.add_argument("--metrics", action="append", default=[], metavar="KEY=PATH",
                   help="held-out metrics JSON stored under heldout_metrics[KEY] (repeatable)")
    p.add_argument("--training", type=Path, help="JSON describing the training run (data, seeds, wall time)")
    p.add_argument("--max-mb", type=float, default=25.0)
    p.add_argument("--out-root", type=Path, default=ASSETS)
    a = p.parse_args(argv)
    metrics = {}
    for item in a.metrics:
        key, sep, path = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--metrics expects KEY=PATH, got {item!r}")
        metrics[key] = read_json(Path(path), "metrics")
    try:
        out = package(a.checkpoint, a.name, metrics, read_json(a.training, "training"),
                      a.max_mb, a.out_root)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    size = (out / MODEL_FILE).stat().st_size / 2**20
    print(f"packaged {out} ({size:.1f} MB)")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    raise SystemExit(main())
