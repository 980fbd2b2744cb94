"""File I/O helpers shared by every writer: atomic writes, so nothing half-written is left behind;
and the reading of handrecon's own `.npz` files without pickle."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

import numpy as np


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", durable: bool = True) -> Iterator[IO]:
    """Open a temporary file next to `path`; rename it onto `path` only if the block succeeds.

    The parent directory is created if needed. The file gets the usual permissions (0666 minus
    the umask; mkstemp's private 0600 is not kept). On error the temporary file is removed and
    `path` is left untouched. `durable`: the data is flushed to the disk (fsync) before the
    rename, so even a power cut leaves the old file or the whole new one; without it a crashed or
    killed process still never leaves a partial file, but a power cut may (for the per-image
    outputs of a folder run, where one fsync per file costs 0.3 ms of CPU and 0.5 ms of waiting).
    """
    if "w" not in mode:
        raise ValueError(f"atomic_open writes only, got mode {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    """The process's umask. Read from /proc where Linux has it: elsewhere reading it means setting
    it, and another thread creating a file in between would get the wrong permissions."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cache_dir() -> Path:
    """handrecon's on-disk cache (derived mesh arrays, exported detectors): `$HANDRECON_CACHE`,
    else `~/.cache/handrecon`."""
    return Path(os.environ.get("HANDRECON_CACHE") or Path.home() / ".cache" / "handrecon")


def make_output_folder(path: str | os.PathLike) -> Path:
    """Create the output folder `path` (and its parents) if missing; ValueError saying what to do
    when it is a file or cannot be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"the output folder {path} is a file; give a folder (new or existing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"cannot create the output folder {path}: {e.strerror or e} (is a parent path a file, "
                         "or not writable?)") from None
    return path


def check_output_file(path: str | os.PathLike, suffixes: tuple[str, ...], what: str = "file") -> Path:
    """Check an output file's path before any work: its name ends in one of `suffixes` (".png", ...;
    any case), it is not a folder, and its folder exists or is created (`make_output_folder`).
    ValueError saying what to give instead."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the path of the {what} to write, e.g. {path / ('out' + suffixes[0])}")
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{path}: give the {what} a name ending in {' or '.join(suffixes)}, "
                         f"e.g. {path.with_suffix(suffixes[0])}")
    make_output_folder(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` atomically (`atomic_open`)."""
    with atomic_open(path, "wb", durable) as f:
        f.write(data)


def atomic_write_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` as one uncompressed `.npz` at `path` atomically (`atomic_open`); `read_arrays`
    reads it back."""
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def read_arrays(path: str | os.PathLike, what: str, how: str, names: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """Every array of the `.npz` at `path`, read without pickle. ValueError naming the file where it is
    missing ("PATH: not found; HOW", `how` saying what writes it), not a readable `.npz` or lacks one of
    `names` ("PATH: not WHAT (why)", `what` saying which file it should be)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: not found; {how}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not {what} ({e})") from None
    missing = [k for k in names if k not in arrays]
    if missing:
        raise ValueError(f"{path}: not {what} (no {', '.join(missing)} array)")
    return arrays


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    """Serialise `obj` as strict JSON to `path` atomically (NaN/inf are a ValueError, nothing written)."""
    text = json.dumps(obj, indent=indent, allow_nan=False)
    with atomic_open(path, "w") as f:
        f.write(text)
        f.write("\n")
