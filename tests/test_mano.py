"""MANO loader on fake MANO-structured pickles written here (no MANO file is ever needed)."""

from __future__ import annotations

import io
import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp

from handrecon.hand.keypoints import MANO21_TO_OP21, OP21_TIPS
from handrecon.hand.mano import (
    JOINT_REGION,
    LICENCE,
    TIP_VERTEX_IDS,
    UnsafePickleError,
    load_mano_data,
    read_mano_pickle,
)

V, F, J, S = 778, 1538, 16, 10
MIRROR = np.array([-1.0, 1.0, 1.0])
AA_SIGN = np.tile(-MIRROR, J - 1)  # axis-angle (x, y, z) -> (x, -y, -z) under x-mirroring
POSE_SIGN = np.tile(np.outer(MIRROR, MIRROR).ravel(), J - 1)  # (R - I) entries under x-mirroring


# --- fake chumpy / old scipy classes, pickled under their real module paths --------------------


class Ch:
    __module__ = "chumpy.ch"

    def __init__(self, x):
        self.x = np.asarray(x)
        self._dirty_vars = {"x"}
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False


class Select:
    __module__ = "chumpy.reordering"

    def __init__(self, a, idxs, preferred_shape):
        self.a, self.idxs, self.preferred_shape = a, idxs, preferred_shape
        self._dirty_vars = {"a", "idxs", "preferred_shape"}
        self._itr = None
        self._depends_on_deps = {}


class csc_matrix:  # scipy's pre-1.8 layout: a plain object whose __dict__ is the state
    __module__ = "scipy.sparse.csc"

    def __init__(self, dense):
        m = sp.csc_matrix(dense)
        self._shape, self.maxprint = m.shape, 50
        self.data, self.indices, self.indptr = m.data, m.indices, m.indptr


@pytest.fixture
def fake_modules(monkeypatch):
    """Register chumpy.ch.Ch, chumpy.reordering.Select, scipy.sparse.csc.csc_matrix for pickling."""
    for cls in (Ch, Select, csc_matrix):
        mod = types.ModuleType(cls.__module__)
        setattr(mod, cls.__name__, cls)
        monkeypatch.setitem(sys.modules, cls.__module__, mod)
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))


class Py2StylePickler(pickle.Pickler):
    """Protocol 2 with numpy arrays stored like Python 2 wrote them (latin1 str payload)."""

    def reducer_override(self, obj):
        if type(obj) is np.ndarray:
            from numpy._core.multiarray import _reconstruct

            a = np.ascontiguousarray(obj)
            return _reconstruct, (np.ndarray, (0,), "b"), (1, a.shape, a.dtype, False, a.tobytes().decode("latin1"))
        return NotImplemented


def dump_py2(obj, old_numpy_path: bool = True) -> bytes:
    buf = io.BytesIO()
    Py2StylePickler(buf, protocol=2).dump(obj)
    data = buf.getvalue()
    if old_numpy_path:  # what numpy 1.x / Python 2 wrote
        data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    return data


def signed_volume(verts, faces):
    tri = verts[faces] - verts.mean(0)
    return np.einsum("fi,fi->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6


def make_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays with the real MANO shapes and plausible magnitudes."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(V, 3)) * [0.04, 0.02, 0.01] + [0.09, 0.0, 0.0]
    faces = rng.choice(V, size=(F, 3), replace=True)
    if signed_volume(v, faces) < 0:
        faces = faces[:, [0, 2, 1]]
    dominant = rng.integers(0, J, size=V)
    weights = rng.random((V, J)) * 0.1
    weights[np.arange(V), dominant] += 1.0
    weights /= weights.sum(1, keepdims=True)
    J_reg = np.where(rng.random((J, V)) < 0.02, rng.random((J, V)), 0.0)
    J_reg /= J_reg.sum(1, keepdims=True)
    kintree = np.array([[4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], np.arange(J)], np.int64)
    return dict(
        v_template=v,
        f=faces.astype(np.uint32),
        weights=weights,
        J_regressor=J_reg,
        posedirs=rng.normal(size=(V, 3, 9 * (J - 1))) * 1e-3,
        shapedirs=rng.normal(size=(V, 3, S)) * 5e-3,
        kintree_table=kintree,
        hands_components=rng.normal(size=(45, 45)),
        hands_mean=rng.normal(size=45) * 0.2,
        J=J_reg @ v,
        dominant=dominant,
    )


def mano_dict(arr: dict[str, np.ndarray], seed: int = 1) -> dict:
    """The MANO pickle layout: chumpy Ch values, shapedirs as a chumpy Select, a csc regressor."""
    perm = np.random.default_rng(seed).permutation(V * 3 * S)
    flat = np.empty(V * 3 * S)
    flat[perm] = arr["shapedirs"].ravel()  # so that flat[perm] == shapedirs.ravel()
    return {
        "v_template": Ch(arr["v_template"]),
        "f": arr["f"],
        "weights": Ch(arr["weights"]),
        "J_regressor": csc_matrix(arr["J_regressor"]),
        "posedirs": Ch(arr["posedirs"]),
        "shapedirs": Select(Ch(flat), perm, (V, 3, S)),
        "kintree_table": arr["kintree_table"],
        "hands_components": arr["hands_components"],
        "hands_mean": arr["hands_mean"],
        "hands_coeffs": np.zeros((4, 45)),
        "J": arr["J"],
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def mirror_left(arr: dict[str, np.ndarray], shapedirs_defect: bool) -> dict[str, np.ndarray]:
    """An official-style left model from a right one: mirror x, keep the same faces list."""
    left = dict(arr)
    left["v_template"] = arr["v_template"] * MIRROR
    left["shapedirs"] = arr["shapedirs"] * (np.ones(3) if shapedirs_defect else MIRROR)[None, :, None]
    left["posedirs"] = arr["posedirs"] * MIRROR[None, :, None] * POSE_SIGN
    left["hands_mean"] = arr["hands_mean"] * AA_SIGN
    left["hands_components"] = arr["hands_components"] * AA_SIGN
    return left


@pytest.fixture
def mano_dir(tmp_path, fake_modules):
    arr = make_arrays()
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(dump_py2(mano_dict(arr)))
    return tmp_path, arr


def test_every_field_loads(mano_dir):
    d, arr = mano_dir
    raw = read_mano_pickle(d / "MANO_RIGHT.pkl")
    assert raw["bs_style"] == "lbs" and raw["bs_type"] == "lrotmin"
    np.testing.assert_array_equal(raw["J"], arr["J"])
    np.testing.assert_array_equal(raw["hands_coeffs"], np.zeros((4, 45)))

    m = load_mano_data(d / "MANO_RIGHT.pkl")
    assert m.name == "mano" and m.num_vertices == V and m.num_joints == J and m.num_shape == S
    np.testing.assert_allclose(m.v_template, arr["v_template"], rtol=1e-6)
    np.testing.assert_array_equal(m.faces, arr["f"])
    assert m.faces.dtype == np.int64 and m.v_template.dtype == np.float32
    np.testing.assert_allclose(m.weights, arr["weights"], rtol=1e-6)
    np.testing.assert_allclose(m.J_regressor, arr["J_regressor"], rtol=1e-6)
    np.testing.assert_allclose(m.posedirs, arr["posedirs"], rtol=1e-6)
    np.testing.assert_allclose(m.shapedirs, arr["shapedirs"], rtol=1e-6)
    np.testing.assert_array_equal(m.parents, [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14])
    np.testing.assert_allclose(m.pose_pca, arr["hands_components"], rtol=1e-6)
    np.testing.assert_array_equal(m.pose_mean[0], 0)
    np.testing.assert_allclose(m.pose_mean[1:].ravel(), arr["hands_mean"], rtol=1e-6)
    np.testing.assert_array_equal(m.tip_vertex_ids, TIP_VERTEX_IDS["freihand"])
    np.testing.assert_array_equal(m.regions, np.asarray(JOINT_REGION)[arr["dominant"]])
    assert m.meta["licence"] == LICENCE and m.meta["source"] == str(d / "MANO_RIGHT.pkl")
    assert m.joint_names[0] == "wrist" and m.joint_names[13] == "thumb1" and len(set(m.joint_names)) == J

    # OP21 keypoints: MANO joints reordered, tips one-hot on the tip vertices.
    assert [m.keypoint_joints[k] for k in OP21_TIPS] == [-1] * 5
    assert list(m.keypoint_joints[[0, 1, 5, 9, 13, 17]]) == [0, 13, 1, 4, 10, 7]
    for k in range(21):
        j = MANO21_TO_OP21[k]
        want = arr["J_regressor"][j] if j < J else np.eye(V)[TIP_VERTEX_IDS["freihand"][j - J]]
        np.testing.assert_allclose(m.kp_regressor[k], want, rtol=1e-6)


@pytest.mark.parametrize("tips", sorted(TIP_VERTEX_IDS))
def test_tip_conventions(mano_dir, tips):
    d, _ = mano_dir
    m = load_mano_data(d / "MANO_RIGHT.pkl", tips=tips)
    np.testing.assert_array_equal(m.tip_vertex_ids, TIP_VERTEX_IDS[tips])
    np.testing.assert_array_equal(m.kp_regressor[list(OP21_TIPS)].argmax(1), TIP_VERTEX_IDS[tips])


def test_new_numpy_and_scipy_module_paths(tmp_path):
    """Files re-saved with numpy 2 (numpy._core) and current scipy (scipy.sparse._csc) also load."""
    arr = make_arrays(3)
    raw = {k: arr[k] for k in ("v_template", "f", "weights", "posedirs", "shapedirs", "kintree_table")}
    raw.update(J_regressor=sp.csc_matrix(arr["J_regressor"]), hands_components=arr["hands_components"],
               hands_mean=arr["hands_mean"])
    data = dump_py2(raw, old_numpy_path=False)
    assert b"numpy._core.multiarray" in data and b"scipy.sparse._csc" in data
    (tmp_path / "m.pkl").write_bytes(data)
    m = load_mano_data(tmp_path / "m.pkl", side="right")
    np.testing.assert_allclose(m.J_regressor, arr["J_regressor"], rtol=1e-6)
    np.testing.assert_allclose(m.shapedirs, arr["shapedirs"], rtol=1e-6)


@pytest.mark.parametrize("defect", [True, False])
def test_left_file_maps_to_right_hand(mano_dir, defect):
    d, arr = mano_dir
    (d / "MANO_LEFT.pkl").write_bytes(dump_py2(mano_dict(mirror_left(arr, shapedirs_defect=defect))))
    right = load_mano_data(d / "MANO_RIGHT.pkl")
    left = load_mano_data(d / "MANO_LEFT.pkl", side="left")
    assert ("defect fixed" in left.meta["left_conversion"]) == defect
    for key in ("v_template", "shapedirs", "posedirs", "pose_pca", "pose_mean", "weights", "J_regressor"):
        np.testing.assert_allclose(getattr(left, key), getattr(right, key), atol=1e-7, err_msg=key)
    np.testing.assert_array_equal(left.faces, right.faces)  # same faces list, re-oriented after mirroring
    np.testing.assert_array_equal(left.regions, right.regions)


def test_left_mirroring_of_pose_correctives_is_physical():
    """Independent check of the mirror rule: a mirrored pose on the mirrored model gives mirrored offsets."""
    import torch

    from handrecon.geometry.rotations import axis_angle_to_matrix

    arr = make_arrays(5)
    left = mirror_left(arr, shapedirs_defect=False)
    aa = torch.randn(J - 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    feats = lambda a: (axis_angle_to_matrix(a) - torch.eye(3, dtype=a.dtype)).reshape(-1).numpy()  # noqa: E731
    d_right = arr["posedirs"] @ feats(aa)
    d_left = left["posedirs"] @ feats(aa * torch.from_numpy(-MIRROR))
    np.testing.assert_allclose(d_left, d_right * MIRROR, atol=1e-12)


def test_left_without_right_file_warns(tmp_path, fake_modules):
    arr = make_arrays()
    (tmp_path / "MANO_LEFT.pkl").write_bytes(dump_py2(mano_dict(mirror_left(arr, shapedirs_defect=False))))
    with pytest.warns(UserWarning, match="cannot be checked"):
        left = load_mano_data(tmp_path / "MANO_LEFT.pkl", side="left")
    np.testing.assert_allclose(left.shapedirs, arr["shapedirs"], atol=1e-7)


class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Eval(_System):
    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


class _Popen(_System):
    def __reduce__(self):
        import subprocess

        return subprocess.Popen, (["touch", str(self.marker)],)


@pytest.mark.parametrize(
    "payload, global_name",  # Python's protocol-2 writer renames builtins/subprocess as Python 2 did
    [(_System, "posix.system"), (_Eval, "__builtin__.eval"), (_Popen, "commands.Popen")],
)
def test_code_running_pickle_is_refused(mano_dir, payload, global_name):
    d, arr = mano_dir
    marker = d / "pwned"
    raw = mano_dict(arr)
    raw["bs_style"] = payload(marker)  # hidden inside an otherwise valid MANO dict
    path = d / "evil.pkl"
    path.write_bytes(dump_py2(raw))
    with pytest.raises(UnsafePickleError, match=global_name) as e:
        load_mano_data(path)
    assert str(path) in str(e.value) and "nothing was executed" in str(e.value)
    assert not marker.exists()
    # Sanity: an unrestricted pickle.load of the same bytes would run the payload.
    if payload is _System:
        pickle.loads(path.read_bytes(), encoding="latin1")
        assert marker.exists()


def test_missing_garbage_truncated_files(mano_dir):
    d, _ = mano_dir
    with pytest.raises(FileNotFoundError, match="mano.is.tue.mpg.de"):
        load_mano_data(d / "nope.pkl")
    (d / "garbage.pkl").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises((ValueError, UnsafePickleError), match="garbage.pkl"):
        load_mano_data(d / "garbage.pkl")
    full = (d / "MANO_RIGHT.pkl").read_bytes()
    (d / "cut.pkl").write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_mano_data(d / "cut.pkl")
    (d / "list.pkl").write_bytes(pickle.dumps([1, 2], protocol=2))
    with pytest.raises(ValueError, match="holding a dict"):
        load_mano_data(d / "list.pkl")


def test_missing_field_and_wrong_shape(mano_dir):
    d, arr = mano_dir
    raw = mano_dict(arr)
    del raw["weights"]
    (d / "a.pkl").write_bytes(dump_py2(raw))
    with pytest.raises(ValueError, match=r"missing field\(s\) \['weights'\]"):
        load_mano_data(d / "a.pkl")
    raw = mano_dict(arr)
    raw["v_template"] = Ch(arr["v_template"][:777])
    (d / "b.pkl").write_bytes(dump_py2(raw))
    with pytest.raises(ValueError, match=r"'v_template' has shape \(777, 3\), expected \(778, 3\)"):
        load_mano_data(d / "b.pkl")
    raw = mano_dict(arr)
    raw["hands_mean"] = np.full(45, np.nan)
    (d / "c.pkl").write_bytes(dump_py2(raw))
    with pytest.raises(ValueError, match="'hands_mean' contains NaN"):
        load_mano_data(d / "c.pkl")
    with pytest.raises(ValueError, match="tips must be one of"):
        load_mano_data(d / "MANO_RIGHT.pkl", tips="openpose")


def test_side_from_file_name(mano_dir):
    d, _ = mano_dir
    (d / "my_model.pkl").write_bytes((d / "MANO_RIGHT.pkl").read_bytes())
    with pytest.raises(ValueError, match="pass side='right'"):
        load_mano_data(d / "my_model.pkl")
    assert load_mano_data(d / "my_model.pkl", side="right").meta["side_file"] == "right"
    with pytest.raises(ValueError, match="file name says it holds the right hand"):
        load_mano_data(d / "MANO_RIGHT.pkl", side="left")


def test_hand_model_from_fake_mano(mano_dir):
    import torch

    from handrecon.hand.model import HandModel

    d, arr = mano_dir
    (d / "MANO_LEFT.pkl").write_bytes(dump_py2(mano_dict(mirror_left(arr, shapedirs_defect=True))))
    for side in ("right", "left"):
        model = HandModel.from_mano(d / f"MANO_{side.upper()}.pkl", side, tips="smplx")
        assert (model.num_vertices, model.num_joints, model.num_shape) == (V, J, S)
        flat = -model.pose_mean.expand(2, J, 3)  # cancels hands_mean: the rest pose
        out = model(flat, torch.zeros(2, S))
        assert out.vertices.shape == (2, V, 3) and out.joints.shape == (2, 21, 3)
        mirror = MIRROR if side == "left" else np.ones(3)
        np.testing.assert_allclose(out.vertices[1].numpy(), arr["v_template"] * mirror, atol=1e-6)
        np.testing.assert_allclose(out.joints[0, list(OP21_TIPS)].numpy(),
                                   arr["v_template"][list(TIP_VERTEX_IDS["smplx"])] * mirror, atol=1e-6)


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_a_harmless_re_save_with_any_protocol_loads(tmp_path, fake_modules, protocol):
    """Loading the official file (with chumpy) and saving it again with pickle protocol 0-2 adds
    `_codecs.encode` (bytes), `copy_reg._reconstructor` and `object`: it used to be refused as unsafe."""
    arr = make_arrays()
    (tmp_path / "MANO_RIGHT.pkl").write_bytes(pickle.dumps(mano_dict(arr), protocol=protocol))
    m = load_mano_data(tmp_path / "MANO_RIGHT.pkl")
    np.testing.assert_allclose(m.v_template, arr["v_template"], rtol=1e-6)
    np.testing.assert_allclose(m.shapedirs, arr["shapedirs"], rtol=1e-6)


def test_the_re_save_stand_ins_admit_nothing_else(tmp_path):
    """`_codecs.encode` only as latin-1 text -> bytes; `copy_reg._reconstructor` only for the MANO
    field stand-ins (a reconstructor of any other class, e.g. a subprocess type, is refused)."""
    evil = (b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x06\x00\x00\x00rot_13q\x02\x86q\x03Rq\x04.")
    (tmp_path / "codec.pkl").write_bytes(evil)
    with pytest.raises(UnsafePickleError, match="only latin-1"):
        read_mano_pickle(tmp_path / "codec.pkl")
    # copy_reg._reconstructor(numpy.dtype, object, None): an admitted global, but not a field class
    evil = b"ccopy_reg\n_reconstructor\n(cnumpy\ndtype\nc__builtin__\nobject\nNtR."
    (tmp_path / "recon.pkl").write_bytes(evil)
    with pytest.raises(UnsafePickleError, match="not a MANO field class"):
        read_mano_pickle(tmp_path / "recon.pkl")
