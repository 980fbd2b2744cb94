import json

import numpy as np
import pytest

from handrecon.utils.io import atomic_open, atomic_write_arrays, atomic_write_json, read_arrays


def test_atomic_write_json_roundtrip(tmp_path):
    p = tmp_path / "sub" / "a.json"
    atomic_write_json(p, {"x": 1})
    assert json.loads(p.read_text()) == {"x": 1}
    assert [q.name for q in p.parent.iterdir()] == ["a.json"]


def test_atomic_open_failure_leaves_old_file(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(p, "w") as f:
            f.write("half")
            raise RuntimeError("boom")
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_files_get_umask_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_durable_writes_are_fsynced_and_per_image_outputs_are_not(tmp_path, monkeypatch):
    """`durable` (the default) flushes the data to disk before the rename; durable=False (the
    per-image JSON of a folder run) skips only that: the file still appears whole or not at all."""
    import os

    from handrecon.utils.io import atomic_write_bytes

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    atomic_write_bytes(tmp_path / "a.bin", b"abc")
    assert len(synced) == 1
    atomic_write_bytes(tmp_path / "b.bin", b"xyz", durable=False)
    assert len(synced) == 1 and (tmp_path / "b.bin").read_bytes() == b"xyz"
    with pytest.raises(RuntimeError):
        with atomic_open(tmp_path / "c.bin", "wb", durable=False) as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert sorted(q.name for q in tmp_path.iterdir()) == ["a.bin", "b.bin"]


def test_arrays_round_trip_without_pickle_and_bad_files_name_themselves(tmp_path):
    """`atomic_write_arrays` / `read_arrays`: the arrays come back as written; a missing file says what
    writes it, a corrupt one or one holding objects (which only pickle could read) says what it should be."""
    p = tmp_path / "sub" / "a.npz"
    arrays = {"x": np.arange(6.0).reshape(2, 3), "flags": np.array([True, False]), "n": np.array(3)}
    atomic_write_arrays(p, arrays)
    back = read_arrays(p, "an array file", "run the tool first")
    assert set(back) == set(arrays) and all(np.array_equal(back[k], v) for k, v in arrays.items())
    assert [q.name for q in p.parent.iterdir()] == ["a.npz"]
    with pytest.raises(ValueError, match=r"nowhere.npz: not found; run the tool first"):
        read_arrays(tmp_path / "nowhere.npz", "an array file", "run the tool first")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match=r"junk.npz: not an array file \("):
        read_arrays(tmp_path / "junk.npz", "an array file", "run the tool first")
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"objects.npz: not an array file"):
        read_arrays(tmp_path / "objects.npz", "an array file", "run the tool first")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.npz: not an array file \("):
        read_arrays(tmp_path / "empty.npz", "an array file", "run the tool first")
    assert set(read_arrays(p, "an array file", "run the tool first", ("x", "n"))) == set(arrays)
    with pytest.raises(ValueError, match=r"a.npz: not an array file \(no y, z array\)"):
        read_arrays(p, "an array file", "run the tool first", ("x", "y", "z"))
