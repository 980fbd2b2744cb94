"""The one way handrecon opens an onnxruntime session (CPU) and keeps its own ONNX exports
(crop models and the hand detector), the sub-graphs cut from them and their interfaces, in the cache."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from handrecon.utils.io import atomic_write_bytes, cache_dir

T = TypeVar("T")
log = logging.getLogger(__name__)


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


def onnx_export_available() -> bool:
    """Whether onnx (to export) and onnxruntime (to run) are installed (extra "onnx"); found
    without importing them (onnx alone takes 0.1 s to import, and a cached export needs only
    onnxruntime)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def cached_export(kind: str, fingerprint: str, export: Callable[[Path], Any], open_export: Callable[[Path], T]) -> T | None:
    """`open_export(path)` of the export kept at ``$HANDRECON_CACHE/<kind>/<fingerprint[:32]>-opt.onnx``,
    written by `export(path)` (atomically) on first use, and again when the kept file does not open
    (`open_export` raises ValueError: damaged or from another version). None, with a warning, when
    exporting or opening fails (an unwritable cache, an exporter error): the caller keeps torch.
    The kept file is optimised once (`optimize_in_place`), so every later start opens it faster."""
    path = cache_dir() / kind / f"{fingerprint[:32]}-opt.onnx"  # "-opt": optimised (older plain exports are not reused)
    if path.is_file():
        try:
            return open_export(path)
        except ValueError as e:
            log.warning("exporting again: the cached export %s is unusable (%s)", path, e)
    try:
        export(path)
        optimize_in_place(path)
        return open_export(path)
    except Exception as e:  # noqa: BLE001 - the exporter and onnxruntime raise many types; torch still works
        log.warning("keeping torch: the ONNX export to %s failed (%s)", path, e)
        return None


def optimize_in_place(path: Path) -> None:
    """Rewrite a cached export with onnxruntime's portable graph optimisations applied (level
    "extended": constant folding and operator fusions, not the machine-specific layouts), atomically:
    a session then starts about 2x faster (the hand detector: 280 -> 145 ms), with the same outputs.
    The file may hold onnxruntime's own fused operators, so only cached exports are optimised (a
    file `handrecon export-onnx` writes stays plain ONNX); if optimising fails the file is kept as
    it is."""
    import onnxruntime as ort  # optional dependency (extra "onnx"): imported only when used

    tmp = path.with_name(f".{path.name}.optimized.tmp")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp)
    try:
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        os.replace(tmp, path)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types; the plain export still works
        log.warning("keeping %s unoptimised (%s)", path, e)
        tmp.unlink(missing_ok=True)


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes: the key of what the cache keeps about an ONNX file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_interface(digest: str, open_session: Callable[[], Any]) -> dict[str, Any]:
    """The interface of the ONNX file whose bytes have `digest` (`file_digest`): ``inputs``
    [[name, shape], ...], ``outputs`` [name, ...] and ``metadata`` {key: value} (its
    metadata_props), kept at ``$HANDRECON_CACHE/subgraphs/<digest>-interface.json``: read from
    `open_session()` (an onnxruntime session of the file) once, then from the kept file, so a model
    served in sub-graphs (`cached_subgraphs`) never opens the whole graph (~0.1 s and its weights'
    memory). A damaged kept file is read from a session again."""
    target = cache_dir() / "subgraphs" / f"{digest[:32]}-interface.json"
    try:
        kept = json.loads(target.read_text())
        if isinstance(kept, dict) and {"inputs", "outputs", "metadata"} <= set(kept):
            return kept
    except (OSError, ValueError):
        pass
    session = open_session()
    interface = {"inputs": [[i.name, list(i.shape)] for i in session.get_inputs()],
                 "outputs": [o.name for o in session.get_outputs()],
                 "metadata": dict(session.get_modelmeta().custom_metadata_map)}
    try:
        atomic_write_bytes(target, json.dumps(interface).encode(), durable=False)
    except OSError as e:  # an unwritable cache: read from a session again next time
        log.warning("cannot keep the interface of an ONNX file in %s (%s)", target, e)
    return interface


def cached_subgraphs(path: Path, cuts: list[tuple[list[str], list[str]]], digest: str | None = None) -> list[Path] | None:
    """Sub-graphs of the ONNX file at `path`, one per (input tensor names, output tensor names) in
    `cuts` (`onnx.utils.Extractor`), kept at ``$HANDRECON_CACHE/subgraphs/<key>-<i>.onnx`` under a
    key of the file's bytes (`digest`: its `file_digest`, computed when not given) and the cuts: cut
    once (importing onnx, ~0.5 s), then opened directly. None, with a warning, when onnx is not
    installed or cutting fails."""
    key = hashlib.sha256(((digest or file_digest(path)) + repr(cuts)).encode()).hexdigest()[:32]
    out = [cache_dir() / "subgraphs" / f"{key}-{i}.onnx" for i in range(len(cuts))]
    if all(p.is_file() for p in out):
        return out
    try:
        import onnx  # optional dependency (extra "onnx"): imported only to cut a graph not yet cut
        from onnx.utils import Extractor

        extractor = Extractor(onnx.load(str(path)))
        for (inputs, outputs), target in zip(cuts, out):
            atomic_write_bytes(target, extractor.extract_model(inputs, outputs).SerializeToString(), durable=False)
    except Exception as e:  # noqa: BLE001 - onnx missing, an unwritable cache, a graph onnx cannot cut
        log.warning("serving %s whole: cannot cut it into sub-graphs (%s)", path, e)
        return None
    return out
