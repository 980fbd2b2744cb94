"""Checkpoints: safetensors weights, safetensors training state and a JSON card, written atomically.

Layout of one checkpoint directory (``RUN/checkpoints/step_00001234/``)::

    model.safetensors   model weights (the unwrapped module's state_dict)
    state.safetensors   optimizer, LR schedule, AMP scaler, step, per-rank RNG states; tensors as
                        tensors, the rest as JSON in the safetensors metadata (no pickle)
    card.json           architecture name + kwargs, hand model, config, step, epoch (epochs
                        completed, fractional), metrics of the last validation, handrecon
                        version, time, the SHA-256 of both files, and its own SHA-256
                        (``card_sha256``, over the canonical JSON of every other field)

A card is data. Loading a checkpoint never imports or runs anything the card names: the model is
built from handrecon's own registry (families under ``handrecon.models``), the card must carry a
``files`` table of plain file names inside the checkpoint directory (the weights among them), each
file must match its hash, and the card must match its own digest (an edited or hand-written card is
refused).

The directory is assembled under a temporary name and renamed into place, so a checkpoint either
exists completely or not at all. ``RUN/checkpoints/last.json`` and ``best.json`` point to the
newest and the best checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from handrecon.card import (  # the torch-free half of this API, re-exported here
    CARD_FILE, CARD_FORMAT, CARD_VERSION, MODEL_FILE, STATE_FILE, CheckpointError, card_digest, file_sha256,
    list_checkpoints, read_card, read_pointer, resolve_checkpoint, same_model, seal_card,
)
from handrecon.registry import MODELS, ConfigError
from handrecon.utils.io import atomic_write_bytes, atomic_write_json
from handrecon.version import __version__

# --------------------------------------------------------------------------- tensor/JSON state


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor] | None = None, prefix: str = "s") -> tuple[Any, dict]:
    """Split a nested state (dicts, lists, tuples, tensors, numpy arrays, scalars) into a JSON
    skeleton and a flat ``{name: tensor}`` dict. Inverse: :func:`unflatten_state`."""
    tensors = {} if tensors is None else tensors
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": prefix}, tensors
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}, tensors
    if isinstance(obj, np.generic):
        return obj.item(), tensors
    if isinstance(obj, dict):
        items = [[k, flatten_state(v, tensors, f"{prefix}.{k}")[0]] for k, v in obj.items()]
        return {"__dict__": items}, tensors
    if isinstance(obj, (list, tuple)):
        items = [flatten_state(v, tensors, f"{prefix}.{i}")[0] for i, v in enumerate(obj)]
        return (items if isinstance(obj, list) else {"__tuple__": items}), tensors
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj, tensors
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint state")


def unflatten_state(skel: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skel, list):
        return [unflatten_state(v, tensors) for v in skel]
    if isinstance(skel, dict):
        if "__tensor__" in skel:
            return tensors[skel["__tensor__"]]
        if "__ndarray__" in skel:
            return np.asarray(skel["__ndarray__"], dtype=skel["dtype"])
        if "__tuple__" in skel:
            return tuple(unflatten_state(v, tensors) for v in skel["__tuple__"])
        return {k: unflatten_state(v, tensors) for k, v in skel["__dict__"]}
    return skel


def rng_state() -> dict[str, Any]:
    """This process's python, numpy, torch (and CUDA) RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- writing


def model_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's state_dict as independent contiguous CPU tensors (safetensors rejects shared storage)."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def save_checkpoint(
    ckpt_dir: str | Path,
    model: torch.nn.Module,
    state: dict[str, Any],
    card: dict[str, Any],
) -> Path:
    """Write ``model`` weights, the training ``state`` and the ``card`` into ``ckpt_dir`` atomically.

    The files are written into a temporary sibling directory that is renamed onto ``ckpt_dir``
    (replacing an older one of the same name) only once all three are complete.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{ckpt_dir.name}.", suffix=".tmp", dir=ckpt_dir.parent))
    try:
        atomic_write_bytes(tmp / MODEL_FILE, st_save(model_tensors(model)))
        skel, tensors = flatten_state(state)
        atomic_write_bytes(tmp / STATE_FILE, st_save(tensors, metadata={"state": json.dumps(skel)}))
        card = {
            "format": CARD_FORMAT,
            "format_version": CARD_VERSION,
            **card,
            "handrecon_version": __version__,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": {name: file_sha256(tmp / name) for name in (MODEL_FILE, STATE_FILE)},
        }
        atomic_write_json(tmp / CARD_FILE, seal_card(card))
        if ckpt_dir.exists():
            old = ckpt_dir.with_name(f".{ckpt_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(ckpt_dir, old)
            os.replace(tmp, ckpt_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, ckpt_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ckpt_dir


def write_pointer(ckpt_root: str | Path, which: str, ckpt_dir: Path, **extra: Any) -> None:
    """Point ``ckpt_root/{which}.json`` (``last`` or ``best``) at a checkpoint directory."""
    atomic_write_json(Path(ckpt_root) / f"{which}.json", {"checkpoint": ckpt_dir.name, **extra})


def prune_checkpoints(ckpt_root: str | Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` checkpoints, never the one ``best.json`` points to."""
    if keep_last <= 0:
        return
    best = read_pointer(ckpt_root, "best")
    for d in list_checkpoints(ckpt_root)[:-keep_last]:
        if best is None or d.resolve() != best.resolve():
            shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- reading


def find_last_checkpoint(run_dir: str | Path, skipped: list[str] | None = None) -> Path | None:
    """The newest complete, verified checkpoint of a run (``last.json`` first, then a scan).
    Each newer checkpoint passed over (corrupt, incomplete) is appended to `skipped` with the reason."""
    root = Path(run_dir) / "checkpoints"
    candidates = list_checkpoints(root)[::-1]
    last = read_pointer(root, "last")
    if last is not None and last not in candidates[:1]:
        candidates.insert(0, last)
    for c in candidates:
        try:
            read_card(c, verify=True)
            return c
        except CheckpointError as e:
            if skipped is not None:
                skipped.append(str(e))
    return None


def remove_stale_temporaries(ckpt_root: str | Path) -> list[Path]:
    """Remove what interrupted writes left in a checkpoints folder (``.step_*.tmp`` / ``.*.old``
    directories, ``.*.tmp`` files: never a finished checkpoint); returns what was removed. Call it
    only where no other process is writing checkpoints into this folder."""
    root = Path(ckpt_root)
    removed = []
    for p in sorted(root.glob(".*")) if root.is_dir() else []:
        if p.name.endswith((".tmp", ".old")):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


INT8_FORMAT, INT8_SCALE = "int8-per-channel", ".int8_scale"  # weights stored by `quantize_weights_int8`


def quantize_weights_int8(tensors: dict[str, torch.Tensor], min_numel: int = 4096) -> dict[str, torch.Tensor]:
    """Weights for storage in int8 (a shipped model's size; compute stays float32): each floating
    tensor of >= 2 dims and >= `min_numel` elements (convolution and linear weights) as int8 with a
    symmetric float32 scale per output channel (``NAME`` + `INT8_SCALE`); the rest in float16.
    Save with metadata ``{"weights": INT8_FORMAT}``; `load_tensors` restores float32."""
    out = {}
    for name, t in tensors.items():
        if t.is_floating_point() and t.dim() >= 2 and t.numel() >= min_numel:
            w = t.float()
            scale = (w.abs().amax(dim=tuple(range(1, w.dim()))) / 127).clamp(min=1e-12)
            out[name] = torch.round(w / scale.view(-1, *[1] * (w.dim() - 1))).clamp(-127, 127).to(torch.int8)
            out[name + INT8_SCALE] = scale
        else:
            out[name] = t.half() if t.is_floating_point() else t
    return out


def _dequantize_int8(tensors: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    out = {}
    for name, t in tensors.items():
        if name.endswith(INT8_SCALE):
            continue
        scale = tensors.get(name + INT8_SCALE)
        if scale is not None:
            if t.dtype != torch.int8 or scale.shape != t.shape[:1]:
                raise CheckpointError(f"{path}: {name} is not an int8 tensor with one scale per output channel")
            t = t.float() * scale.float().view(-1, *[1] * (t.dim() - 1))
        out[name] = t
    return out


def load_tensors(path: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; int8 weights (`quantize_weights_int8`) restored to float32.
    With `prefix`, only those whose names start with it, the prefix removed (one member of an
    ensemble: ``members.0.``)."""
    try:
        blob = path.read_bytes()
        tensors = st_load(blob)
        metadata = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")]).get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read safetensors ({e}); the file is corrupt") from e
    tensors = _dequantize_int8(tensors, path) if metadata.get("weights") == INT8_FORMAT else tensors
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)} if prefix else tensors


def load_state(ckpt_dir: str | Path) -> dict[str, Any]:
    """The training state saved by :func:`save_checkpoint` (optimizer, schedule, scaler, RNG, step)."""
    path = Path(ckpt_dir) / STATE_FILE
    try:
        with safe_open(str(path), framework="pt") as f:
            skel = json.loads(f.metadata()["state"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot read the training state ({e}); the file is corrupt") from e
    return unflatten_state(skel, tensors)


def load_weights(model: torch.nn.Module, ckpt_dir: str | Path, strict: bool = True) -> None:
    """Load ``model.safetensors`` of a checkpoint into ``model`` (names and shapes must match)."""
    path = Path(ckpt_dir) / MODEL_FILE
    tensors = load_tensors(path)
    try:
        model.load_state_dict(tensors, strict=strict)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model: {e}") from e


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint (or run dir): ``(model in eval mode, card)``.

    The architecture must be one handrecon registers itself (or one registered in this process);
    nothing named by the card is imported."""
    d = resolve_checkpoint(path)
    card = read_card(d, verify=True, files=(MODEL_FILE,))  # the weights alone: a copy without the training state serves
    arch, kwargs = card.get("architecture"), card.get("kwargs") or {}
    if not isinstance(arch, str) or not arch.isidentifier() or not isinstance(kwargs, dict):
        raise CheckpointError(f"{d / CARD_FILE}: 'architecture' must be a model family name and 'kwargs' an object")
    try:
        model = MODELS.build(arch, **kwargs)
    except ConfigError as e:  # unknown family, or kwargs it does not take
        raise CheckpointError(f"{d / CARD_FILE}: {e}") from None
    except (ValueError, OSError, pickle.UnpicklingError) as e:  # the family's own checks; a missing or refused file
        raise CheckpointError(f"{d / CARD_FILE}: cannot build a {arch!r} model from the card's kwargs: {e}") from None
    load_weights(model, d)
    return model.to(device).eval(), card
