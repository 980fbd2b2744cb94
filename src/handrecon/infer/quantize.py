"""Post-training int8 quantisation of an exported network (onnxruntime's static QDQ quantiser).

    handrecon export-onnx --int8 --out m3dhmr-int8.onnx        # calibrated on rendered crops
    handrecon export-onnx --int8 --calibration crops/ --out ...  # or on your own images

The convolutions (the encoder: about half of the crop model's time), except those a family keeps in
float32 (`InferenceAdapter.int8_float_nodes`: M3DHMR's heatmap heads), get int8 weights in the 7-bit
range (onnxruntime's `reduce_range`), one scale per output channel, and uint8 activations whose ranges are calibrated (min-max) on a batch of the
model's own network inputs; everything else stays float32. The 7-bit range keeps the file right on
CPUs without VNNI, whose uint8 x int8 kernel (VPMADDUBSW) saturates 16-bit sums of full-range
weights (onnxruntime's quantisation docs): on an AVX2-only EPYC, full-range weights put a test
network's 2D outputs off by 0.58 of their spread, 7-bit ones by 0.14; the shipped crop model's
foreign-set PA-MPJPE went 13.06 -> 12.98 mm (float32: 13.00). onnxruntime then runs them with integer
kernels (VNNI / AMX where the CPU has them). What it costs in accuracy is measured on held-out data
and stated in the model card (`docs/model_card_m3dhmr_openhand.md`, "int8"); the file records how it
was quantised in its ``handrecon`` metadata (`quantization`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from handrecon.infer.onnx import METADATA_KEY
from handrecon.utils.io import atomic_write_bytes

QUANTIZED_OPS = ("Conv",)
CALIBRATION_BATCH = 8


def quantize_int8(src: str | Path, out: str | Path, calibration: np.ndarray, input_name: str,
                  ops: Sequence[str] = QUANTIZED_OPS, calibration_source: str = "",
                  float_nodes: Sequence[str] = ()) -> Path:
    """Write `src` (a handrecon ONNX export) to `out` with `ops` quantised to int8 (QDQ, per-channel
    int8 weights, uint8 activations calibrated min-max on `calibration`: (N, 3, S, S) float32 network
    inputs, N >= 1), except the nodes whose names start with one of `float_nodes`, which stay
    float32. The ``handrecon`` metadata is carried over with a `quantization` entry saying what was
    quantised and on what (`calibration_source`, free text). Written atomically."""
    import onnx  # optional dependency (extra "onnx"): imported only when exporting
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration = np.ascontiguousarray(calibration, np.float32)
    if calibration.ndim != 4 or len(calibration) == 0 or not np.isfinite(calibration).all():
        raise ValueError(f"calibration inputs must be a non-empty finite (N, 3, S, S) array, got {calibration.shape}")
    src_proto = onnx.load(str(src))
    meta = {p.key: p.value for p in src_proto.metadata_props}
    if METADATA_KEY not in meta:
        raise ValueError(f"{src}: no '{METADATA_KEY}' metadata; quantise a file written by `handrecon export-onnx`")

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(calibration, max(1, len(calibration) // CALIBRATION_BATCH)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory() as d:
        pre, quantized = Path(d) / "pre.onnx", Path(d) / "int8.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        kept = [n.name for n in onnx.load(str(pre)).graph.node
                if n.op_type in ops and n.name.startswith(tuple(float_nodes))]
        if float_nodes and not kept:
            raise ValueError(f"{src}: no {'/'.join(ops)} node is named {' or '.join(float_nodes)}...; the graph is "
                             "not the one its family exports")
        quantize_static(str(pre), str(quantized), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=list(ops),
                        reduce_range=True, nodes_to_exclude=kept)
        proto = onnx.load(str(quantized))
    info = json.loads(meta[METADATA_KEY])
    info["quantization"] = {"dtype": "int8", "ops": list(ops), "weights": "int8 (7-bit range), per output channel",
                            "activations": "uint8, min-max calibrated", "float32": kept,
                            "calibration_images": int(len(calibration)), "calibration": calibration_source}
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(info) if key == METADATA_KEY else value
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, proto.SerializeToString())
    except OSError as e:
        raise ValueError(f"cannot write {out}: {e.strerror or e} (is a parent path a file, or not writable?)") from None
    return Path(out)
