"""Registries: the names in configs and checkpoint cards (``model.name: m3dhmr``,
``data.train.name: m3dhmr_crops``, a card's ``architecture``) → the objects that build them.

Model families (``handrecon.models.<family>``) register themselves: their model factory in
`MODELS`, their datasets in `DATASETS`, their inference adapter (pre-processing, network,
post-processing, ONNX export; see `handrecon.models.adapter`) in `ADAPTERS` and their hand
detectors in `DETECTORS`. Nothing here names
a family: on a miss, every module listed under the ``handrecon.families`` entry point group
(handrecon's own families in ``pyproject.toml``, or a third-party package's) is imported once, so
the error can list what really exists. Anything else must be listed in a config's ``imports``.

An adapter is looked up first under the ``handrecon.adapters`` entry point group (architecture
name → the module that registers its adapter), and a detector under ``handrecon.detectors``, so
serving a model imports its own family's module and nothing else: an exported M3DHMR behind
handrecon's own detector starts without torch, transformers or the other families.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, Callable

FAMILY_ENTRY_POINTS = "handrecon.families"
ADAPTER_ENTRY_POINTS = "handrecon.adapters"
DETECTOR_ENTRY_POINTS = "handrecon.detectors"


class ConfigError(ValueError):
    """A configuration or a name in it is invalid; the message says which key and what to do."""


def load_families() -> list[str]:
    """Import every registered model family (entry point group ``handrecon.families``); their
    module names, sorted. Importing twice is free (Python caches modules)."""
    names = []
    for ep in entry_points(group=FAMILY_ENTRY_POINTS):
        importlib.import_module(ep.value)
        names.append(ep.value)
    return sorted(names)


class Registry:
    """Maps names used in configs and cards to factories (classes or functions)."""

    def __init__(self, kind: str, entry_points_group: str | None = None,
                 unknown_hint: str = "add the module that registers it to the config's `imports:` list"):
        """entry_points_group: where a missing name's own module is listed (``name = module``),
        imported before falling back to every family. unknown_hint: what to do, after an unknown name."""
        self.kind = kind
        self.entry_points_group = entry_points_group
        self.unknown_hint = unknown_hint
        self._items: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: make `obj` available as `name` (registering another object under a taken
        name is an error; the same object again is allowed, e.g. on module reload)."""
        def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
            old = self._items.get(name)
            if old is not None and _qualname(old) != _qualname(obj):
                raise ValueError(f"{self.kind} {name!r} is already registered by {_qualname(old)}")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._items and self.entry_points_group is not None:
            for ep in entry_points(group=self.entry_points_group, name=name):
                importlib.import_module(ep.value)
        if name not in self._items:
            load_families()
        if name not in self._items:
            known = ", ".join(sorted(self._items)) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r} (registered: {known}); {self.unknown_hint}")
        return self._items[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        factory = self.get(name)
        try:
            return factory(**kwargs)
        except TypeError as e:
            raise ConfigError(f"cannot build {self.kind} {name!r} with kwargs {kwargs}: {e}") from e

    def names(self) -> list[str]:
        load_families()
        return sorted(self._items)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


MODELS = Registry("model")
DATASETS = Registry("dataset")
ADAPTERS = Registry("inference adapter", ADAPTER_ENTRY_POINTS)
DETECTORS = Registry("hand detector", DETECTOR_ENTRY_POINTS,
                     "give a shipped detector by name or KIND:DIR (a pretrained detector's local folder); a crop "
                     "model such as m3dhmr-openhand goes to --model, after DETECTOR+ for a pipeline")


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make a model class/factory buildable as ``model.name: <name>``."""
    return MODELS.register(name)


def register_dataset(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: make a dataset class/factory buildable as ``data.train.name: <name>``."""
    return DATASETS.register(name)


def register_adapter(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: the inference adapter of the model family whose cards say ``architecture: <name>``."""
    return ADAPTERS.register(name)


def register_detector(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: a hand detector loader, ``loader(path: str | None, threads: int | None = None) ->
    detector`` with ``detect(images, score_threshold, nms_iou)``, for ``--detector <name>[:<path>]``."""
    return DETECTORS.register(name)


def import_modules(modules: list[str]) -> None:
    """Import a config's ``imports`` so their ``register_*`` decorators run."""
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError as e:
            raise ConfigError(f"imports: cannot import {m!r}: {e}") from e
