"""Helpers shared by the dataset loaders: checked file reading, warn-once logging, safe pickles,
the OpenGL→OpenCV flip, projection and the optional MANO layer."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from handrecon.data.schema import DatasetError
from handrecon.geometry.camera import project as _project

log = logging.getLogger("handrecon.data")
_warned: set[str] = set()

# OpenGL camera (x right, y up, z backwards) -> OpenCV camera (x right, y down, z forwards).
GL_TO_CV = np.array([1.0, -1.0, -1.0], dtype=np.float32)


def warn_once(key: str, message: str) -> None:
    """Log `message` as a warning the first time `key` is seen in this process."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def require_file(path: str | os.PathLike, what: str = "file") -> Path:
    """Return `path` if it is a file, else raise DatasetError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: {what} not found")
    return path


def require_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"{path}: {what} not found")
    return path


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a missing file or bad JSON raises DatasetError naming the file."""
    path = require_file(path, "JSON file")
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise DatasetError(f"{path}: invalid JSON ({type(e).__name__}: {e})") from None


def read_yaml(path: str | os.PathLike) -> Any:
    import yaml

    path = require_file(path, "YAML file")
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise DatasetError(f"{path}: invalid YAML ({e})") from e


def read_json_array(path: Path, n: int | None, inner_shape: tuple[int, ...]) -> np.ndarray:
    """Read a JSON list of equally shaped entries into a float32 (n, *inner_shape) array.

    Raises DatasetError naming the file if the count differs from `n` (when given) or an entry
    has the wrong shape."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list, got {type(data).__name__}")
    if n is not None and len(data) != n:
        raise DatasetError(f"{path}: has {len(data)} entries but {n} were expected (the dataset files are inconsistent)")
    try:
        arr = np.asarray(data, dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise DatasetError(f"{path}: entries are not numeric arrays of equal shape ({e})") from e
    if arr.shape[1:] != inner_shape and not (len(data) == 0):
        raise DatasetError(f"{path}: each entry must have shape {inner_shape}, got {arr.shape[1:]}")
    return arr.reshape(len(data), *inner_shape)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The globals numpy array/scalar/dtype pickles reference, under old and new module paths."""
    import codecs

    found = {
        "_reconstruct": np.ndarray(0).__reduce__()[0],
        "scalar": np.float64(0).__reduce__()[0],
        "_frombuffer": np.arange(2).__reduce_ex__(5)[0],
    }
    table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = found["_reconstruct"]
        table[(f"{core}.multiarray", "scalar")] = found["scalar"]
        table[(f"{core}.numeric", "_frombuffer")] = found["_frombuffer"]
    table[("_codecs", "encode")] = codecs.encode  # protocol-2 pickles of bytes
    table[("collections", "OrderedDict")] = __import__("collections").OrderedDict
    return table


class RefusedPickleError(pickle.UnpicklingError):
    """A pickle referenced a global outside the numpy/builtins allow-list; nothing was executed."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that admits numpy arrays/scalars/dtypes and plain builtins, nothing else."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        obj = self._allowed.get((module, name))
        if obj is None:
            raise RefusedPickleError(f"refusing to load {module}.{name}: only numpy arrays and builtins are allowed")
        return obj


def load_numpy_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle holding only dicts/lists/numbers/strings/numpy arrays (latin1, so Python 2
    pickles work). Anything else — arbitrary classes, functions — is refused with DatasetError."""
    path = require_file(path, "pickle file")
    data = path.read_bytes()
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except RefusedPickleError as e:
        raise DatasetError(f"{path}: {e}") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise DatasetError(f"{path}: corrupt pickle ({e})") from e


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(..., N, 3) camera-frame points -> (..., N, 2) pixels with K (3, 3); float32."""
    return np.asarray(_project(np.asarray(points, np.float32), np.asarray(K, np.float32)), dtype=np.float32)


def as_float_array(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Coerce `value` to float32 of `shape`, raising DatasetError naming `where` otherwise."""
    try:
        a = np.asarray(value, dtype=np.float32)
        return a.reshape(shape)
    except (ValueError, TypeError) as e:
        raise DatasetError(f"{where}: expected numbers of shape {shape}, got {np.shape(value)} ({e})") from e
