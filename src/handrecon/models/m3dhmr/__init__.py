"""M3DHMR: Monocular 3D Hand Mesh Recovery (papers/m3dhmr.txt), registered as model "m3dhmr".

- `dsc.py`: Dynamic Spiral Convolution (§3.2) and its temperature schedule.
- `decoder.py`: lifting matrix, coarse-to-fine spiral decoder, head and ROI layer (§3.1, §3.3).
- `model.py`: the full model (encoder + decoder + root placement), its loss and validation; the
  batch keys it reads are listed there.

Config: `model: {name: m3dhmr, kwargs: {backbone: stacked_resnet18, conv: dsc, num_kernels: 8,
roi: true, ...}}` (kwargs of `M3DHMR`).
"""

from handrecon.models.m3dhmr.decoder import CONV_TYPES, MeshDecoder, ROILayer, spiral_layer
from handrecon.models.m3dhmr.dsc import DynamicSpiralConv, temperature_at
from handrecon.models.m3dhmr.model import M3DHMR, M3DHMRInference, export_onnx, pixel_affine_to_normalized
from handrecon.train.config import register_model


@register_model("m3dhmr")
def m3dhmr(**kwargs) -> M3DHMR:
    """Build M3DHMR from config kwargs (see `M3DHMR`)."""
    return M3DHMR(**kwargs)


__all__ = [
    "CONV_TYPES", "DynamicSpiralConv", "M3DHMR", "M3DHMRInference", "MeshDecoder", "ROILayer", "export_onnx",
    "m3dhmr", "pixel_affine_to_normalized", "spiral_layer", "temperature_at",
]
