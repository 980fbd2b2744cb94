"""numpy or torch: the code shared by inference (numpy, without torch) and training (torch tensors)
takes either, and uses torch only when it is given tensors."""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any


def torch_of(*arrays: Any) -> ModuleType | None:
    """The torch module when any of `arrays` is a torch tensor, else None.

    A tensor exists only once torch is imported, so this never imports torch: numpy inputs take
    the numpy path, and an inference process that never touches torch never loads it."""
    torch = sys.modules.get("torch")
    if torch is not None and any(isinstance(a, torch.Tensor) for a in arrays):
        return torch
    return None
