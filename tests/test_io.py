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
