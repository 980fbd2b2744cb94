"""`handrecon synth`: sharded output, same data whatever the workers, resume, killed runs, CLI end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from handrecon.cli import app
from handrecon.data import DatasetError
from handrecon.data.loaders import build_dataset
from handrecon.data.synth import SynthEngine, preset
from handrecon.data.synth.writer import generate
from handrecon.data.synthetic_format import list_complete_shards

CFG = preset("scene", image_size=(40, 48), num_hands=(1, 2))


def _files(root):
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
            for d, _, fs in os.walk(root) for f in fs}


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    a = generate(tmp_path / "a", CFG, 7, seed=5, shard_size=3, workers=1, progress=False)
    generate(tmp_path / "b", CFG, 7, seed=5, shard_size=3, workers=2, progress=False)
    assert a.shards == 3 and a.images_written == 7 and list_complete_shards(tmp_path / "a") == [0, 1, 2]
    fa, fb = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert fa.keys() == fb.keys() and all(fa[k] == fb[k] for k in fa), "annotations/vertices/images differ between 1 and 2 workers"
    generate(tmp_path / "c", CFG, 7, seed=6, shard_size=3, progress=False)
    assert _files(tmp_path / "c")["shard_00000/annotations.json"] != fa["shard_00000/annotations.json"]


def test_written_dataset_reads_back_as_the_engine_renders_it(tmp_path):
    generate(tmp_path, CFG, 4, seed=2, shard_size=2, progress=False)
    ds = build_dataset("synthetic", tmp_path)
    engine = SynthEngine(CFG)
    assert len(ds) == 4
    for i in range(4):
        got, want = ds[i], engine.sample(i, seed=2)
        assert got.meta["background"] == want.meta["background"]
        assert len(got.hands) == len(want.hands)
        for hg, hw in zip(got.hands, want.hands):
            assert hg.side == hw.side
            np.testing.assert_allclose(hg.keypoints_2d, hw.keypoints_2d, atol=1e-5)
            np.testing.assert_allclose(hg.keypoints_3d, hw.keypoints_3d, atol=1e-6)
            np.testing.assert_array_equal(hg.visibility, hw.visibility)
            np.testing.assert_allclose(hg.vertices, hw.vertices, atol=1e-4)  # float16, wrist-relative


def test_resume_skips_finished_shards_and_rejects_other_settings(tmp_path):
    generate(tmp_path, CFG, 6, seed=1, shard_size=2, progress=False)
    before = _files(tmp_path)
    mtimes = {s: os.stat(tmp_path / f"shard_0000{s}").st_mtime_ns for s in (0, 2)}
    import shutil

    shutil.rmtree(tmp_path / "shard_00001")
    (tmp_path / ".shard_00001.tmp-leftover").mkdir()  # what a killed writer leaves
    again = generate(tmp_path, CFG, 6, seed=1, shard_size=2, progress=False)
    assert (again.shards_skipped, again.images_written) == (2, 2)
    assert {s: os.stat(tmp_path / f"shard_0000{s}").st_mtime_ns for s in (0, 2)} == mtimes
    assert _files(tmp_path) == before and not list(tmp_path.glob(".shard_*"))
    with pytest.raises(DatasetError, match="other settings"):
        generate(tmp_path, CFG, 6, seed=2, shard_size=2, progress=False)


def test_killed_run_leaves_no_complete_looking_shard(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal
        from handrecon.data.synth import SynthEngine, preset
        from handrecon.data.synth.writer import generate
        real = SynthEngine.sample
        def sample(self, index, seed):
            if index == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(self, index, seed)
        SynthEngine.sample = sample
        generate({str(tmp_path)!r}, preset("scene", image_size=(40, 48), num_hands=(1, 2)), 6, seed=1, shard_size=2, progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert list_complete_shards(tmp_path) == [0]
    assert not (tmp_path / "shard_00001").exists() and list(tmp_path.glob(".shard_00001.tmp-*"))
    assert len(build_dataset("synthetic", tmp_path)) == 2  # the reader sees only the finished shard
    resumed = generate(tmp_path, CFG, 6, seed=1, shard_size=2, progress=False)
    assert resumed.shards_skipped == 1 and list_complete_shards(tmp_path) == [0, 1, 2]
    generate(tmp_path / "fresh", CFG, 6, seed=1, shard_size=2, progress=False)
    fresh = _files(tmp_path / "fresh")
    assert all(fresh[k] == v for k, v in _files(tmp_path).items() if k in fresh)


def test_cli_synth_and_show_dataset(tmp_path):
    runner = CliRunner()
    out = tmp_path / "data"
    r = runner.invoke(app, ["synth", "--preset", "crop", "--num", "3", "--out", str(out), "--seed", "4",
                            "--shard-size", "2", "--image-size", "64", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "3 images" in r.output and list_complete_shards(out) == [0, 1]
    assert build_dataset("synthetic", out)[0].image.shape == (64, 64, 3)
    r = runner.invoke(app, ["synth", "--preset", "crop", "--num", "3", "--out", str(out), "--seed", "4",
                            "--shard-size", "2", "--image-size", "64", "--quiet"])
    assert r.exit_code == 0 and "2 already complete" in r.output
    grid = tmp_path / "grid.png"
    r = runner.invoke(app, ["show-dataset", "--dataset", "synthetic", "--root", str(out), "--num", "3", "--out", str(grid)])
    assert r.exit_code == 0, r.output
    from PIL import Image

    im = np.asarray(Image.open(grid))
    assert im.shape == (2 + 2 * 66, 2 + 2 * 66, 3)  # 2x2 grid of 64 px tiles with 2 px padding
    r = runner.invoke(app, ["synth", "--preset", "nope", "--num", "3", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "unknown synth preset" in r.output
    # --set overrides any config field (YAML values, lists as tuples); the dataset records it
    setd = tmp_path / "set"
    r = runner.invoke(app, ["synth", "--num", "1", "--out", str(setd), "--image-size", "48", "--quiet",
                            "--set", "orientation=mixed", "--set", "p_natural=0.25", "--set", "hand_size=[0.4, 0.6]"])
    assert r.exit_code == 0, r.output
    import json

    config = json.loads((setd / "meta.json").read_text())["config"]
    assert (config["orientation"], config["p_natural"], config["hand_size"]) == ("mixed", 0.25, [0.4, 0.6])
    for bad, message in ((["--set", "p_natural"], "FIELD=VALUE"),
                         (["--set", "nope=1"], "unknown synth config fields ['nope']; the fields are "),
                         (["--set", "orientation=sideways"], "orientation must be"), (["--set", "p_natural=[1"], "not valid YAML")):
        r = runner.invoke(app, ["synth", "--num", "1", "--out", str(tmp_path / "bad"), *bad])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    r = runner.invoke(app, ["show-dataset", "--dataset", "synthetic", "--root", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "meta.json" in r.output


def _session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`, from /proc."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(p.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to list the session's processes")
def test_workers_die_with_a_killed_parent(tmp_path):
    """SIGKILL of `handrecon synth --workers 2` used to leave both workers, the forkserver and the
    resource tracker rendering on (~0.9 GB) for over a minute; now they all end within seconds."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "handrecon.cli", "synth", "--num", "400", "--workers", "2",
                             "--shard-size", "50", "--out", str(tmp_path / "s")], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        while len(_session_processes(proc.pid)) < 4 and time.time() - t0 < 120:  # parent, server, tracker, workers
            time.sleep(0.2)
        assert len(_session_processes(proc.pid)) >= 4, "the workers never started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        t1 = time.time()
        while _session_processes(proc.pid) and time.time() - t1 < 15:
            time.sleep(0.2)
        assert _session_processes(proc.pid) == []
    finally:
        for pid in _session_processes(proc.pid):
            os.kill(pid, signal.SIGKILL)
