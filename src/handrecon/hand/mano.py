"""MANO loader: the official `MANO_RIGHT.pkl` / `MANO_LEFT.pkl` -> `HandModelData`, without chumpy.

The official files are Python-2 pickles (protocol 2, latin1 strings) holding numpy arrays, one
scipy sparse matrix (`J_regressor`) and two chumpy classes (`chumpy.ch.Ch`, `chumpy.reordering.
Select`). They are read with a restricted unpickler that admits exactly those globals, mapping the
chumpy and scipy classes to small local stand-ins that only record their state. Any other global
(`os.system`, `builtins.eval`, `subprocess.Popen`, ...) is refused before anything is called.

MANO is licence-restricted: users supply the files; handrecon never ships or downloads them.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from handrecon.hand.keypoints import MANO21_TO_OP21
from handrecon.hand.model_data import HandModelData

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

LICENCE = "MANO (licence-restricted, user-supplied)"

# Fingertip vertex ids (thumb, index, middle, ring, little) per codebase convention.
TIP_VERTEX_IDS: dict[str, tuple[int, ...]] = {
    "freihand": (744, 320, 443, 555, 672),
    "smplx": (744, 320, 443, 554, 671),  # also HaMeR / WiLoR
    "manopth": (745, 317, 444, 556, 673),  # DexYCB ground truth
}

# MANO's 16 native joints: 0 wrist, 1-3 index, 4-6 middle, 7-9 little, 10-12 ring, 13-15 thumb.
MANO_JOINT_NAMES: tuple[str, ...] = ("wrist",) + tuple(
    f"{finger}{i}" for finger in ("index", "middle", "little", "ring", "thumb") for i in (1, 2, 3)
)
# Region label (0 palm, 1 thumb, 2 index, 3 middle, 4 ring, 5 little) of each native joint.
JOINT_REGION: tuple[int, ...] = (0, 2, 2, 2, 3, 3, 3, 5, 5, 5, 4, 4, 4, 1, 1, 1)

NUM_VERTICES, NUM_FACES, NUM_JOINTS = 778, 1538, 16
# Required fields and their shapes; -1 = any size >= 1 (the number of shape components).
_FIELD_SHAPES: dict[str, tuple[int, ...]] = {
    "v_template": (NUM_VERTICES, 3),
    "f": (NUM_FACES, 3),
    "J_regressor": (NUM_JOINTS, NUM_VERTICES),
    "weights": (NUM_VERTICES, NUM_JOINTS),
    "posedirs": (NUM_VERTICES, 3, 9 * (NUM_JOINTS - 1)),
    "shapedirs": (NUM_VERTICES, 3, -1),
    "kintree_table": (2, NUM_JOINTS),
    "hands_components": (3 * (NUM_JOINTS - 1), 3 * (NUM_JOINTS - 1)),
    "hands_mean": (3 * (NUM_JOINTS - 1),),
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced a global that a MANO file never holds; nothing was executed."""


class _StateOnly:
    """Base of the stand-ins: constructible without arguments, keeps the pickled state dict."""

    def __init__(self) -> None:
        self.state: dict = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{type(self).__name__}: expected a dict state, got {type(state).__name__}")
        self.state = state

    def _get(self, key: str) -> Any:
        if key not in self.state:
            raise pickle.UnpicklingError(f"{type(self).__name__} object lacks its '{key}' entry")
        return self.state[key]


class _Ch(_StateOnly):
    """Stand-in for `chumpy.ch.Ch`: its value is `state['x']`."""

    def value(self) -> np.ndarray:
        return to_numpy(self._get("x"))


class _Select(_StateOnly):
    """Stand-in for `chumpy.reordering.Select`: value = a.ravel()[idxs].reshape(preferred_shape)."""

    def value(self) -> np.ndarray:
        out = to_numpy(self._get("a")).ravel()[np.asarray(self._get("idxs")).ravel()]
        shape = self.state.get("preferred_shape")
        return out if shape is None else out.reshape(tuple(shape))


class _SparseMatrix(_StateOnly):
    """Stand-in for a pickled scipy compressed sparse matrix (state: data, indices, indptr, _shape)."""

    fmt: str  # "csc" or "csr"

    def value(self) -> np.ndarray:
        shape = tuple(self.state.get("_shape", self.state.get("shape", ())))
        arrays = (np.asarray(self._get(k)) for k in ("data", "indices", "indptr"))
        cls = sp.csc_matrix if self.fmt == "csc" else sp.csr_matrix
        return cls(tuple(arrays), shape=shape).toarray()


class _CscMatrix(_SparseMatrix):
    fmt = "csc"


class _CsrMatrix(_SparseMatrix):
    fmt = "csr"


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Stand-in for `_codecs.encode`, which protocol 0-2 pickles written by Python 3 use for bytes
    (numpy array payloads): only the latin-1 text-to-bytes form is accepted."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r}): only latin-1 text "
                                "(how pickle stores bytes) appears in a re-saved MANO file")
    return text.encode("latin1")


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    """Stand-in for `copyreg._reconstructor` (protocol 0/1 objects): makes a bare instance of one of
    the admitted stand-in classes and nothing else."""
    if base is not object or state is not None or not (isinstance(cls, type) and issubclass(cls, _StateOnly)):
        raise UnsafePickleError(f"refusing copyreg._reconstructor({cls!r}, {base!r}): not a MANO field class")
    return object.__new__(cls)


def _build_allowed() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("chumpy.ch", "Ch"): _Ch,
        ("chumpy.reordering", "Select"): _Select,
        ("__builtin__", "set"): set,  # chumpy's `_dirty_vars`
        ("builtins", "set"): set,
        # what a harmless re-save with protocol 0, 1 or 2 adds (Python 3 writes them under Python 2 names)
        ("_codecs", "encode"): _latin1_bytes,
        ("copy_reg", "_reconstructor"): _reconstructor,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("__builtin__", "object"): object,
        ("builtins", "object"): object,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _multiarray._reconstruct
        allowed[(mod, "scalar")] = _multiarray.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):  # protocol-5 re-saves
        allowed[(mod, "_frombuffer")] = _numeric._frombuffer
    for fmt, standin in (("csc", _CscMatrix), ("csr", _CsrMatrix)):
        for mod in (f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}"):
            for kind in ("matrix", "array"):
                allowed[(mod, f"{fmt}_{kind}")] = standin
    return allowed


_ALLOWED_GLOBALS = _build_allowed()


class _MANOUnpickler(pickle.Unpickler):
    """Admits only the globals an official MANO pickle holds (see module docstring)."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source}: refusing to load, the pickle references the global '{module}.{name}', "
                "which an official MANO file never contains (nothing was executed). "
                "Use the unmodified MANO_RIGHT.pkl / MANO_LEFT.pkl from https://mano.is.tue.mpg.de."
            ) from None


def to_numpy(value: Any) -> np.ndarray:
    """A loaded field (ndarray, chumpy stand-in, sparse stand-in, list) as a dense numpy array."""
    if isinstance(value, (_Ch, _Select, _SparseMatrix)):
        return value.value()
    return np.asarray(value)


def read_mano_pickle(path: str | Path) -> dict[str, Any]:
    """Read a MANO pickle safely; returns its top-level dict (chumpy/sparse values as stand-ins).

    Raises FileNotFoundError, UnsafePickleError (a disallowed global) or ValueError (not a pickle,
    truncated, not a dict).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"MANO model file not found: {path}. MANO is licence-restricted and not shipped with "
            "handrecon: register at https://mano.is.tue.mpg.de, download it and pass the path to "
            "MANO_RIGHT.pkl (or MANO_LEFT.pkl)."
        )
    with open(path, "rb") as fh:
        try:
            data = _MANOUnpickler(fh, str(path)).load()
        except UnsafePickleError:
            raise
        except Exception as e:  # truncated or garbage bytes surface as many exception types
            raise ValueError(
                f"{path}: not a readable MANO pickle ({type(e).__name__}: {e}). "
                "The file may be truncated or not a MANO model; download it again."
            ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a MANO pickle holding a dict, found {type(data).__name__}")
    return data


def load_mano_data(
    path: str | Path,
    side: str | None = None,
    tips: str = "freihand",
    right_path: str | Path | None = None,
) -> HandModelData:
    """Load an official MANO pickle as right-hand `HandModelData` (metres, float32).

    side: which hand the FILE holds ("right" for MANO_RIGHT.pkl, "left" for MANO_LEFT.pkl);
        None infers it from the file name. A side contradicting the file name is an error (to
        pose a left hand from MANO_RIGHT.pkl, load it as right and mirror in `HandModel`).
        `HandModelData` always describes the RIGHT hand (the left is derived by mirroring in
        `HandModel`), so a left file is converted into the right-hand frame by mirroring x:
        vertex x and the x rows of shapedirs/posedirs are negated, the pose-corrective inputs
        (R - I) and the pose PCA / mean (axis-angle (x, y, z) -> (x, -y, -z)) are mirrored, and
        faces are re-oriented so that normals point outwards. The official MANO_LEFT.pkl has a
        known defect: its shapedirs[:, 0, :] equal the right model's instead of their negation.
        When a right file is available (`right_path`, default MANO_RIGHT.pkl next to `path`),
        the defect is detected and fixed (REFERENCE §3); otherwise a warning is issued.
    tips: fingertip vertex convention, one of TIP_VERTEX_IDS ("freihand", "smplx", "manopth").

    Fields: v_template, faces (f), weights, J_regressor (sparse -> dense), shapedirs, posedirs,
    parents (kintree_table), pose_pca (hands_components), pose_mean ((16,3), hands_mean with a
    zero global row); OP21 keypoints = MANO joints + tip vertices; regions from the dominant
    skinning weight.
    """
    if tips not in TIP_VERTEX_IDS:
        raise ValueError(f"tips must be one of {sorted(TIP_VERTEX_IDS)}, got {tips!r}")
    path = Path(path)
    fields = _checked_fields(read_mano_pickle(path), path)
    side = _file_side(path, side)
    meta: dict[str, Any] = {"source": str(path), "licence": LICENCE, "side_file": side, "tips": tips}
    if side == "left":
        fields, meta["left_conversion"] = _left_to_right(fields, path, right_path)

    parents = fields["kintree_table"][0].astype(np.int64)
    parents[0] = -1  # stored as uint32 max
    tip_ids = np.asarray(TIP_VERTEX_IDS[tips], dtype=np.int64)
    J_regressor = fields["J_regressor"].astype(np.float32)
    weights = fields["weights"].astype(np.float32)

    mano21 = np.asarray(MANO21_TO_OP21)  # for each OP21 keypoint, its MANO21 index
    keypoint_joints = np.where(mano21 < NUM_JOINTS, mano21, -1).astype(np.int64)
    tip_rows = np.zeros((5, NUM_VERTICES), np.float32)
    tip_rows[np.arange(5), tip_ids] = 1.0
    kp_regressor = np.concatenate([J_regressor, tip_rows])[mano21]

    pose_mean = np.zeros((NUM_JOINTS, 3), np.float32)
    pose_mean[1:] = fields["hands_mean"].reshape(NUM_JOINTS - 1, 3)

    return HandModelData(
        name="mano",
        v_template=fields["v_template"].astype(np.float32),
        faces=fields["f"].astype(np.int64),
        weights=weights,
        parents=parents,
        joint_names=list(MANO_JOINT_NAMES),
        J_regressor=J_regressor,
        shapedirs=fields["shapedirs"].astype(np.float32),
        posedirs=fields["posedirs"].astype(np.float32),
        keypoint_joints=keypoint_joints,
        tip_vertex_ids=tip_ids,
        kp_regressor=kp_regressor,
        regions=np.asarray(JOINT_REGION, np.int8)[weights.argmax(1)],
        pose_mean=pose_mean,
        pose_pca=fields["hands_components"].astype(np.float32),
        meta=meta,
    ).validate()


def _file_side(path: Path, side: str | None) -> str:
    """The hand a MANO file holds: `side` if given, else from its name; checks they agree."""
    if side not in (None, "right", "left"):
        raise ValueError(f"side must be 'right', 'left' or None (infer from the file name), got {side!r}")
    named = [s for s in ("right", "left") if s in path.name.lower()]
    if side is None:
        if len(named) != 1:
            raise ValueError(
                f"{path}: cannot tell from the file name whether it holds the right or the left MANO hand; "
                "pass side='right' (MANO_RIGHT.pkl) or side='left' (MANO_LEFT.pkl)."
            )
        return named[0]
    if len(named) == 1 and named[0] != side:
        raise ValueError(
            f"{path}: side={side!r} but the file name says it holds the {named[0]} hand. `side` is the hand "
            f"the file holds; load it with side={named[0]!r} (HandModel mirrors it for the other side)."
        )
    return side


def _checked_fields(raw: dict[str, Any], path: Path) -> dict[str, np.ndarray]:
    """Convert the required fields to dense arrays and check their shapes and values."""
    missing = [k for k in _FIELD_SHAPES if k not in raw]
    if missing:
        raise ValueError(f"{path}: not a MANO model, missing field(s) {missing} (found {sorted(raw)})")
    out = {}
    for key, expected in _FIELD_SHAPES.items():
        try:
            arr = to_numpy(raw[key])
        except Exception as e:
            raise ValueError(f"{path}: MANO field '{key}' could not be converted to an array ({e})") from None
        ok = arr.ndim == len(expected) and all(e in (-1, s) for e, s in zip(expected, arr.shape))
        if not ok or arr.size == 0:
            want = tuple("S" if e == -1 else e for e in expected)
            raise ValueError(f"{path}: MANO field '{key}' has shape {arr.shape}, expected {want}")
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{path}: MANO field '{key}' is not numeric (dtype {arr.dtype})")
        if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            raise ValueError(f"{path}: MANO field '{key}' contains NaN or infinite values")
        out[key] = arr
    if out["f"].min() < 0 or out["f"].max() >= NUM_VERTICES:
        raise ValueError(f"{path}: MANO field 'f' indexes vertices outside [0, {NUM_VERTICES})")
    return out


def _left_to_right(
    fields: dict[str, np.ndarray], path: Path, right_path: str | Path | None
) -> tuple[dict[str, np.ndarray], str]:
    """Mirror a left MANO model (x -> -x) into the right-hand frame; returns (fields, note)."""
    out = dict(fields)
    m = np.array([-1.0, 1.0, 1.0])
    shapedirs = fields["shapedirs"].astype(np.float64)

    right_path = Path(right_path) if right_path is not None else path.with_name(path.name.replace("LEFT", "RIGHT"))
    if right_path != path and right_path.is_file():
        right_x = to_numpy(read_mano_pickle(right_path)["shapedirs"])[:, 0, :]
        if right_x.shape == shapedirs[:, 0, :].shape and np.abs(
            shapedirs[:, 0, :] - right_x
        ).sum() < 0.01 * np.abs(right_x).sum():
            shapedirs[:, 0, :] *= -1  # the known MANO_LEFT defect (REFERENCE §3)
            note = f"mirrored to the right frame; shapedirs x defect fixed using {right_path}"
        else:
            note = f"mirrored to the right frame; shapedirs checked against {right_path}, no defect"
    else:
        warnings.warn(
            f"{path}: no MANO_RIGHT.pkl found next to it (or given as right_path), so the known "
            "MANO_LEFT shapedirs defect cannot be checked; shape blend shapes may be wrong in x.",
            stacklevel=3,
        )
        note = "mirrored to the right frame; shapedirs defect not checked (no right file)"

    out["v_template"] = fields["v_template"] * m
    out["shapedirs"] = shapedirs * m[None, :, None]
    # posedirs are driven by (R - I) of 15 joints; mirroring maps R -> M R M, entry (a,b) -> m_a m_b.
    pose_sign = np.tile(np.outer(m, m).ravel(), NUM_JOINTS - 1)
    out["posedirs"] = fields["posedirs"] * m[None, :, None] * pose_sign[None, None, :]
    # Axis-angle of M R M is (x, -y, -z) for axis-angle (x, y, z).
    aa_sign = np.tile(-m, NUM_JOINTS - 1)
    out["hands_mean"] = fields["hands_mean"] * aa_sign
    out["hands_components"] = fields["hands_components"] * aa_sign[None, :]
    if _signed_volume(out["v_template"], fields["f"]) < 0:
        out["f"] = fields["f"][:, [0, 2, 1]]
    return out, note


def _signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume enclosed by a (nearly closed) mesh; positive when normals point outwards."""
    tri = verts[faces] - verts.mean(0)
    return float(np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)
