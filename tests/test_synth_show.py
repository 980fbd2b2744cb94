"""show-dataset grids from real-format loaders: mesh (known faces) or vertex dots, skeleton, boxes."""

from __future__ import annotations

import numpy as np
from PIL import Image

from handrecon.data.show import dataset_grid, render_sample, show_dataset
from handrecon.data.synth import SynthEngine, preset
from test_loaders_freihand import write_freihand


def test_freihand_grid_draws_vertices_and_skeleton(tmp_path):
    write_freihand(tmp_path)
    out = show_dataset("freihand", tmp_path, tmp_path / "grid.png", num=4, cell=112)
    grid = np.asarray(Image.open(out))
    assert grid.shape == (2 + 2 * 114, 2 + 2 * 114, 3)
    tile = grid[2:114, 2:114]
    assert (tile != tile[-1, -1]).any(axis=-1).mean() > 0.02  # something drawn over the flat fixture image


def test_mesh_overlay_covers_the_hand():
    s = SynthEngine(preset("crop", image_size=(96, 96), p_extra_hand=0, p_occluder=0)).sample(0, seed=0)
    plain = render_sample(s, caption=False, cell=96)
    # overlaid pixels differ from the image over the hand's box, and the image is kept elsewhere
    x1, y1, x2, y2 = np.rint(s.hands[0].box).astype(int)
    changed = (plain != s.image).any(-1)
    assert changed[y1:y2 + 1, x1:x2 + 1].mean() > 0.3
    assert changed.sum() <= changed[max(y1 - 3, 0):y2 + 4, max(x1 - 3, 0):x2 + 4].sum()
    assert dataset_grid([s, s], num=2, cell=48).shape == (2 + 50, 2 + 2 * 50, 3)


def test_show_dataset_checks_its_output_and_numbers_first(tmp_path, monkeypatch):
    """A folder, a parent that is a file, an unknown suffix, --num 0 and a tiny --cell are one-line
    errors before any sample is read; .jpg writes a JPEG, not PNG bytes under a .jpg name."""
    from typer.testing import CliRunner

    from handrecon import data
    from handrecon.cli import app

    write_freihand(tmp_path)
    out = show_dataset("freihand", tmp_path, tmp_path / "grid.JPG", num=2, cell=64)
    assert Image.open(out).format == "JPEG"

    def no_loading(*a, **k):
        raise AssertionError("the dataset was read before the arguments were checked")

    monkeypatch.setattr(data.show, "build_dataset", no_loading)
    (tmp_path / "afile").write_text("x")
    cases = [(["--out", str(tmp_path)], "is a folder"), (["--out", str(tmp_path / "g.jpgx")], "ending in .png"),
             (["--out", str(tmp_path / "afile" / "g.png")], "is a file"), (["--num", "0"], "--num"),
             (["--cell", "4"], "--cell")]
    for args, fragment in cases:
        args = args if "--out" in args else [*args, "--out", str(tmp_path / "x.png")]
        r = CliRunner().invoke(app, ["show-dataset", "--dataset", "freihand", "--root", str(tmp_path), *args])
        assert r.exit_code == 2 and r.output.startswith("error:") and fragment in r.output, (args, r.output)
        assert "Traceback" not in r.output
    assert not (tmp_path / "g.jpgx").exists() and not (tmp_path / "x.png").exists()
