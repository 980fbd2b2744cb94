"""The torch backend: a checkpoint's model served by torch (`TorchNetwork`, `load_torch`), and the
way from it to an exported ONNX file (`export_onnx`). `infer.load` imports this module only when a
model runs on torch or is exported, so serving an exported model never imports torch."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from handrecon.checkpoint import load_model
from handrecon.infer.onnx import METADATA_KEY, OPSET, metadata
from handrecon.infer.pipeline import PIPELINE_SEPARATOR
from handrecon.infer.predictor import Predictor, build_adapter, check_threads
from handrecon.infer.quantize import quantize_int8
from handrecon.infer.registry import resolve_model
from handrecon.models.adapter import INPUT_NAME
from handrecon.utils.cpu_features import cpu_bf16_is_emulated
from handrecon.utils.io import atomic_write_bytes, check_output_file

TORCH_PRECISIONS = ("float32", "bfloat16")  # a `Predictor.precision` torch computes in (int8: an onnxruntime export's)


class TorchNetwork:
    """A family's torch network (`InferenceAdapter.network`) as a `infer.predictor.Network`."""

    def __init__(self, module: torch.nn.Module, output_names: Sequence[str], device: str | torch.device = "cpu",
                 stage_link: Sequence[str] = (), second_stage_outputs: Sequence[str] = (),
                 precision: str = "float32"):
        """stage_link, second_stage_outputs: the adapter's two stages (`InferenceAdapter`), if any:
        the module then has ``first_stage`` and ``second_stage``. precision "bfloat16": every call
        runs under bf16 autocast with the weights and images channels-last (oneDNN's fast layout
        for bf16 convolutions); outputs are float32 either way."""
        if precision not in TORCH_PRECISIONS:
            raise ValueError(f"a torch network runs in {' or '.join(TORCH_PRECISIONS)}, got {precision!r}")
        self.device = torch.device(device)
        self.precision = precision
        self.module = module.to(self.device).eval()
        if precision == "bfloat16":
            self.module = self.module.to(memory_format=torch.channels_last)
        self.output_names = tuple(output_names)
        self.stage_link, self.second_names = tuple(stage_link), tuple(second_stage_outputs)
        self.first_names = tuple(n for n in self.output_names if n not in self.second_names)
        self.staged = bool(self.second_names)

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    def _images(self, inputs: np.ndarray) -> torch.Tensor:
        images = torch.from_numpy(inputs).to(self.device)
        return images.contiguous(memory_format=torch.channels_last) if self.precision == "bfloat16" else images

    @torch.no_grad()
    def __call__(self, inputs: np.ndarray, **extra: np.ndarray) -> dict[str, np.ndarray]:
        with self._autocast():
            outputs = self.module(self._images(inputs), **{k: torch.from_numpy(v).to(self.device) for k, v in extra.items()})
        return self._named(self.output_names, outputs)

    @torch.no_grad()
    def first_stage(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        with self._autocast():
            return self._named(self.first_names, self.module.first_stage(self._images(inputs)))

    @torch.no_grad()
    def second_stage(self, link: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = [torch.from_numpy(np.ascontiguousarray(link[name])).to(self.device) for name in self.stage_link]
        with self._autocast():
            return self._named(self.second_names, self.module.second_stage(*tensors))

    @staticmethod
    def _named(names: Sequence[str], outputs: Sequence[torch.Tensor]) -> dict[str, np.ndarray]:
        return {name: out.float().cpu().numpy() for name, out in zip(names, outputs)}


def set_threads(threads: int | None) -> None:
    """Use `threads` torch intra-op threads (None: leave torch's default)."""
    check_threads(threads)
    if threads is not None:
        torch.set_num_threads(threads)


def load_torch(path: str | Path, device: str | torch.device = "cpu", refine_root: bool | None = None,
               precision: str = "float32") -> Predictor:
    """A torch-backed Predictor from a checkpoint directory or run directory; precision "bfloat16"
    runs its network under bf16 autocast (`TorchNetwork`), refused where the CPU has no native bf16
    arithmetic (emulated, it is many times slower than float32)."""
    if precision == "bfloat16":
        check_native_bf16(torch.device(device))
    model, card = load_model(path, device=device)
    adapter = build_adapter(card, str(path))
    refine = getattr(model, "refine_root", True) if refine_root is None else refine_root
    network = TorchNetwork(adapter.network(model), adapter.output_names, device, adapter.stage_link,
                           adapter.second_stage_outputs, precision)
    return Predictor(adapter, network, refine, card, str(path), model=model)


def check_native_bf16(device: torch.device) -> None:
    """ValueError unless `device` computes in bf16 natively (a CPU with AVX512-BF16 or AMX, or a
    CUDA device with bf16 support)."""
    if device.type == "cpu" and cpu_bf16_is_emulated():
        raise ValueError("bf16 serving needs a CPU with native bf16 arithmetic (AVX512-BF16 or AMX); this one would "
                         "emulate it, many times slower than float32: serve without --bf16 (onnxruntime's int8 export by default)")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"bf16 serving: {device} has no bf16 support; serve in float32 (the default)")


def export_onnx(model: str | Path | Predictor, out: str | Path, opset: int = OPSET, int8: bool = False,
                calibration: Sequence[np.ndarray] | None = None, calibration_source: str = "") -> Path:
    """Export a model (shipped name, checkpoint/run dir, or a torch `Predictor`) to `out` (.onnx):
    the family's network graph plus the card in the ``handrecon`` metadata. With `int8` the
    convolutions are quantised (`infer.quantize.quantize_int8`; the adapter's `int8_float_nodes`
    stay float32), calibrated on `calibration`: RGB uint8 images, each given whole to the model as
    one hand crop (default: `CALIBRATION_IMAGES` crops rendered by the synthetic engine,
    `calibration_crops`)."""
    import onnx  # optional dependency (extra "onnx"): imported only when exporting

    out = check_output_file(out, (".onnx",), "export")  # handrecon.load tells an export from a checkpoint by the suffix
    if not isinstance(model, (str, Path, Predictor)) or (isinstance(model, str) and PIPELINE_SEPARATOR in model):
        raise ValueError(f"{getattr(model, 'source', None) or model}: a DETECTOR{PIPELINE_SEPARATOR}MODEL pipeline "
                         "is two networks, and ONNX export takes one: export the crop model alone (e.g. "
                         "--model m3dhmr-openhand); the shipped detector runs on onnxruntime by itself (exported "
                         "once into the cache)")
    predictor = model if isinstance(model, Predictor) else load_torch(resolve_model(model))
    if predictor.model is None:
        raise ValueError("export_onnx needs a torch model (a checkpoint or shipped model), not an ONNX one")
    if int8 and predictor.detects_hands:
        raise ValueError("--int8 quantises crop models (the whole image is one hand crop during calibration); "
                         f"{predictor.card.get('architecture')!r} finds its own hands")
    network = predictor.model
    device = next(network.parameters()).device
    with tempfile.TemporaryDirectory() as d:
        proto = onnx.load(str(predictor.adapter.export_network(network.cpu(), Path(d) / "network.onnx", opset)))
        network.to(device)
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, metadata(predictor.card, predictor.refine_root)
        if int8:
            plain = Path(d) / "plain.onnx"
            plain.write_bytes(proto.SerializeToString())
            if calibration is None:
                calibration, calibration_source = calibration_crops(), CALIBRATION_SOURCE
            inputs = predictor.prepare(list(calibration), [None] * len(calibration), [None] * len(calibration),
                                       [["right"]] * len(calibration)).inputs  # each crop once, as it is
            return quantize_int8(plain, out, inputs, INPUT_NAME, calibration_source=calibration_source,
                                 float_nodes=predictor.adapter.int8_float_nodes)
    try:
        atomic_write_bytes(out, proto.SerializeToString())
    except OSError as e:
        raise ValueError(f"cannot write {out}: {e.strerror or e} (is {out.parent} writable?)") from None
    return out


CALIBRATION_IMAGES, CALIBRATION_SEED = 64, 3000
CALIBRATION_SOURCE = (f"{CALIBRATION_IMAGES} crops of `handrecon synth --preset crop --seed {CALIBRATION_SEED}` "
                      "(procedural backgrounds), each whole as the crop")


def calibration_crops(num: int = CALIBRATION_IMAGES, seed: int = CALIBRATION_SEED) -> list[np.ndarray]:
    """`num` hand crops (RGB uint8) rendered by the synthetic engine's crop preset, the default
    int8 calibration set (a seed no recipe trains or evaluates on)."""
    # deferred: the synthetic engine's imports (moderngl, the hand models) serve only this default
    from handrecon.data.synth import SynthEngine, preset

    engine = SynthEngine(preset("crop"))
    return [engine.sample(i, seed).image for i in range(num)]
