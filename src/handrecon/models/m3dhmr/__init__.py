"""M3DHMR: Monocular 3D Hand Mesh Recovery (papers/m3dhmr.txt), the model family "m3dhmr".

- `dsc.py`: Dynamic Spiral Convolution (§3.2) and its temperature schedule.
- `decoder.py`: lifting matrix, coarse-to-fine spiral decoder, head and ROI layer (§3.1, §3.3).
- `model.py`: the full model (encoder + decoder + root placement), validation and its inference
  spec; the batch keys it reads are listed there.
- `loss.py`: the paper's loss (§3.4) and its weights.
- `data.py`: the training/validation datasets ``m3dhmr_crops`` and ``m3dhmr_stream``.
- `inference.py`: the inference adapter (crops in, camera-space hands out) and the ONNX graph.

Importing this package registers the model, its datasets and its adapter (`handrecon.registry`);
handrecon finds it through the ``handrecon.families`` entry point.
Config: `model: {name: m3dhmr, kwargs: {backbone: stacked_resnet18, conv: dsc, num_kernels: 8,
roi: true, ...}}` (kwargs of `M3DHMR`).
"""

from handrecon.models.m3dhmr.data import CropPipeline, M3DHMRCrops, M3DHMRStream
from handrecon.models.m3dhmr.decoder import CONV_TYPES, MeshDecoder, ROILayer, spiral_layer
from handrecon.models.m3dhmr.dsc import DynamicSpiralConv, temperature_at
from handrecon.models.m3dhmr.inference import M3DHMRAdapter, M3DHMRNetwork
from handrecon.models.m3dhmr.model import M3DHMR, pixel_affine_to_normalized
from handrecon.registry import register_model


@register_model("m3dhmr")
def m3dhmr(**kwargs) -> M3DHMR:
    """Build M3DHMR from config kwargs (see `M3DHMR`)."""
    return M3DHMR(**kwargs)


__all__ = [
    "CONV_TYPES", "CropPipeline", "DynamicSpiralConv", "M3DHMR", "M3DHMRAdapter", "M3DHMRCrops", "M3DHMRNetwork",
    "M3DHMRStream", "MeshDecoder", "ROILayer", "m3dhmr", "pixel_affine_to_normalized", "spiral_layer",
    "temperature_at",
]
