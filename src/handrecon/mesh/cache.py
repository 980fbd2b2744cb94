"""On-disk cache of derived mesh arrays (hierarchies, spirals), keyed by a hash of their inputs.

Files are `.npz` written atomically and read with `allow_pickle=False`. Each holds a JSON header
(format version, key, SHA-256 of the arrays); a file that cannot be read, has another version or
key, or fails its checksum is ignored and rebuilt, never trusted. The directory is
`$HANDRECON_CACHE` or `~/.cache/handrecon`, subfolder `mesh/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from handrecon.utils.io import atomic_write_arrays, cache_dir, read_arrays

CACHE_FORMAT = 1
_META = "__meta__"
log = logging.getLogger(__name__)


def hash_inputs(*parts) -> str:
    """SHA-256 hex digest of arrays (dtype, shape and bytes) and JSON-able values, in order."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, np.ndarray):
            a = np.ascontiguousarray(p)
            h.update(f"nd{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True).encode())
        h.update(b"|")
    return h.hexdigest()


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    return hash_inputs(*[x for name in sorted(arrays) for x in (name, arrays[name])])


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray], key: str) -> None:
    """Write `arrays` and a header (format, key, checksum) atomically to the `.npz` at `path`."""
    meta = {"format": CACHE_FORMAT, "key": key, "checksum": _checksum(arrays)}
    atomic_write_arrays(path, {**arrays, _META: np.array(json.dumps(meta))})


def load_arrays(path: str | os.PathLike, key: str) -> dict[str, np.ndarray] | None:
    """Arrays stored at `path` if the file is intact and was written for `key`, else None."""
    if not Path(path).is_file():
        return None
    try:
        arrays = read_arrays(path, "a mesh cache file", "", (_META,))
        meta = json.loads(str(arrays.pop(_META)))
    except ValueError as e:
        log.warning("ignoring unreadable mesh cache file %s (%s); rebuilding", path, e)
        return None
    if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        log.warning("ignoring stale mesh cache file %s; rebuilding", path)
        return None
    if meta.get("checksum") != _checksum(arrays):
        log.warning("ignoring corrupt mesh cache file %s (checksum mismatch); rebuilding", path)
        return None
    return arrays


def cached_arrays(kind: str, key: str, build: Callable[[], dict[str, np.ndarray]],
                  check: Callable[[dict[str, np.ndarray]], object] | None = None,
                  use_cache: bool = True) -> dict[str, np.ndarray]:
    """Load `<cache_dir>/mesh/<kind>-<key[:24]>.npz`, or `build()` and store it.

    `check(arrays)` should raise ValueError if loaded arrays are inconsistent; they are then rebuilt.
    A cache directory that cannot be written only costs the rebuild next time.
    """
    path = cache_dir() / "mesh" / f"{kind}-{key[:24]}.npz"
    if use_cache:
        arrays = load_arrays(path, key)
        if arrays is not None:
            try:
                if check is not None:
                    check(arrays)
                return arrays
            except (ValueError, KeyError, IndexError) as e:
                log.warning("ignoring inconsistent mesh cache file %s (%s); rebuilding", path, e)
    arrays = build()
    if use_cache:
        try:
            save_arrays(path, arrays, key)
        except OSError as e:
            log.warning("could not write mesh cache %s (%s)", path, e)
    return arrays
