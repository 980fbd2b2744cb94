"""Dataset loaders: every one is a map-style dataset (`len`, `[i]` -> `Sample`).

`build_dataset(name, root, split, **kw)` builds one by name (several roots as one training dataset:
`data.stream.build_datasets`); see docs/data_format.md for each on-disk layout and the meaning of the
keyword options. Importing this package does not import torch (the evaluation runners import it).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# name -> (module, class)
REGISTRY: dict[str, tuple[str, str]] = {
    "freihand": ("handrecon.data.loaders.freihand", "FreiHAND"),
    "ho3d": ("handrecon.data.loaders.ho3d", "HO3D"),
    "dexycb": ("handrecon.data.loaders.dexycb", "DexYCB"),
    "hint": ("handrecon.data.loaders.hint", "HInt"),
    "coco_wholebody": ("handrecon.data.loaders.coco_wholebody", "COCOWholeBodyHands"),
    "onehand10k": ("handrecon.data.loaders.onehand10k", "OneHand10K"),
    "synthetic": ("handrecon.data.loaders.synthetic", "SyntheticDataset"),
}


def build_dataset(name: str, root: str | os.PathLike, split: str | None = None, **kw: Any):
    """Build the dataset `name` (one of REGISTRY) from `root`; `split` None uses its default."""
    key = name.lower().replace("-", "_")
    if key not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose from {sorted(REGISTRY)}")
    module, cls = REGISTRY[key]
    factory = getattr(importlib.import_module(module), cls)
    return factory(root, **kw) if split is None else factory(root, split, **kw)
