"""Reader of handrecon's sharded synthetic format (written by `handrecon synth`, see
`handrecon.data.synthetic_format` and docs/data_format.md)."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from handrecon.data.schema import DatasetError, HandAnnotation, Sample
from handrecon.data.synthetic_format import list_complete_shards, read_meta, read_shard_records, read_shard_vertices, shard_name

SPLITS = ("all", "train", "val")


class SyntheticDataset:
    """Map-style dataset over the finished shards of a synthetic dataset folder.

    split: "all" every finished shard; "train"/"val" hold out the last `val_shards` finished
    shards as validation (deterministic). Unfinished shards (an interrupted run) are ignored.
    load_vertices: read vertices.npz. The vertices of the `cache_shards` most recently used shards
    stay in memory (about 9.3 kB per hand: 32 shards of 500 images ≈ 150 MB), so shuffled access
    reads each shard's file once per pass instead of once per sample.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "all",
        load_vertices: bool = True,
        val_shards: int = 1,
        expected_topology_hash: str | None = None,
        cache_shards: int = 32,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"synthetic split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.meta = read_meta(self.root)
        if expected_topology_hash is not None and self.meta.get("topology_hash") != expected_topology_hash:
            raise DatasetError(
                f"{self.root / 'meta.json'}: vertices use topology {self.meta.get('topology_hash')!r}, "
                f"but the active hand model has {expected_topology_hash!r}"
            )
        shards = list_complete_shards(self.root)
        if split != "all":
            if len(shards) <= val_shards:
                raise DatasetError(f"{self.root}: {len(shards)} finished shard(s), too few to hold out {val_shards} for validation")
            shards = shards[-val_shards:] if split == "val" else shards[:-val_shards]
        self.split = split
        self.load_vertices = load_vertices
        self.shards = shards
        self._records: list[list[dict]] = []
        index = []
        for s in shards:
            records = read_shard_records(self.root / shard_name(s))
            self._records.append(records)
            index += [(len(self._records) - 1, i) for i in range(len(records))]
        self._index = np.asarray(index, dtype=np.int64).reshape(-1, 2)
        self.cache_shards = max(int(cache_shards), 1)
        self._vertex_cache: OrderedDict[int, dict] = OrderedDict()

    def __len__(self) -> int:
        return len(self._index)

    def _vertices(self, k: int) -> dict:
        cache = self._vertex_cache
        if k in cache:
            cache.move_to_end(k)
        else:
            cache[k] = read_shard_vertices(self.root / shard_name(self.shards[k]))
            while len(cache) > self.cache_shards:
                cache.popitem(last=False)
        return cache[k]

    def __getitem__(self, idx: int) -> Sample:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} samples")
        k, i = self._index[idx]
        rec = self._records[k][i]
        shard_dir = self.root / shard_name(self.shards[k])
        verts = self._vertices(k) if self.load_vertices else {}
        hands = []
        for j, h in enumerate(rec["hands"]):
            try:
                hands.append(
                    HandAnnotation(
                        side=h["side"],
                        box=h["box"],
                        keypoints_2d=h["keypoints_2d"],
                        visibility=h["visibility"],
                        keypoints_valid=np.ones(21, bool),
                        keypoints_3d=h.get("keypoints_3d"),
                        vertices=verts.get((int(i), j)),
                        pose=h.get("pose"),
                        shape=h.get("shape"),
                        transl=h.get("transl"),
                        hand_model=self.meta.get("hand_model"),
                        meta=h.get("meta", {}),
                    )
                )
            except (KeyError, ValueError) as e:
                raise DatasetError(f"{shard_dir / 'annotations.json'}: image {rec.get('file')} hand {j}: {e}") from e
        return Sample(
            image_path=shard_dir / rec["file"],
            hands=hands,
            K=rec["K"],
            source="synthetic",
            sample_id=str(rec["id"]),
            meta={"shard": int(self.shards[k]), "height": rec["height"], "width": rec["width"], **rec.get("extra", {})},
        )
