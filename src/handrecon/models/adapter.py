"""What a model family gives the shared inference code (`handrecon.infer`): its inference adapter.

`handrecon.infer` owns everything that is the same for every model: input checks, the default
camera, typed results, writers, overlays, the torch and onnxruntime backends. A family supplies,
registered under its architecture name with `handrecon.registry.register_adapter`, a subclass of
`InferenceAdapter` built from the model's inference spec (the dict the model's
``inference_spec()`` returns and the trainer writes into the checkpoint card):

1. `preprocess`: validated images, intrinsics and per-image box/side prompts → the network's input
   array and whatever the way back needs (`Prepared`);
2. `network`: the torch module that maps that array to the named outputs (`output_names`), which
   the torch backend runs as is and `export_network` writes as the ONNX graph;
3. `postprocess`: the outputs → every hand of every image in the image's camera (`Hands`).

Inference spec keys every family writes: ``input_size`` (px), ``normalization`` ({"mean", "std"},
RGB in [0, 1], see `utils.image.normalize_images`), ``hand_model`` (a name for
`hand.load.load_hand_model_data`), ``topology_sha256`` (`hand.load.topology_sha256`), and its
own rule for what the network sees (e.g. ``crop``: {"rule": "box", "scale": 1.325}).
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

INPUT_NAME = "image"


@dataclass
class Hands:
    """Every hand predicted in one image, stacked, in that image's camera (OpenCV frame).

    boxes (N, 4) px x1, y1, x2, y2; scores (N,) in [0, 1], NaN where the model has none; sides N of "left" | "right";
    keypoints_2d (N, 21, 2) px; keypoints_3d (N, 21, 3) m; vertices (N, V, 3) m (right-hand
    topology of the spec's hand model); cam_t (N, 3) m, the root (wrist) joint; side_scores (N,)
    the probability of each reported side where the model read it (NaN: given, or not read);
    heatmap_peaks (N,) a crop model's keypoint sharpness per hand (NaN: the graph has none).
    """

    boxes: np.ndarray
    scores: np.ndarray
    sides: list[str]
    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray
    vertices: np.ndarray
    cam_t: np.ndarray
    side_scores: np.ndarray | None = None
    heatmap_peaks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sides)


@dataclass
class Prepared:
    """A batch ready for the network: `inputs` (B, 3, S, S) float32 and, per image, what the way
    back needs (`views`, family-defined), plus the images' intrinsics (3, 3) and sizes (H, W).
    extra: further named network inputs (numpy arrays), e.g. HandOS's box prompts; the torch
    backend passes them to the network as keyword arguments."""

    inputs: np.ndarray
    views: list[Any]
    Ks: list[np.ndarray]
    image_sizes: list[tuple[int, int]]
    extra: dict[str, Any] = field(default_factory=dict)


class InferenceAdapter(ABC):
    """One family's pre-processing, network and post-processing (see the module docstring).

    detects_hands: True for a full-image model that finds its own hands (boxes are optional
    prompts); False for a crop model (a box per hand, or the whole image as one crop).
    """

    detects_hands: bool = False
    output_names: tuple[str, ...] = ()
    optional_outputs: tuple[str, ...] = ()  # outputs an older exported graph may lack (the adapter copes)
    test_time_rotations: tuple[float, ...] = (0.0,)
    # A network in two stages (optional): the outputs `second_stage_outputs` depend on the image only
    # through the first stage's outputs `stage_link`, so a backend may compute them for the rows
    # `rows_to_finish` keeps only (M3DHMR: the mesh decoder, for the side reading's winning crops).
    # The torch module then has ``first_stage(inputs)`` (the other outputs, in `output_names` order)
    # and ``second_stage(*link)`` (`second_stage_outputs`, in order).
    stage_link: tuple[str, ...] = ()
    second_stage_outputs: tuple[str, ...] = ()
    # An int8 export (`infer.quantize.quantize_int8`) keeps the graph's convolutions whose node names
    # start with one of these in float32 (ONNX node names follow the torch module paths).
    int8_float_nodes: tuple[str, ...] = ()

    def __init__(self, spec: dict[str, Any]) -> None:
        """Check the shared spec keys (ValueError naming the key): a card is data, maybe edited."""
        self.spec = dict(spec)
        size = spec["input_size"]
        if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 4096:
            raise ValueError(f"inference spec: input_size must be an integer number of pixels in 16-4096, got {size!r}")
        self.input_size = size
        norm = spec["normalization"]
        mean, std = np.asarray(norm["mean"], np.float64), np.asarray(norm["std"], np.float64)
        if mean.shape != (3,) or std.shape != (3,) or not (np.isfinite(mean).all() and np.isfinite(std).all()) \
                or not (std > 0).all():
            raise ValueError(f"inference spec: normalization needs 3 finite means and 3 positive stds, got {norm!r}")
        self.mean, self.std = tuple(mean.tolist()), tuple(std.tolist())
        if not isinstance(spec["hand_model"], str) or not isinstance(spec["topology_sha256"], str):
            raise ValueError("inference spec: hand_model and topology_sha256 must be strings")

    def use_outputs(self, names: Sequence[str]) -> None:
        """The outputs the served graph has, which may lack some of `optional_outputs` (a file
        exported by an older version); an adapter that reads one does without it."""

    def set_test_time_rotations(self, rotations_deg: Sequence[float]) -> None:
        """Test-time augmentation: each hand is seen once per in-plane rotation (degrees) and the
        results are averaged. Only families that support it override this; the rest refuse."""
        raise ValueError(f"test-time rotations apply to crop models (a box per hand); {type(self).__name__} "
                         "does not take them")

    @abstractmethod
    def preprocess(self, images: Sequence[np.ndarray], Ks: Sequence[np.ndarray],
                   boxes: Sequence[np.ndarray | None], sides: Sequence[list[str | None] | None],
                   side_priors: Sequence[np.ndarray | None] | None = None) -> Prepared:
        """images: RGB uint8 (H, W, 3), checked; Ks: (3, 3) float64; boxes[i]: (N_i, 4) px or None;
        sides[i]: N_i sides or None (a None side: not given; a crop model reads it); side_priors[i]:
        (N_i,) log-odds of "left" from another reader for hands whose side is not given, or None."""

    def set_second_look(self, on: bool) -> None:
        """Look again at unsure hands (`second_look`). Only families that support it override this."""
        if on:
            raise ValueError(f"a second look applies to crop models (a box per hand); {type(self).__name__} "
                             "does not take it")

    @property
    def looks_twice(self) -> bool:
        """True when `second_look` may add views (a family that supports it and has it on)."""
        return False

    def second_look(self, prepared: Prepared, first: dict[str, np.ndarray]) -> Prepared | None:
        """More views after the first pass: from the first-stage outputs `first` of every row, a
        batch whose `inputs` are `prepared.inputs` with further rows appended (same earlier rows;
        `views` updated to say what they are), or None (default: never). The backend runs the
        first stage on the new rows only and asks again (with every row's outputs) until None;
        `rows_to_finish` and `postprocess` see the whole batch."""
        return None

    def rows_to_finish(self, prepared: Prepared, first: dict[str, np.ndarray]) -> np.ndarray:
        """Rows of `prepared.inputs` whose `second_stage_outputs` `postprocess` reads, from the first
        stage's outputs `first` (default: every row)."""
        return np.arange(len(prepared.inputs))

    @abstractmethod
    def postprocess(self, prepared: Prepared, outputs: dict[str, np.ndarray], refine_root: bool = True) -> list[Hands]:
        """Network outputs (`output_names` → arrays, batch first) → one `Hands` per image."""

    @abstractmethod
    def network(self, model: Any) -> Any:
        """The torch module mapping `Prepared.inputs` (as a tensor) to a tuple in `output_names`
        order, in eval mode; the torch backend runs it and `export_network` traces it. An adapter
        reaches it through the model (e.g. ``model.inference_network()``), so that the adapter
        itself never imports torch: it also serves the exported graph, on onnxruntime alone."""

    def export_network(self, model: Any, path: str | Path, opset: int = 17) -> Path:
        """Write the `network` graph of `model` to `path` (dynamic batch axis, fixed input size).

        The TorchScript exporter (``dynamo=False``; the dynamo exporter needs onnxscript). It traces
        in eval mode and afterwards restores the exported module's training flags recursively, so
        `model`'s own mode is saved and restored here."""
        import torch  # deferred: only exporting needs torch; serving the exported graph must not import it

        was_training = model.training
        S = self.input_size
        names = (INPUT_NAME, *self.output_names)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
                torch.onnx.export(self.network(model), (torch.zeros(1, 3, S, S),), str(path), dynamo=False,
                                  opset_version=opset, input_names=[INPUT_NAME], output_names=list(self.output_names),
                                  dynamic_axes={name: {0: "batch"} for name in names})
        finally:
            model.train(was_training)
        return Path(path)
