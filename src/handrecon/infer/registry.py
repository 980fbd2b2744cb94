"""Named models shipped inside the package.

A shipped model is a checkpoint directory under ``handrecon/assets/models/<name>/`` holding
``model.safetensors`` and ``card.json`` (the files `handrecon.checkpoint` writes; the card's
``files`` lists only ``model.safetensors``). `resolve_model` turns a name or a path into
something `handrecon.load` can open.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "m3dhmr-openhand"  # the crop model
DEFAULT_DETECTOR = "handrecon-hand-detector"  # what finds the hands for a crop model in a full image


@dataclass(frozen=True)
class ShippedModel:
    name: str
    architecture: str
    description: str

    @property
    def directory(self) -> Path:
        """``src/handrecon/assets/models/<name>/`` inside the installed package."""
        return Path(__file__).resolve().parent.parent / "assets" / "models" / self.name

    @property
    def installed(self) -> bool:
        return (self.directory / "model.safetensors").is_file() and (self.directory / "card.json").is_file()


SHIPPED_MODELS: dict[str, ShippedModel] = {
    m.name: m
    for m in (
        ShippedModel(
            "m3dhmr-openhand", "m3dhmr",
            "M3DHMR trained on synthetic OpenHand crops (CPU recipe); right-hand crops, OpenHand topology.",
        ),
        ShippedModel(
            "handos-openhand", "handos",
            "HandOS (one stage) on the frozen hand detector and crop model, trained on synthetic OpenHand scenes "
            "(CPU recipe, declared deviations); every hand of a full image, side from the mesh normals.",
        ),
    )
}


class ModelNotFoundError(FileNotFoundError):
    """A model name is unknown, its weights are not installed, or a model path does not exist."""


def resolve_model(name_or_path: str | Path) -> Path:
    """A shipped model's directory, or the given path (checkpoint dir, run dir, card.json, .onnx).

    Raises ModelNotFoundError with what to do when neither exists.
    """
    key = str(name_or_path)
    if key in SHIPPED_MODELS:
        model = SHIPPED_MODELS[key]
        if not model.installed:
            raise ModelNotFoundError(
                f"model {key!r} is registered but its weights are not installed (expected model.safetensors "
                f"and card.json in {model.directory}); pass a checkpoint directory, run directory or .onnx "
                f"file instead, or install a handrecon build that ships the weights"
            )
        return model.directory
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    raise ModelNotFoundError(
        f"model {key!r} is neither a shipped model ({', '.join(SHIPPED_MODELS)}) nor an existing path "
        f"(checkpoint directory, run directory or .onnx file)"
    )
