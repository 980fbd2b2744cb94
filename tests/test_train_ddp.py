"""DistributedDataParallel through torchrun: 2 CPU processes (gloo) on the toy task of
test_train_engine. Checks the run finishes, both ranks end with identical parameters, and they
equal a single-process run with the doubled batch (same samples per step, averaged gradients)."""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import yaml
from safetensors.torch import load_file

from handrecon.train import config_from_dict, train
from handrecon.checkpoint import load_state, read_card

from test_train_engine import TESTS, make_cfg

RANK_SCRIPT = """
import os, sys
from safetensors.torch import save_file
from handrecon.train import load_config, train
result = train(load_config(sys.argv[1]))
state = {k: v.detach().contiguous().clone() for k, v in result.model.state_dict().items()}
save_file(state, os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.safetensors"))
"""


def test_torchrun_two_cpu_processes(tmp_path):
    over = {"model.kwargs": {"hidden": 32, "dropout": 0.0}, "train.epochs": 3, "train.ckpt_every": "epoch",
            "train.val_every": "epoch", "train.device": "cpu"}
    cfg = make_cfg(tmp_path / "ddp", **over)  # batch 8 per rank, 64 samples: 4 steps/epoch per rank
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "rank_script.py").write_text(RANK_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}  # a rank that aborts prints where it was
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(tmp_path / "rank_script.py"), str(tmp_path / "cfg.yaml"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    r0, r1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"{k} differs between ranks"
    card = read_card(tmp_path / "ddp" / "checkpoints" / "step_00000012")
    assert card["world_size"] == 2 and card["steps_per_epoch"] == 4 and "mean_err" in card["metrics"]
    rngs = load_state(tmp_path / "ddp" / "checkpoints" / "step_00000012")["rng"]
    assert len(rngs) == 2 and not torch.equal(rngs[0]["torch"], rngs[1]["torch"])  # per-rank streams
    assert (tmp_path / "ddp" / "train_log.csv").is_file()

    # one process, batch 16 = the union of both ranks' batches of 8 at every step
    single = train(config_from_dict(make_cfg(tmp_path / "single", **over, **{"data.batch_size": 16})))
    assert single.step == 12
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(r0[k], v, rtol=0, atol=1e-5)
