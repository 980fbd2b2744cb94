import json
import logging

import numpy as np
import pytest

from handrecon.mesh import get_hierarchy, get_spirals
from handrecon.mesh.cache import load_arrays, save_arrays
from handrecon.mesh.primitives import open_tube


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDRECON_CACHE", str(tmp_path))
    return tmp_path / "mesh"


def _files(cache, kind):
    return sorted(cache.glob(f"{kind}-*.npz"))


def test_hierarchy_is_cached_and_reloaded_identically(cache, monkeypatch):
    v, f = open_tube(rings=12, sections=10)
    h1 = get_hierarchy(v, f)
    (path,) = _files(cache, "hierarchy")
    import handrecon.mesh.hierarchy as hier

    monkeypatch.setattr(hier, "build_hierarchy", lambda *a: pytest.fail("should load from cache"))
    h2 = get_hierarchy(v, f)
    for a, b in zip(h1.to_arrays().values(), h2.to_arrays().values()):
        assert np.array_equal(a, b)


def test_key_depends_on_faces_vertices_and_factors(cache):
    v, f = open_tube(rings=12, sections=10)
    get_hierarchy(v, f)
    get_hierarchy(v, f, [2, 2])
    get_hierarchy(v * 1.01, f, [2, 2])
    get_hierarchy(v, f[:, [0, 2, 1]], [2, 2])
    assert len(_files(cache, "hierarchy")) == 4


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip_array", "stale_key", "bad_shape"])
def test_corrupt_or_stale_cache_is_rebuilt(cache, caplog, damage):
    v, f = open_tube(rings=12, sections=10)
    ref = get_hierarchy(v, f)
    (path,) = _files(cache, "hierarchy")
    raw = path.read_bytes()
    with np.load(path, allow_pickle=False) as z:
        key = json.loads(str(z["__meta__"]))["key"]
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    else:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("__meta__")))
        if damage == "flip_array":  # content changed behind the checksum's back
            arrays["up_weight_0"] = arrays["up_weight_0"] * 2
            np.savez(path, **arrays, __meta__=np.array(json.dumps(meta)))
        elif damage == "stale_key":
            save_arrays(path, arrays, "0" * 64)
        else:  # checksum fine (re-signed), but arrays inconsistent with the mesh
            arrays["down_0"] = arrays["down_0"][:-1]
            save_arrays(path, arrays, key)
    with caplog.at_level(logging.WARNING, logger="handrecon.mesh.cache"):
        h = get_hierarchy(v, f)
    assert "rebuilding" in caplog.text
    assert np.array_equal(h.up_weight[0], ref.up_weight[0]) and np.array_equal(h.down[0], ref.down[0])
    assert load_arrays(path, key) is not None  # rewritten intact


def test_spirals_cache_and_pickle_is_never_loaded(cache):
    v, f = open_tube(rings=8, sections=10)
    s1 = get_spirals(v, f, 9, 2)
    s2 = get_spirals(v, f, 9, 2)
    assert np.array_equal(s1, s2)
    (path,) = _files(cache, "spiral")
    np.savez(path, spirals=np.array([object()], dtype=object))  # a pickle payload
    assert np.array_equal(get_spirals(v, f, 9, 2), s1)


def test_unwritable_cache_dir_still_works(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("HANDRECON_CACHE", str(blocker))  # a file, so mkdir fails
    v, f = open_tube(rings=8, sections=10)
    assert get_hierarchy(v, f).sizes[0] == len(v)
