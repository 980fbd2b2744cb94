"""The one way handrecon opens an onnxruntime session (CPU): crop models and the hand detector."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """An `onnxruntime.InferenceSession` on the CPU for the file at `path`; `threads` intra-op
    threads (None or 0: onnxruntime's default, all cores). ValueError if onnxruntime cannot load it."""
    import onnxruntime as ort  # optional dependency (extra "onnx"): imported only when used

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or 0)
    so.inter_op_num_threads = 1
    # No busy-waiting between runs: the pre- and post-processing that follow share these cores.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise ValueError(f"{path}: onnxruntime cannot load it ({e})") from e
