import json

import pytest

from handrecon.utils.io import atomic_open, atomic_write_json


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
