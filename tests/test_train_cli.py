"""`handrecon train`: overrides, resolved config, refusing to overwrite a run, --resume auto after an
interruption reproducing the uninterrupted run, and clear errors for bad input."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch
import yaml
from typer.testing import CliRunner

from handrecon.cli import app
from handrecon.checkpoint import load_model

from test_train_engine import make_cfg

runner = CliRunner()


def _write(tmp_path, cfg):
    p = tmp_path / "toy.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_interrupted_run_resumes_exactly(tmp_path):
    cfg = _write(tmp_path, make_cfg(tmp_path / "unused", **{"train.ckpt_every": 4, "train.log_every": 1}))
    ok = runner.invoke(app, ["train", str(cfg), "--out", str(tmp_path / "a")])
    assert ok.exit_code == 0, ok.output
    assert "done: step 24" in ok.output

    # Interrupted during step 15 (last checkpoint at 12), then resumed with --resume auto.
    out_b = str(tmp_path / "b")
    crashed = runner.invoke(app, ["train", str(cfg), "model.kwargs.crash_at_call=15", "--out", out_b])
    assert isinstance(crashed.exception, RuntimeError) and "simulated crash" in str(crashed.exception)
    refused = runner.invoke(app, ["train", str(cfg), "--out", out_b])
    assert refused.exit_code == 2 and "already holds checkpoints; pass --resume auto" in refused.output
    # a half-written newer checkpoint (as a kill during the write leaves it) and a corrupt complete one
    ckpts = tmp_path / "b" / "checkpoints"
    (ckpts / ".step_00000016.x1.tmp").mkdir()
    shutil.copytree(ckpts / "step_00000012", ckpts / "step_00000016")
    (ckpts / "step_00000016" / "model.safetensors").write_bytes(b"corrupt")
    (ckpts / "last.json").write_text('{"checkpoint": "step_00000016"}')
    resumed = runner.invoke(app, ["train", str(cfg), "--out", out_b, "--resume", "auto"])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed from" in resumed.output and "step_00000012" in resumed.output
    assert "passed over a newer checkpoint" in resumed.output and "step_00000016" in resumed.output
    assert "removed 1 leftover(s) of interrupted checkpoint writes: .step_00000016.x1.tmp" in resumed.output
    assert not (ckpts / ".step_00000016.x1.tmp").exists()

    ma, _ = load_model(tmp_path / "a" / "checkpoints" / "step_00000024")
    mb, card = load_model(tmp_path / "b" / "checkpoints" / "step_00000024")
    for (k, va), vb in zip(ma.state_dict().items(), mb.state_dict().values()):
        torch.testing.assert_close(vb, va, rtol=0, atol=1e-6)
    # the log of the resumed run has each step once, and equals the uninterrupted log
    rows_a = list(csv.DictReader(open(tmp_path / "a" / "train_log.csv")))
    rows_b = list(csv.DictReader(open(tmp_path / "b" / "train_log.csv")))
    assert [int(r["step"]) for r in rows_b] == list(range(1, 25))
    for ra, rb in zip(rows_a, rows_b):
        assert float(ra["loss"]) == pytest.approx(float(rb["loss"]), abs=1e-6) and ra["lr"] == rb["lr"]
    saved = yaml.safe_load(open(tmp_path / "b" / "config.yaml"))
    assert saved["output"] == out_b and saved["optim"]["lr"] == 3e-3


def test_overrides_reach_the_run(tmp_path):
    cfg = _write(tmp_path, make_cfg(tmp_path / "run"))
    res = runner.invoke(app, ["train", str(cfg), "optim.lr=1e-4", "train.max_steps=3", "train.epochs=null",
                              "data.val=null"])
    assert res.exit_code == 0, res.output
    saved = yaml.safe_load(open(tmp_path / "run" / "config.yaml"))
    assert saved["optim"]["lr"] == 1e-4 and saved["train"]["max_steps"] == 3 and saved["data"]["val"] is None
    rows = list(csv.DictReader(open(tmp_path / "run" / "train_log.csv")))
    assert rows[-1]["step"] == "3" and float(rows[-1]["lr"]) == pytest.approx(1e-4)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.yaml"], "missing.yaml does not exist"),
        (["{cfg}", "optim.lrr=1"], "command-line override: optim.lrr: unknown key"),
        (["{cfg}", "model.name=nope"], "unknown model 'nope'"),
        (["{cfg}", "--resume", "{tmp}/nowhere"], "nowhere does not exist"),
        # each of these used to end in a traceback (issue 11, item 7)
        (["{cfg}", "model.name=m3dhmr", "model.kwargs={{backbone_kwargs: {{width: -1}}}}"], "model: "),
        (["{cfg}", "data.train.name=m3dhmr_crops", "data.train.kwargs={{root: {tmp}/no_data}}"], "data.train: "),
        (["{cfg}", "train.device=cuda"] if not torch.cuda.is_available() else ["{cfg}", "model.name=nope"],
         "no CUDA device" if not torch.cuda.is_available() else "unknown model"),
        (["{tmp}/alias.yaml"], "refers to itself"),
    ],
)
def test_clear_errors(tmp_path, args, message):
    cfg = _write(tmp_path, make_cfg(tmp_path / "run"))
    (tmp_path / "alias.yaml").write_text("a: &x\n  b: *x\nmodel: {name: toy_mlp}\n")
    res = runner.invoke(app, ["train", *[a.format(cfg=cfg, tmp=tmp_path) for a in args]])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
