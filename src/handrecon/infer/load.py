"""`handrecon.load`: a shipped model name, a checkpoint or run directory, or an exported ``.onnx``
file → a `Predictor` (`infer.torch_backend.export_onnx` is the way from the first kinds to the last).

The card is data: its ``architecture`` picks the family's inference adapter from
`handrecon.registry.ADAPTERS` and its ``inference`` (written by the trainer from the model's
``inference_spec()``) configures it; nothing the card names is imported.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from handrecon.card import MODEL_FILE, read_card, resolve_checkpoint
from handrecon.infer.detect import build_detector
from handrecon.infer.onnx import METADATA_VERSION, OnnxNetwork
from handrecon.infer.pipeline import PIPELINE_SEPARATOR, TwoStagePredictor, is_pipeline
from handrecon.infer.predictor import Predictor, build_adapter, check_threads
from handrecon.infer.registry import DEFAULT_MODEL, ModelNotFoundError, resolve_model
from handrecon.registry import DETECTORS
from handrecon.utils.onnx import cached_export, onnx_export_available

BACKENDS = ("torch", "auto")
# `--tta`: the crop turned by every multiple of 45 degrees (training rotates crops up to 45; the
# hand's global orientation covers the rest). On the shipped crop model (stage 16), foreign set (seed
# 7), whole image: 12.37 mm PA-MPJPE with one view, 12.06 with the default second look, 11.56 with
# 0 and +-45 degrees only (the set served until 2026-12-04, twenty-first session), 10.91 with these
# eight, views weighted by sharpness, at 8x the network time (docs/model_card_m3dhmr_openhand.md,
# "Test-time rotations").
TEST_TIME_ROTATIONS = (0.0, -45.0, 45.0, -90.0, 90.0, -135.0, 135.0, 180.0)


def load_onnx(path: str | Path, threads: int | None = None, refine_root: bool | None = None) -> Predictor:
    """An onnxruntime-backed Predictor for an exported file; `threads` onnxruntime intra-op threads."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} does not exist")
    network = OnnxNetwork(path, threads)
    meta = network.read_metadata(path)
    adapter = build_adapter(meta["card"], str(path))
    missing = set(adapter.output_names) - set(network.output_names) - set(adapter.optional_outputs)
    adapter.use_outputs(network.output_names)  # an older export may lack an optional output
    if missing:
        raise ValueError(f"{path}: the graph lacks the outputs {sorted(missing)} that a "
                         f"{meta['card'].get('architecture')!r} model has; re-export it")
    graph_size = network.input_shape[-2:]
    if list(graph_size) != [adapter.input_size] * 2:
        raise ValueError(f"{path}: the metadata says input_size {adapter.input_size} but the graph takes "
                         f"{graph_size[0]} x {graph_size[1]} images; the file was edited or is broken, re-export it")
    network.use_stages(adapter.stage_link, adapter.second_stage_outputs)
    refine = bool(meta.get("refine_root", True)) if refine_root is None else refine_root
    return Predictor(adapter, network, refine, meta["card"], str(path))


def load(name_or_path: str | Path, device: str = "cpu", threads: int | None = None,
         refine_root: bool | None = None, backend: str = "torch",
         test_time_rotations: Sequence[float] | None = None, second_look: bool | None = None,
         int8: bool | None = None, bf16: bool = False) -> Predictor | TwoStagePredictor:
    """Load a model for inference: a shipped model name (`infer.registry`), a checkpoint or run
    directory (torch, on `device`), or an exported ``.onnx`` file (onnxruntime, CPU, `threads`
    intra-op threads); or ``DETECTOR+MODEL``, a two-stage pipeline (`infer.pipeline`: a detector
    name or ``KIND:DIR`` and a crop model of the kinds above). Returns a `Predictor` or a
    `TwoStagePredictor` (``.predict``, ``.predict_batch``).

    backend "auto" (what `handrecon reconstruct` and `serve` use): a crop model on the CPU runs on
    onnxruntime, exported once into ``$HANDRECON_CACHE/models/`` under its card's digest (which
    covers its weights), when the extra "onnx" is installed; else, and for "torch", on torch.
    torch is imported only for a model that runs on torch or is being exported: an ``.onnx``
    file, or a crop model whose export is in the cache, starts without it.
    int8: which export backend "auto" serves a crop model checkpoint from. None (the default): its
    int8 export (`infer.quantize`: int8 convolutions, calibrated on rendered crops; exported once
    too, or the float32 one where it cannot be made) where it runs on onnxruntime, else float32;
    False: the float32 export; True: int8 required (a ValueError off onnxruntime). The int8 export
    is faster at the float32 one's accuracy, as measured in the model card
    (docs/model_card_m3dhmr_openhand.md, "int8": served by default since 2026-12-06).
    bf16: serve a crop model on torch under bf16 autocast, channels-last (whatever the backend):
    on a CPU with AMX about 1.7x faster networks than onnxruntime's float32 (the model card,
    "bf16"); refused (ValueError) where the CPU has no native bf16 arithmetic.

    test_time_rotations: a crop model sees each hand once per in-plane rotation (degrees, e.g.
    `TEST_TIME_ROTATIONS`) and averages the views, weighted by how sharp their heatmaps are (the M3DHMR adapter's docstring); None: one view.
    Costs one network pass per angle; a model that finds its own hands refuses it (ValueError).
    second_look: a crop model looks again: a hand given as the whole image also framed around its
    landmarks, and turned ±45 degrees where its heatmaps are not sharp (the M3DHMR adapter's
    docstring; no effect with test-time rotations). None (the default): on for a crop model;
    False: one look; True: required (a model that finds its own hands refuses it, ValueError)."""
    check_threads(threads)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if int8 and (backend != "auto" or str(device) != "cpu"):
        raise ValueError("int8 serving runs on onnxruntime on the CPU: use backend 'auto' (the command line's "
                         "default) and device 'cpu', or export the model with `handrecon export-onnx --int8` and "
                         "load the .onnx file")
    if int8 and bf16:
        raise ValueError("int8 and bf16 are two precisions for the crop network; choose one")
    if is_pipeline(name_or_path):
        detector, _, crop = str(name_or_path).partition(PIPELINE_SEPARATOR)
        crop_predictor = load(crop, device, threads, refine_root, backend, test_time_rotations, second_look, int8, bf16)
        return TwoStagePredictor(build_detector(detector, threads), crop_predictor, source=str(name_or_path))
    try:
        path = resolve_model(name_or_path)
    except ModelNotFoundError as e:
        kind = str(name_or_path).partition(":")[0]
        if kind not in DETECTORS.names():
            raise
        raise ModelNotFoundError(f"{name_or_path!r} is a hand detector, which finds boxes only: load "
                                 f"'{name_or_path}{PIPELINE_SEPARATOR}{DEFAULT_MODEL}' (DETECTOR{PIPELINE_SEPARATOR}MODEL) "
                                 "for every hand of a full image, or run `handrecon detect` for the boxes") from e
    if path.suffix.lower() == ".onnx":
        if int8:
            raise ValueError(f"{path}: an .onnx file is served as it was exported; int8 chooses how a checkpoint "
                             "is exported (`handrecon export-onnx --int8` makes an int8 file)")
        if bf16:
            raise ValueError(f"{path}: an .onnx file runs on onnxruntime in its own precision; bf16 serves a checkpoint "
                             "on torch (give the model's name or checkpoint)")
        predictor = load_onnx(path, threads=threads, refine_root=refine_root)
    else:
        predictor = load_exported(path, threads, refine_root, int8 is not False) \
            if backend == "auto" and str(device) == "cpu" and not bf16 else None
        if predictor is None:
            from handrecon.infer import torch_backend  # deferred: imports torch (see the docstring)

            torch_backend.set_threads(threads)
            predictor = torch_backend.load_torch(path, device, refine_root, "bfloat16" if bf16 else "float32")
        predictor.source = str(name_or_path)
    if (int8 or bf16) and predictor.detects_hands:
        raise ValueError(f"{name_or_path}: {'int8' if int8 else 'bf16'} serving applies to crop models; this model "
                         "finds its own hands and serves on torch in float32")
    if test_time_rotations is not None:
        predictor.adapter.set_test_time_rotations(test_time_rotations)
    if second_look or (second_look is None and not predictor.detects_hands):
        predictor.adapter.set_second_look(True)
    return predictor


def load_exported(path: str | Path, threads: int | None = None, refine_root: bool | None = None,
                  int8: bool = False) -> Predictor | None:
    """A crop model's cached onnxruntime Predictor (`utils.onnx.cached_export`, key: the card's
    digest and the precision), exported on first use (`int8`: the int8 export, or the float32 one
    where it cannot be made); None for a model that finds its own hands (HandOS serves box prompts
    and its detector through torch), without onnx/onnxruntime, or when the export fails."""
    if not onnx_export_available():
        return None
    ckpt = resolve_checkpoint(path)
    card = read_card(ckpt, files=(MODEL_FILE,))  # verified: its digest covers the weights' SHA-256
    adapter = build_adapter(card, str(ckpt))
    if adapter.detects_hands:
        return None
    key = f"{card['card_sha256']} onnx {METADATA_VERSION} {','.join(adapter.output_names)}"  # a new output: a new export
    int8_key = f"{key} int8 {','.join(adapter.int8_float_nodes)}"  # float32 keeps the key it always had

    def cached(described: str, quantized: bool) -> Predictor | None:
        return cached_export("models", hashlib.sha256(described.encode()).hexdigest(),
                             lambda out: _export(ckpt, out, quantized), lambda out: load_onnx(out, threads, refine_root))

    return (int8 and cached(int8_key, True)) or cached(key, False)


def _export(ckpt: Path, out: Path, int8: bool) -> Path:
    from handrecon.infer import torch_backend  # deferred: exporting imports torch (a cache hit does not)

    return torch_backend.export_onnx(torch_backend.load_torch(ckpt), out, int8=int8)
