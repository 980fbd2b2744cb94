"""Checkpoint cards: reading and verifying a checkpoint's ``card.json`` (see `handrecon.checkpoint`
for the layout) and finding a checkpoint directory in a run. No torch: serving an exported model
reads the card of the checkpoint it came from without importing torch."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

CARD_FORMAT = "handrecon-checkpoint"
CARD_VERSION = 1
MODEL_FILE, STATE_FILE, CARD_FILE = "model.safetensors", "state.safetensors", "card.json"


# Model kwargs that shape training only (the loss's weights), not the model's tensors or what it computes:
# two models that differ in these alone are the same model (`same_model`).
TRAINING_ONLY_KWARGS = ("loss_weights",)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt; the message names the path."""


def same_model(architecture_a: str | None, kwargs_a: dict | None, architecture_b: str | None,
               kwargs_b: dict | None) -> bool:
    """Whether two (architecture, kwargs) pairs build the same model: the same architecture and kwargs,
    `TRAINING_ONLY_KWARGS` aside (a fine-tune or a run averaged in may have trained with other loss
    weights)."""
    def model_part(kwargs: dict | None) -> dict:
        return {k: v for k, v in (kwargs or {}).items() if k not in TRAINING_ONLY_KWARGS}

    return architecture_a == architecture_b and model_part(kwargs_a) == model_part(kwargs_b)


def card_digest(card: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of every card field but ``card_sha256``."""
    body = {k: v for k, v in card.items() if k != "card_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal_card(card: dict[str, Any]) -> dict[str, Any]:
    """The card with its own digest (``card_sha256``) set; write cards only through this."""
    return {**card, "card_sha256": card_digest(card)}


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_pointer(ckpt_root: str | Path, which: str) -> Path | None:
    p = Path(ckpt_root) / f"{which}.json"
    if not p.is_file():
        return None
    try:
        name = json.loads(p.read_text())["checkpoint"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        return None  # a pointer names a checkpoint directory inside ckpt_root, nothing else
    return Path(ckpt_root) / name


def list_checkpoints(ckpt_root: str | Path) -> list[Path]:
    """Checkpoint directories under ``ckpt_root`` that have a card, sorted by step (oldest first)."""
    root = Path(ckpt_root)
    if not root.is_dir():
        return []
    dirs = [d for d in root.glob("step_*") if d.is_dir() and (d / CARD_FILE).is_file()]
    return sorted(dirs, key=lambda d: d.name)


def resolve_checkpoint(path: str | Path) -> Path:
    """Turn a checkpoint dir, its ``card.json``, a ``checkpoints/`` dir or a run dir into a
    checkpoint directory (a run or checkpoints dir resolves to ``best``, then ``last``)."""
    p = Path(path)
    if p.is_file() and p.name == CARD_FILE:
        p = p.parent
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    if (p / CARD_FILE).is_file():
        return p
    for root in (p / "checkpoints", p):
        for which in ("best", "last"):
            target = read_pointer(root, which)
            if target is not None and (target / CARD_FILE).is_file():
                return target
        found = list_checkpoints(root)
        if found:
            return found[-1]
    raise CheckpointError(f"{p} holds no checkpoint (no {CARD_FILE} in it or under checkpoints/)")


def read_card(ckpt_dir: str | Path, verify: bool = True, files: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Read a checkpoint's card; with ``verify`` also check the card's own digest, that its ``files``
    are plain names inside the checkpoint directory (``model.safetensors`` among them), and that each
    exists and matches its hash — or only those named in ``files`` (``(MODEL_FILE,)``: a use of the
    weights alone, which a copy without the training state serves). Raises CheckpointError naming
    the file and the problem."""
    d = Path(ckpt_dir)
    card_path = d / CARD_FILE
    if not card_path.is_file():
        raise CheckpointError(f"{d}: no {CARD_FILE}; the checkpoint is missing or was never completed")
    try:
        card = json.loads(card_path.read_text())
    except (ValueError, RecursionError) as e:
        raise CheckpointError(f"{card_path}: not valid JSON ({e}); the checkpoint is corrupt") from None
    except OSError as e:
        raise CheckpointError(f"{card_path}: cannot read it ({e.strerror or e})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        hint = ("; this is a packaged hand detector (transformers weights): tools/detector_checkpoint.py OUT "
                f"--detector {d} writes it as a training checkpoint"
                if isinstance(card, dict) and card.get("architecture") == "hand_detector" else "")
        raise CheckpointError(f"{card_path}: not a handrecon checkpoint card{hint}")
    if verify:
        if card.get("card_sha256") != card_digest(card):
            raise CheckpointError(f"{card_path}: the card does not match its own digest (card_sha256): it was edited "
                                  "or not written by handrecon; re-save the checkpoint with handrecon")
        listed = card.get("files")
        if not isinstance(listed, dict) or MODEL_FILE not in listed:
            raise CheckpointError(f"{card_path}: no 'files' table listing {MODEL_FILE} and its SHA-256; "
                                  "the card is incomplete")
        for name, digest in listed.items():
            if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
                raise CheckpointError(f"{card_path}: 'files' entry {name!r} is not a plain file name inside "
                                      f"{d}; refused")
            if files is not None and name not in files:
                continue
            f = d / name
            if not f.is_file():
                raise CheckpointError(f"{d}: {name} is missing; the checkpoint is incomplete")
            if file_sha256(f) != digest:
                raise CheckpointError(f"{f}: contents do not match the hash in {CARD_FILE}; the file is corrupt")
    return card
