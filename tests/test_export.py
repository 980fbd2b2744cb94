import numpy as np
import pytest
import trimesh

from handrecon.infer.export import save_mesh


@pytest.fixture
def tetra():
    v = np.array([[0, 0, 0.5], [0.1, 0, 0.5], [0, 0.1, 0.5], [0, 0, 0.6]], dtype=np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return v, f


@pytest.mark.parametrize("suffix", ["obj", "ply", "glb"])
def test_save_mesh_roundtrip(tmp_path, tetra, suffix):
    v, f = tetra
    p = save_mesh(tmp_path / f"m.{suffix}", v, f)
    m = trimesh.load(p, force="mesh", process=False)
    assert len(m.vertices) == 4 and len(m.faces) == 4
    expected = v.astype(np.float64)
    if suffix == "glb":  # glTF is y-up: y and z negated
        expected = expected * np.array([1, -1, -1])
    np.testing.assert_allclose(np.asarray(m.vertices), expected, atol=1e-6)
    # Winding is kept: the same signed volume as the input.
    assert np.sign(m.volume) == np.sign(trimesh.Trimesh(expected, f, process=False).volume)


def test_save_mesh_rejects_bad_input(tmp_path, tetra):
    v, f = tetra
    with pytest.raises(ValueError, match="unsupported mesh format"):
        save_mesh(tmp_path / "m.stl", v, f)
    with pytest.raises(ValueError, match="NaN"):
        save_mesh(tmp_path / "m.obj", np.full((4, 3), np.nan), f)
    with pytest.raises(ValueError, match="faces"):
        save_mesh(tmp_path / "m.obj", v, f + 10)
    assert list(tmp_path.iterdir()) == []
