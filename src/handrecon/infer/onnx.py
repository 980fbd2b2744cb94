"""ONNX export of a crop model and inference with onnxruntime (`handrecon export-onnx`).

The exported graph is the network only: ``image`` (B, 3, S, S) float32 ImageNet-normalised →
``uv_px`` (B, 21, 2) crop pixels, ``verts`` (B, V, 3), ``joints`` (B, 21, 3) root-relative metres
(`M3DHMRInference`), with a dynamic batch axis. Cropping, root recovery and the way back to the
image camera are the same Python code as the torch backend (`infer.predictor`). What that code
needs travels in the ONNX metadata_props under the key ``handrecon``: a JSON object with the
checkpoint card, the input size, the crop scale, the root refinement switch and both faces arrays.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from handrecon.infer.predictor import Reconstructor, load_torch
from handrecon.utils.io import atomic_write_bytes

METADATA_KEY = "handrecon"
OPSET = 17
INPUT_NAME, OUTPUT_NAMES = "image", ("uv_px", "verts", "joints")


def export_onnx(model: str | Path | Reconstructor, out: str | Path, opset: int = OPSET) -> Path:
    """Export a model (shipped name, checkpoint/run dir, or a torch `Reconstructor`) to `out` (.onnx)."""
    import onnx

    from handrecon.infer.registry import resolve_model
    from handrecon.models.m3dhmr import export_onnx as export_network

    rec = model if isinstance(model, Reconstructor) else load_torch(resolve_model(model))
    network = getattr(rec.network, "model", None)
    if not isinstance(network, torch.nn.Module):
        raise ValueError("export_onnx needs a torch model (a checkpoint or shipped model), not an ONNX one")
    S = rec.input_size
    device = next(network.parameters()).device
    with tempfile.TemporaryDirectory() as d:
        proto = onnx.load(str(export_network(network.cpu(), Path(d) / "network.onnx", image_size=S, opset=opset)))
    network.to(device)
    meta = {
        "format": "handrecon-onnx", "format_version": 1, "card": rec.card, "input_size": S,
        "crop_scale": rec.crop_scale, "refine_root": rec.refine_root,
        "faces_right": rec.faces_right.tolist(), "faces_left": rec.faces_left.tolist(),
    }
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{out} is a folder; give the path of the .onnx file to write, e.g. {out / 'model.onnx'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, proto.SerializeToString())
    except OSError as e:
        raise ValueError(f"cannot write {out}: {e.strerror or e} (is a parent path a file, or not writable?)") from None
    return out


class OnnxNetwork:
    """An onnxruntime session (CPU) as a `Network`."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or 0)  # 0: onnxruntime's default (all cores)
        so.inter_op_num_threads = 1
        # No busy-waiting between runs: the crop and root recovery that follow share these cores.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise ValueError(f"{path}: onnxruntime cannot load it ({e}); re-export with `handrecon export-onnx`") from e

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(images, np.float32)})
        return dict(zip(OUTPUT_NAMES, outputs))


class OnnxReconstructor(Reconstructor):
    """`Reconstructor` whose network runs in onnxruntime; pre/post-processing are shared."""


def read_metadata(path: str | Path, network: OnnxNetwork | None = None) -> dict:
    """The ``handrecon`` metadata of an exported file (ValueError if it is not a handrecon export)."""
    network = network or OnnxNetwork(path, threads=1)
    raw = network.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        raise ValueError(f"{path}: no '{METADATA_KEY}' metadata; not exported by `handrecon export-onnx`")
    try:
        meta = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"{path}: '{METADATA_KEY}' metadata is not valid JSON ({e})") from None
    if meta.get("format") != "handrecon-onnx":
        raise ValueError(f"{path}: metadata format {meta.get('format')!r}, expected 'handrecon-onnx'")
    return meta


def load_onnx(path: str | Path, threads: int | None = None, refine_root: bool | None = None) -> OnnxReconstructor:
    """An `OnnxReconstructor` for an exported file; `threads` onnxruntime intra-op threads."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} does not exist")
    network = OnnxNetwork(path, threads)
    meta = read_metadata(path, network)
    return OnnxReconstructor(
        network, meta["input_size"], np.asarray(meta["faces_right"], np.int64), np.asarray(meta["faces_left"], np.int64),
        meta["crop_scale"], meta["refine_root"] if refine_root is None else refine_root, meta["card"], str(path),
    )
