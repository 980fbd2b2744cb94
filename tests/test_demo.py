import json

import numpy as np
import trimesh
from typer.testing import CliRunner

from handrecon.cli import app


def test_demo_writes_loadable_meshes_and_summary(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {(m["side"], m["pose"]) for m in summary["meshes"]} == {
        (s, p) for s in ("right", "left") for p in ("open", "fist", "pinch", "point")
    }
    for entry in summary["meshes"]:
        obj = trimesh.load(tmp_path / entry["files"]["obj"], force="mesh", process=False)
        glb = trimesh.load(tmp_path / entry["files"]["glb"], force="mesh", process=False)
        assert len(obj.vertices) == entry["num_vertices"] == len(glb.vertices)
        # GLB is the OBJ rotated into glTF's y-up frame.
        np.testing.assert_allclose(glb.vertices, obj.vertices * [1, -1, -1], atol=1e-5)
        # The hand sits half a metre in front of the camera and is hand-sized.
        assert 0.35 < obj.vertices[:, 2].mean() < 0.65
        assert 0.08 < max(entry["extent_m"]) < 0.25
