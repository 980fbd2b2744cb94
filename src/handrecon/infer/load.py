"""`handrecon.load`: a shipped model name, a checkpoint or run directory, or an exported ``.onnx``
file → a `Predictor`; and `export_onnx`, the way from the first kinds to the last.

The card is data: its ``architecture`` picks the family's inference adapter from
`handrecon.registry.ADAPTERS` and its ``inference`` (written by the trainer from the model's
``inference_spec()``) configures it; nothing the card names is imported.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import torch

from handrecon.checkpoint import load_model, read_card, resolve_checkpoint
from handrecon.infer.detect import build_detector
from handrecon.infer.onnx import METADATA_KEY, METADATA_VERSION, OPSET, OnnxNetwork, metadata
from handrecon.infer.pipeline import PIPELINE_SEPARATOR, TwoStagePredictor, is_pipeline
from handrecon.infer.predictor import Predictor, TorchNetwork
from handrecon.infer.registry import resolve_model
from handrecon.models.adapter import InferenceAdapter
from handrecon.registry import ADAPTERS, ConfigError
from handrecon.utils.io import atomic_write_bytes
from handrecon.utils.onnx import cached_export, onnx_export_available

BACKENDS = ("torch", "auto")


def build_adapter(card: dict, where: str) -> InferenceAdapter:
    """The inference adapter of a card's family, configured by the card's inference spec."""
    spec = card.get("inference")
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: the card has no inference spec ('inference'); re-save the checkpoint with "
                         "this handrecon version")
    try:
        return ADAPTERS.get(str(card.get("architecture")))(spec)
    except ConfigError as e:
        raise ValueError(f"{where}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: the card's inference spec is incomplete or invalid ({e!r})") from None


def load_torch(path: str | Path, device: str | torch.device = "cpu", refine_root: bool | None = None) -> Predictor:
    """A torch-backed Predictor from a checkpoint directory or run directory."""
    model, card = load_model(path, device=device)
    adapter = build_adapter(card, str(path))
    refine = getattr(model, "refine_root", True) if refine_root is None else refine_root
    network = TorchNetwork(adapter.network(model), adapter.output_names, device)
    return Predictor(adapter, network, refine, card, str(path), model=model)


def load_onnx(path: str | Path, threads: int | None = None, refine_root: bool | None = None) -> Predictor:
    """An onnxruntime-backed Predictor for an exported file; `threads` onnxruntime intra-op threads."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} does not exist")
    network = OnnxNetwork(path, threads)
    meta = network.read_metadata(path)
    adapter = build_adapter(meta["card"], str(path))
    missing = set(adapter.output_names) - set(network.output_names)
    if missing:
        raise ValueError(f"{path}: the graph lacks the outputs {sorted(missing)} that a "
                         f"{meta['card'].get('architecture')!r} model has; re-export it")
    graph_size = network.input_shape[-2:]
    if list(graph_size) != [adapter.input_size] * 2:
        raise ValueError(f"{path}: the metadata says input_size {adapter.input_size} but the graph takes "
                         f"{graph_size[0]} x {graph_size[1]} images; the file was edited or is broken, re-export it")
    refine = bool(meta.get("refine_root", True)) if refine_root is None else refine_root
    return Predictor(adapter, network, refine, meta["card"], str(path))


def check_threads(threads: int | None) -> None:
    """ValueError unless `threads` is None or a positive integer."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive number of CPU threads, got {threads!r}")


def set_threads(threads: int | None) -> None:
    """Use `threads` torch intra-op threads (None: leave torch's default)."""
    check_threads(threads)
    if threads is not None:
        torch.set_num_threads(threads)


def load(name_or_path: str | Path, device: str = "cpu", threads: int | None = None,
         refine_root: bool | None = None, backend: str = "torch") -> Predictor | TwoStagePredictor:
    """Load a model for inference: a shipped model name (`infer.registry`), a checkpoint or run
    directory (torch, on `device`), or an exported ``.onnx`` file (onnxruntime, CPU, `threads`
    intra-op threads); or ``DETECTOR+MODEL``, a two-stage pipeline (`infer.pipeline`: a detector
    name or ``KIND:DIR`` and a crop model of the kinds above). Returns a `Predictor` or a
    `TwoStagePredictor` (``.predict``, ``.predict_batch``).

    backend "auto" (what `handrecon reconstruct` and `serve` use): a crop model on the CPU runs on
    onnxruntime, exported once into ``$HANDRECON_CACHE/models/`` under its card's digest (which
    covers its weights), when the extra "onnx" is installed; else, and for "torch", on torch."""
    check_threads(threads)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if is_pipeline(name_or_path):
        detector, _, crop = str(name_or_path).partition(PIPELINE_SEPARATOR)
        crop_predictor = load(crop, device, threads, refine_root, backend)
        set_threads(threads)
        return TwoStagePredictor(build_detector(detector), crop_predictor, source=str(name_or_path))
    path = resolve_model(name_or_path)
    if path.suffix.lower() == ".onnx":
        return load_onnx(path, threads=threads, refine_root=refine_root)
    set_threads(threads)
    predictor = load_exported(path, threads, refine_root) if backend == "auto" and str(device) == "cpu" else None
    if predictor is None:
        predictor = load_torch(path, device, refine_root)
    predictor.source = str(name_or_path)
    return predictor


def load_exported(path: str | Path, threads: int | None = None, refine_root: bool | None = None) -> Predictor | None:
    """A crop model's cached onnxruntime Predictor (`utils.onnx.cached_export`, key: the card's
    digest), exported on first use; None for a model that finds its own hands (HandOS serves box
    prompts and its detector through torch), without onnx/onnxruntime, or when the export fails."""
    if not onnx_export_available():
        return None
    ckpt = resolve_checkpoint(path)
    card = read_card(ckpt)  # verified: its digest covers the weights' SHA-256
    if build_adapter(card, str(ckpt)).detects_hands:
        return None
    key = hashlib.sha256(f"{card['card_sha256']} onnx {METADATA_VERSION}".encode()).hexdigest()
    return cached_export("models", key, lambda out: export_onnx(load_torch(ckpt), out),
                         lambda out: load_onnx(out, threads, refine_root))


def export_onnx(model: str | Path | Predictor, out: str | Path, opset: int = OPSET) -> Path:
    """Export a model (shipped name, checkpoint/run dir, or a torch `Predictor`) to `out` (.onnx):
    the family's network graph plus the card in the ``handrecon`` metadata."""
    import onnx  # optional dependency (extra "onnx"): imported only when exporting

    predictor = model if isinstance(model, Predictor) else load_torch(resolve_model(model))
    if predictor.model is None:
        raise ValueError("export_onnx needs a torch model (a checkpoint or shipped model), not an ONNX one")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out} is a folder; give the path of the .onnx file to write, e.g. {out / 'model.onnx'}")
    network = predictor.model
    device = next(network.parameters()).device
    with tempfile.TemporaryDirectory() as d:
        proto = onnx.load(str(predictor.adapter.export_network(network.cpu(), Path(d) / "network.onnx", opset)))
    network.to(device)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata(predictor.card, predictor.refine_root)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, proto.SerializeToString())
    except OSError as e:
        raise ValueError(f"cannot write {out}: {e.strerror or e} (is a parent path a file, or not writable?)") from None
    return out
