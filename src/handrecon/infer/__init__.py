"""handrecon.infer: the one inference protocol (`Predictor`, built by `load`), typed results,
batch runs over files, mesh export and ONNX export / onnxruntime inference. Submodules are
imported on first use (torch and onnxruntime are slow to import)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "HandResult": "handrecon.infer.results",
    "ImageResult": "handrecon.infer.results",
    "Predictor": "handrecon.infer.predictor",
    "load": "handrecon.infer.load",
    "export_onnx": "handrecon.infer.torch_backend",
    "reconstruct_paths": "handrecon.infer.batch",
    "SHIPPED_MODELS": "handrecon.infer.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'handrecon.infer' has no attribute {name!r}")
