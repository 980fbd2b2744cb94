"""Writer and low-level reader of handrecon's sharded synthetic dataset format (docs/data_format.md).

    OUT/meta.json                 format name, version, preset, seed, num, shard_size, hand model...
    OUT/shard_00000/000000.jpg    images (jpg or png), named by their index inside the shard
    OUT/shard_00000/annotations.json
    OUT/shard_00000/vertices.npz  all hands' vertices of the shard, float16, wrist-relative

A shard is written into a hidden temporary folder and renamed into place only when complete,
so a folder named `shard_XXXXX` is always a finished shard (`list_complete_shards`); an
interrupted run leaves at most a `.shard_XXXXX.tmp-*` folder that the next writer removes.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from handrecon.data.schema import DatasetError, HandAnnotation
from handrecon.utils.io import atomic_write_arrays, atomic_write_json, read_arrays

FORMAT_NAME = "handrecon-synthetic"
FORMAT_VERSION = 1
META_FILE = "meta.json"
ANNOTATIONS_FILE = "annotations.json"
VERTICES_FILE = "vertices.npz"
IMAGE_FORMATS = ("jpg", "png")
# meta.json keys that must match when a run resumes into an existing folder.
RESUME_KEYS = ("format", "version", "preset", "seed", "num", "shard_size", "hand_model", "topology_hash", "image_format")

_SHARD_RE = re.compile(r"^shard_(\d{5,})$")


def shard_name(index: int) -> str:
    return f"shard_{index:05d}"


def make_meta(
    preset: str,
    seed: int,
    num: int,
    shard_size: int,
    hand_model: str,
    topology_hash: str,
    image_format: str = "jpg",
    **extra: Any,
) -> dict[str, Any]:
    """The meta.json content of a synthetic dataset; `extra` holds free-form settings."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    if num < 0 or shard_size <= 0:
        raise ValueError(f"need num >= 0 and shard_size > 0, got num={num}, shard_size={shard_size}")
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "preset": preset,
        "seed": int(seed),
        "num": int(num),
        "shard_size": int(shard_size),
        "num_shards": -(-int(num) // int(shard_size)),
        "hand_model": hand_model,
        "topology_hash": topology_hash,
        "image_format": image_format,
        **extra,
    }


def read_meta(out_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check OUT/meta.json; DatasetError if missing, not ours, or a newer version."""
    path = Path(out_dir) / META_FILE
    if not path.is_file():
        raise DatasetError(f"{path}: not found; is {out_dir} a handrecon synthetic dataset (made by `handrecon synth`)?")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, nested too deeply
        raise DatasetError(f"{path}: invalid JSON ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise DatasetError(f"{path}: not a {FORMAT_NAME} meta file")
    if int(meta.get("version", -1)) > FORMAT_VERSION:
        raise DatasetError(f"{path}: format version {meta['version']} is newer than this handrecon reads ({FORMAT_VERSION}); upgrade handrecon")
    return meta


def init_output(out_dir: str | os.PathLike, meta: dict[str, Any]) -> dict[str, Any]:
    """Create OUT with meta.json, or check that an existing OUT was made with the same settings
    (so a resumed run continues the same dataset). Removes stale temporary shard folders."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / META_FILE).exists():
        old = read_meta(out)
        diff = [k for k in RESUME_KEYS if old.get(k) != meta.get(k)]
        if diff:
            changes = ", ".join(f"{k}: {old.get(k)!r} -> {meta.get(k)!r}" for k in diff)
            raise DatasetError(f"{out / META_FILE}: this folder holds a dataset made with other settings ({changes}); use a new --out folder")
    else:
        atomic_write_json(out / META_FILE, meta)
    for stale in out.glob(".shard_*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return meta


def list_complete_shards(out_dir: str | os.PathLike) -> list[int]:
    """Sorted indices of the finished shards in OUT (folders `shard_XXXXX` with annotations)."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    found = []
    for p in out.iterdir():
        m = _SHARD_RE.match(p.name)
        if m and p.is_dir() and (p / ANNOTATIONS_FILE).is_file():
            found.append(int(m.group(1)))
    return sorted(found)


def _hand_to_json(h: HandAnnotation) -> dict[str, Any]:
    def lst(a):
        return None if a is None else np.round(np.asarray(a, np.float64), 6).tolist()

    return {
        "side": h.side,
        "box": lst(h.box),
        "keypoints_2d": lst(h.keypoints_2d),
        "keypoints_3d": lst(h.keypoints_3d),
        "visibility": lst(h.visibility),
        "pose": lst(h.pose),
        "shape": lst(h.shape),
        "transl": lst(h.transl),
        **({"meta": h.meta} if h.meta else {}),
    }


class ShardWriter:
    """Writes one shard atomically. Use as a context manager:

        with ShardWriter(out_dir, 3, image_format="jpg") as w:
            for image, K, hands in items:
                w.add(image, K, hands)
        # on normal exit the shard is complete; on an exception nothing complete-looking remains

    Vertices of all hands go to one vertices.npz (allow_pickle=False): `vertices` (H, V, 3)
    float16 relative to `origin` (H, 3) float32 (the hand's wrist, or its vertex mean when no 3D
    keypoints), and `index` (H, 2) int32 = (image index in shard, hand index in image).
    Hands without vertices are not listed there.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        shard_index: int,
        image_format: str = "jpg",
        jpeg_quality: int = 92,
        vertex_dtype: str = "float16",
    ) -> None:
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
        self.out = Path(out_dir)
        self.index = int(shard_index)
        self.final = self.out / shard_name(self.index)
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.vertex_dtype = np.dtype(vertex_dtype)
        self._tmp: Path | None = None
        self._records: list[dict[str, Any]] = []
        self._verts: list[np.ndarray] = []
        self._origins: list[np.ndarray] = []
        self._vindex: list[tuple[int, int]] = []

    def __enter__(self) -> "ShardWriter":
        if self.final.exists():
            raise DatasetError(f"{self.final}: shard already exists; it is complete and is not rewritten")
        self.out.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.tmp-", dir=self.out))
        return self

    def add(
        self,
        image: np.ndarray,
        K: np.ndarray,
        hands: list[HandAnnotation],
        sample_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Write one image (RGB uint8 H×W×3) with K (3,3) and its hands; returns the file name."""
        from PIL import Image

        if self._tmp is None:
            raise RuntimeError("ShardWriter.add must be called inside its `with` block")
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
        i = len(self._records)
        name = f"{i:06d}.{self.image_format}"
        buf = io.BytesIO()
        if self.image_format == "jpg":
            Image.fromarray(image).save(buf, format="JPEG", quality=self.jpeg_quality)
        else:
            Image.fromarray(image).save(buf, format="PNG", compress_level=1)
        (self._tmp / name).write_bytes(buf.getvalue())
        for j, h in enumerate(hands):
            if h.vertices is not None:
                origin = h.keypoints_3d[0] if h.keypoints_3d is not None else h.vertices.mean(0)
                self._verts.append((h.vertices - origin).astype(self.vertex_dtype))
                self._origins.append(np.asarray(origin, np.float32))
                self._vindex.append((i, j))
        self._records.append(
            {
                "file": name,
                "id": sample_id if sample_id is not None else f"{self.index:05d}_{i:06d}",
                "height": int(image.shape[0]),
                "width": int(image.shape[1]),
                "K": np.asarray(K, np.float64).round(6).tolist(),
                "hands": [_hand_to_json(h) for h in hands],
                **({"extra": extra} if extra else {}),
            }
        )
        return name

    def _commit(self) -> None:
        assert self._tmp is not None
        if self._verts:
            shapes = {v.shape for v in self._verts}
            if len(shapes) != 1:
                raise ValueError(f"all hands of a shard must share one topology, got vertex shapes {sorted(shapes)}")
            arrays = {
                "vertices": np.stack(self._verts),
                "origin": np.stack(self._origins),
                "index": np.asarray(self._vindex, np.int32),
            }
        else:
            arrays = {
                "vertices": np.zeros((0, 0, 3), self.vertex_dtype),
                "origin": np.zeros((0, 3), np.float32),
                "index": np.zeros((0, 2), np.int32),
            }
        atomic_write_arrays(self._tmp / VERTICES_FILE, arrays)
        doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "shard": self.index, "images": self._records}
        atomic_write_json(self._tmp / ANNOTATIONS_FILE, doc, indent=None)
        os.rename(self._tmp, self.final)  # atomic: the shard appears complete or not at all
        self._tmp = None

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None


def read_shard_records(shard_dir: str | os.PathLike) -> list[dict]:
    """The image records of a finished shard's annotations.json (vertices: `read_shard_vertices`).
    Raises DatasetError naming the file on any problem."""
    shard_dir = Path(shard_dir)
    path = shard_dir / ANNOTATIONS_FILE
    if not path.is_file():
        raise DatasetError(f"{path}: not found; the shard is incomplete")
    try:
        doc = json.loads(path.read_text())
        records = doc["images"]
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        raise DatasetError(f"{path}: invalid annotations ({type(e).__name__}: {e})") from None
    if int(doc.get("version", -1)) > FORMAT_VERSION:
        raise DatasetError(f"{path}: format version {doc.get('version')} is newer than this handrecon reads; upgrade handrecon")
    return records


def read_shard_vertices(shard_dir: str | os.PathLike) -> dict[tuple[int, int], np.ndarray]:
    """The vertices of a finished shard: {(image, hand): (V,3) float32 metres, camera frame}.
    Reads only vertices.npz; raises DatasetError naming the file on any problem."""
    vpath = Path(shard_dir) / VERTICES_FILE
    try:
        z = read_arrays(vpath, "a readable vertex file", "the shard is incomplete", ("vertices", "origin", "index"))
    except ValueError as e:
        raise DatasetError(str(e)) from None
    rel, origin, index = z["vertices"], z["origin"], z["index"]
    if not (len(rel) == len(origin) == len(index)):
        raise DatasetError(f"{vpath}: vertices ({len(rel)}), origin ({len(origin)}) and index ({len(index)}) counts differ")
    absolute = rel.astype(np.float32) + origin[:, None, :].astype(np.float32)
    return {(int(i), int(j)): v for (i, j), v in zip(index, absolute)}
