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
import logging
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from handrecon.models.adapter import INPUT_NAME
from handrecon.utils.onnx import cached_interface, cached_subgraphs, file_digest, ort_session

METADATA_KEY = "handrecon"
METADATA_FORMAT, METADATA_VERSION = "handrecon-onnx", 2
OPSET = 17
log = logging.getLogger(__name__)


def metadata(card: dict, refine_root: bool) -> str:
    """The ``handrecon`` metadata value (JSON) for a model's card."""
    return json.dumps({"format": METADATA_FORMAT, "format_version": METADATA_VERSION, "card": card,
                       "refine_root": bool(refine_root)})


class OnnxNetwork:
    """An ONNX file on onnxruntime (CPU, `threads` intra-op threads) as a `infer.predictor.Network`.
    Its interface (inputs, outputs, metadata) is read once per file into the cache
    (`utils.onnx.cached_interface`); the whole graph's session opens on first use, which a graph
    served in two stages (`use_stages`) never makes."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path, self.threads, self.staged = Path(path), threads, False
        self._session: Any = None
        self._opening = threading.Lock()  # batches run in several threads: one whole session
        try:
            self.digest = file_digest(self.path)
        except OSError as e:
            raise ValueError(f"{path}: cannot read it ({e})") from None
        interface = cached_interface(self.digest, lambda: self.session)
        self.output_names, self.metadata = list(interface["outputs"]), interface["metadata"]
        inputs = interface["inputs"]
        if [name for name, _ in inputs] != [INPUT_NAME]:
            raise ValueError(f"{path}: the graph takes {[name for name, _ in inputs]}, not one {INPUT_NAME!r}; not a "
                             "handrecon export")
        self.input_shape = list(inputs[0][1])  # [batch, 3, S, S]; S fixed at export
        self.precision = _precision(self.metadata)  # read once: every written result's settings name it

    @property
    def session(self) -> Any:
        """The whole graph's onnxruntime session, opened on first use."""
        with self._opening:
            if self._session is None:
                try:
                    self._session = ort_session(self.path, self.threads)
                except ValueError as e:
                    raise ValueError(f"{e}; re-export with `handrecon export-onnx`") from e
            return self._session

    def __call__(self, inputs: np.ndarray, **extra: np.ndarray) -> dict[str, np.ndarray]:
        if extra:
            raise ValueError(f"this model takes further inputs ({', '.join(extra)}: e.g. box prompts) that an exported "
                             "graph does not; serve it from its checkpoint (torch)")
        outputs = self.session.run(self.output_names, {INPUT_NAME: np.ascontiguousarray(inputs, np.float32)})
        return dict(zip(self.output_names, outputs))

    def use_stages(self, stage_link: Sequence[str], second_stage_outputs: Sequence[str]) -> bool:
        """Serve the graph in the adapter's two stages (`models.adapter.InferenceAdapter`), as two
        sessions over sub-graphs cut from this file (`utils.onnx.cached_subgraphs`, cut once per
        file): image → the other outputs, and `stage_link` → `second_stage_outputs`. False, leaving
        the whole graph in one session, where the graph lacks those outputs (an older export) or
        cannot be cut (onnx not installed)."""
        if not second_stage_outputs or not set(stage_link) | set(second_stage_outputs) <= set(self.output_names):
            return False
        self.first_names = [n for n in self.output_names if n not in second_stage_outputs]
        self.stage_link, self.second_names = list(stage_link), list(second_stage_outputs)
        paths = cached_subgraphs(self.path, [([INPUT_NAME], self.first_names), (self.stage_link, self.second_names)],
                                 self.digest)
        if paths is None:
            return False
        try:
            self.first_session, self.second_session = (ort_session(p, self.threads) for p in paths)
        except ValueError as e:  # a damaged cached sub-graph: cut again next time, whole now
            log.warning("serving %s whole (%s)", self.path, e)
            for p in paths:
                p.unlink(missing_ok=True)
            return False
        self.staged = True
        return True

    def first_stage(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.first_session.run(self.first_names, {INPUT_NAME: np.ascontiguousarray(inputs, np.float32)})
        return dict(zip(self.first_names, outputs))

    def second_stage(self, link: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.second_session.run(self.second_names, {name: np.ascontiguousarray(link[name], np.float32)
                                                              for name in self.stage_link})
        return dict(zip(self.second_names, outputs))

    def read_metadata(self, path: str | Path) -> dict:
        """The ``handrecon`` metadata (ValueError if the file is not a handrecon export)."""
        raw = self.metadata.get(METADATA_KEY)
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


def _precision(metadata: dict[str, str]) -> str:
    """"int8" for an int8 export (its ``handrecon`` metadata records a `quantization`), else "float32"."""
    try:
        return "int8" if "quantization" in json.loads(metadata.get(METADATA_KEY, "{}")) else "float32"
    except (ValueError, TypeError, RecursionError):
        return "float32"
