"""M3DHMR: Monocular 3D Hand Mesh Recovery (papers/m3dhmr.txt), the model family "m3dhmr".

- `dsc.py`: Dynamic Spiral Convolution (§3.2) and its temperature schedule.
- `decoder.py`: lifting matrix, coarse-to-fine spiral decoder, head and ROI layer (§3.1, §3.3).
- `model.py`: the full model (encoder + decoder + root placement), validation and its inference
  spec; the batch keys it reads are listed there.
- `loss.py`: the paper's loss (§3.4) and its weights.
- `data.py`: the training/validation datasets ``m3dhmr_crops`` and ``m3dhmr_stream``.
- `inference.py`: the inference adapter (crops in, camera-space hands out) and the ONNX graph.

- `family.py`: importing it registers the model, its datasets and its adapter (`handrecon.registry`);
  handrecon finds it through the ``handrecon.families`` entry point, and the adapter alone through
  ``handrecon.adapters`` (serving an exported model imports `inference.py` only, which needs no torch).

The names below are imported on first use, so that importing `inference.py` stays light.
Config: `model: {name: m3dhmr, kwargs: {backbone: stacked_resnet18, conv: dsc, num_kernels: 8,
roi: true, ...}}` (kwargs of `M3DHMR`).
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CropPipeline": "data", "M3DHMRCrops": "data", "M3DHMRStream": "data",
    "CONV_TYPES": "decoder", "MeshDecoder": "decoder", "ROILayer": "decoder", "spiral_layer": "decoder",
    "DynamicSpiralConv": "dsc", "temperature_at": "dsc",
    "M3DHMRAdapter": "inference",
    "M3DHMR": "model", "M3DHMRNetwork": "model", "pixel_affine_to_normalized": "model",
    "m3dhmr": "family",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"handrecon.models.m3dhmr.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'handrecon.models.m3dhmr' has no attribute {name!r}")
