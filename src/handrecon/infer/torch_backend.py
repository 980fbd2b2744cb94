"""The torch backend: a checkpoint's model served by torch (`TorchNetwork`, `load_torch`), and the
way from it to an exported ONNX file (`export_onnx`). `infer.load` imports this module only when a
model runs on torch or is exported, so serving an exported model never imports torch."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from handrecon.checkpoint import load_model
from handrecon.infer.onnx import METADATA_KEY, OPSET, metadata
from handrecon.infer.predictor import Predictor, build_adapter, check_threads
from handrecon.infer.registry import resolve_model
from handrecon.utils.io import atomic_write_bytes


class TorchNetwork:
    """A family's torch network (`InferenceAdapter.network`) as a `infer.predictor.Network`."""

    def __init__(self, module: torch.nn.Module, output_names: Sequence[str], device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.output_names = tuple(output_names)

    @torch.no_grad()
    def __call__(self, inputs: np.ndarray, **extra: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.module(torch.from_numpy(inputs).to(self.device),
                              **{k: torch.from_numpy(v).to(self.device) for k, v in extra.items()})
        return {name: out.float().cpu().numpy() for name, out in zip(self.output_names, outputs)}


def set_threads(threads: int | None) -> None:
    """Use `threads` torch intra-op threads (None: leave torch's default)."""
    check_threads(threads)
    if threads is not None:
        torch.set_num_threads(threads)


def load_torch(path: str | Path, device: str | torch.device = "cpu", refine_root: bool | None = None) -> Predictor:
    """A torch-backed Predictor from a checkpoint directory or run directory."""
    model, card = load_model(path, device=device)
    adapter = build_adapter(card, str(path))
    refine = getattr(model, "refine_root", True) if refine_root is None else refine_root
    network = TorchNetwork(adapter.network(model), adapter.output_names, device)
    return Predictor(adapter, network, refine, card, str(path), model=model)


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
