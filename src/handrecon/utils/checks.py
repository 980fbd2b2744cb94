"""Checking the items of a batch: one bad item is an error that says which.

`check_each(items, check)` runs `check` on every item; a ValueError from it comes back as is for a
single item and as an `ItemError` (message "item {i}: ...", or another label, and `.index`) in a
batch of several, so callers far from the batch (the evaluation runner) can name the sample.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")


class ItemError(ValueError):
    """One input of a batch is invalid; `index` says which (the message starts "{label} {index}: ")."""

    def __init__(self, index: int, message: str, label: str = "item") -> None:
        super().__init__(f"{label} {index}: {message}")
        self.index = index


def check_each(items: Sequence[Any], check: Callable[[Any], T], label: str = "item") -> list[T]:
    """[check(item) for item in items]; a ValueError names the item's index unless it is the only one."""
    checked = []
    for i, item in enumerate(items):
        try:
            checked.append(check(item))
        except ValueError as e:
            if len(items) == 1:
                raise
            raise ItemError(i, str(e), label) from None
    return checked
