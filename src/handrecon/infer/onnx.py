"""The onnxruntime backend and the ``handrecon`` metadata of an exported ONNX file.

An exported file (`infer.torch_backend.export_onnx`, `handrecon export-onnx`) holds the family's network
graph only (`InferenceAdapter.network`: ``image`` (B, 3, S, S) float32 normalised → its named
outputs, dynamic batch axis). Pre- and post-processing are the same Python code as the torch
backend. What they need travels in the ONNX metadata_props under the key ``handrecon``: a JSON
object with the checkpoint card (whose ``inference`` is the model's inference spec) and the root
refinement switch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from handrecon.models.adapter import INPUT_NAME
from handrecon.utils.onnx import ort_session

METADATA_KEY = "handrecon"
METADATA_FORMAT, METADATA_VERSION = "handrecon-onnx", 2
OPSET = 17


def metadata(card: dict, refine_root: bool) -> str:
    """The ``handrecon`` metadata value (JSON) for a model's card."""
    return json.dumps({"format": METADATA_FORMAT, "format_version": METADATA_VERSION, "card": card,
                       "refine_root": bool(refine_root)})


class OnnxNetwork:
    """An onnxruntime session (CPU) as a `infer.predictor.Network`."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        try:
            self.session = ort_session(path, threads)
        except ValueError as e:
            raise ValueError(f"{e}; re-export with `handrecon export-onnx`") from e
        self.output_names = [o.name for o in self.session.get_outputs()]
        inputs = self.session.get_inputs()
        if [i.name for i in inputs] != [INPUT_NAME]:
            raise ValueError(f"{path}: the graph takes {[i.name for i in inputs]}, not one {INPUT_NAME!r}; not a handrecon "
                             "export")
        self.input_shape = list(inputs[0].shape)  # [batch, 3, S, S]; S fixed at export

    def __call__(self, inputs: np.ndarray, **extra: np.ndarray) -> dict[str, np.ndarray]:
        if extra:
            raise ValueError(f"this model takes further inputs ({', '.join(extra)}: e.g. box prompts) that an exported "
                             "graph does not; serve it from its checkpoint (torch)")
        outputs = self.session.run(self.output_names, {INPUT_NAME: np.ascontiguousarray(inputs, np.float32)})
        return dict(zip(self.output_names, outputs))

    def read_metadata(self, path: str | Path) -> dict:
        """The ``handrecon`` metadata (ValueError if the file is not a handrecon export)."""
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise ValueError(f"{path}: no '{METADATA_KEY}' metadata; not exported by `handrecon export-onnx`")
        try:
            meta = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise ValueError(f"{path}: '{METADATA_KEY}' metadata is not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("format") != METADATA_FORMAT:
            raise ValueError(f"{path}: metadata format {meta.get('format') if isinstance(meta, dict) else meta!r}, "
                             f"expected {METADATA_FORMAT!r}")
        if meta.get("format_version") != METADATA_VERSION or not isinstance(meta.get("card"), dict):
            raise ValueError(f"{path}: exported by another handrecon version (metadata version "
                             f"{meta.get('format_version')!r}, this one reads {METADATA_VERSION}); re-export it with "
                             "`handrecon export-onnx`")
        return meta
