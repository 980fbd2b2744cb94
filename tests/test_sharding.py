"""`reconstruct` and `evaluate` under torchrun: 2 CPU processes give the same outputs as one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_cli_reconstruct import write_images
from test_eval_runner import write_synthetic
from test_predictor import tiny_checkpoint


def run(args, tmp_path, nproc):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # an aborting rank prints where it was
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "handrecon.cli", *args] if nproc > 1 else [sys.executable, "-m", "handrecon.cli", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def assert_same_json(a, b, atol: float, where: str = "") -> None:
    """a == b as JSON trees, numbers within `atol` (strings, keys, lengths and None exactly)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same_json(a[k], b[k], atol, f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_json(x, y, atol, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, (bool, str)) and b is not None:
        assert b == pytest.approx(a, abs=atol), where
    else:
        assert a == b, where


def test_two_ranks_match_one(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "ck")
    images = write_images(tmp_path / "in")
    for i in range(3):  # five images in all
        (images / f"c{i}.png").write_bytes((images / "a.png").read_bytes())
    out1, out2 = tmp_path / "one", tmp_path / "two"
    args = ["reconstruct", str(images), "--model", str(ckpt), "--formats", "obj", "--no-overlay", "--box", "5", "5", "60", "60",
            "--side", "right", "--one-look"]  # one crop per hand: its untrained root solve turns 1e-7 thread-count noise into cm
    log1 = run([*args, "--out", str(out1)], tmp_path, 1)
    log2 = run([*args, "--out", str(out2)], tmp_path, 2)
    assert "5 image(s) reconstructed" in log1 and log2.count("5 image(s) reconstructed") == 1  # rank 0 reports
    assert sorted(p.name for p in out1.iterdir()) == sorted(p.name for p in out2.iterdir())
    for p in out1.glob("*.json"):  # the same results, each number to the JSON's rounding (1e-5): a rank
        # batches other images together, and at another batch size the kernels sum in another order
        assert_same_json(json.loads(p.read_text()), json.loads((out2 / p.name).read_text()), atol=2e-5)

    data = tmp_path / "syn"
    write_synthetic(data, n_shards=2, per_shard=3)
    args = ["evaluate", "--checkpoint", str(ckpt), "--dataset", "synthetic", "--root", str(data), "--split", "all"]
    run([*args, "--out", str(tmp_path / "e1")], tmp_path, 1)
    run([*args, "--out", str(tmp_path / "e2")], tmp_path, 2)
    m1 = json.loads((tmp_path / "e1" / "metrics.json").read_text())
    m2 = json.loads((tmp_path / "e2" / "metrics.json").read_text())
    # the same numbers up to float rounding (a rank batches other images together than one process
    # does); not the camera-space placement: this random model's heatmaps are near flat, so rounding can
    # move a keypoint (read near its map's peak) to another cell, and root recovery follows it
    placement = {"mpjpe_mm", "root_error_mm", "root_depth_error_mm"}
    assert m1["num_samples"] == m2["num_samples"] == 6
    assert placement < set(m1["metrics"])
    assert {k: v for k, v in m1["metrics"].items() if k not in placement} == \
        pytest.approx({k: v for k, v in m2["metrics"].items() if k not in placement}, rel=1e-3)
    x1, x2 = (np.array(json.loads((tmp_path / e / "pred.json").read_text())[0]) for e in ("e1", "e2"))
    np.testing.assert_allclose(x1 - x1[:, :1], x2 - x2[:, :1], atol=1e-5)  # root-relative joints, metres


def test_rank_group_destroyed_before_interpreter_exit(tmp_path):
    """gloo's threads abort a process whose group outlives Python's atexit handlers ("terminate
    called without an active exception", SIGABRT after all the work was done: a CI run failed so)."""
    script = tmp_path / "rank.py"
    script.write_text(  # each rank writes its own file: two ranks' prints to one pipe interleave
        "import atexit, os\n"
        "import torch.distributed as dist\n"
        "from handrecon.utils.distributed import all_gather_object, start_cpu_group\n"
        "log = open(f'rank{os.environ[\"RANK\"]}.txt', 'w')\n"
        # registered first, so it runs last: after start_cpu_group's own handler
        "atexit.register(lambda: log.write(f'group at exit: {dist.is_initialized()}\\n') and log.close())\n"
        "rank, world = start_cpu_group()\n"
        "log.write(f'ranks {all_gather_object(rank)}\\n')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # an aborting rank prints where it was
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for rank in (0, 1):
        assert (tmp_path / f"rank{rank}.txt").read_text() == "ranks [0, 1]\ngroup at exit: False\n"
