"""Checkpoint files: round trip of nested training state, atomic writes, verification of corrupt or
missing pieces, last/best pointers and pruning."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from handrecon.checkpoint import (
    CheckpointError,
    find_last_checkpoint,
    load_state,
    load_weights,
    prune_checkpoints,
    read_card,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    remove_stale_temporaries,
    write_pointer,
)


def _opt_state():
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return model, opt


def test_state_round_trip(tmp_path):
    model, opt = _opt_state()
    random.random(), np.random.rand(), torch.rand(1)
    state = {"step": 7, "optimizer": opt.state_dict(), "rng": [rng_state()], "best": None, "t": (1, 2.5, "x")}
    d = save_checkpoint(tmp_path / "step_00000007", model, state, {"architecture": "lin", "kwargs": {}})
    back = load_state(d)
    assert back["step"] == 7 and back["best"] is None and back["t"] == (1, 2.5, "x")
    opt2 = torch.optim.Adam(model.parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])  # int param ids and tuples survive
    for k, v in opt.state_dict()["state"][0].items():
        torch.testing.assert_close(opt2.state_dict()["state"][0][k], v)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_state(back["rng"][0])
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
    other = nn.Linear(3, 2)
    load_weights(other, d)
    torch.testing.assert_close(other.weight, model.weight)
    card = read_card(d)
    assert card["architecture"] == "lin" and set(card["files"]) == {"model.safetensors", "state.safetensors"}


def test_failed_save_leaves_nothing(tmp_path):
    model, _ = _opt_state()
    with pytest.raises(TypeError, match="cannot store object"):
        save_checkpoint(tmp_path / "step_1", model, {"bad": object()}, {"architecture": "lin"})
    assert list(tmp_path.iterdir()) == []


def test_corrupt_and_missing_are_reported(tmp_path):
    model, opt = _opt_state()
    root = tmp_path / "checkpoints"
    good = save_checkpoint(root / "step_00000001", model, {"step": 1}, {"architecture": "lin"})
    bad = save_checkpoint(root / "step_00000002", model, {"step": 2}, {"architecture": "lin"})
    write_pointer(root, "last", bad)
    raw = bytearray((bad / "model.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="model.safetensors: contents do not match"):
        read_card(bad)
    skipped = []
    assert find_last_checkpoint(tmp_path, skipped) == good  # auto-resume skips the corrupt newest one...
    assert len(skipped) == 1 and "step_00000002" in skipped[0] and "do not match" in skipped[0]  # ...and says so
    (good / "state.safetensors").unlink()
    with pytest.raises(CheckpointError, match="state.safetensors is missing"):
        read_card(good)
    assert find_last_checkpoint(tmp_path) is None
    (good / "card.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="card.json: not valid JSON"):
        read_card(good)
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_checkpoint(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        resolve_checkpoint(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_weights(nn.Linear(5, 2), bad.with_name("step_00000002"))


def test_a_copy_without_the_training_state_serves_its_weights(tmp_path):
    """Weights moved between machines without the optimizer state (twice their size): the card and
    the weights are still verified, the state only where it is used (resuming)."""
    model, _ = _opt_state()
    d = save_checkpoint(tmp_path / "step_00000001", model, {"step": 1}, {"architecture": "lin"})
    (d / "state.safetensors").unlink()
    assert read_card(d, files=("model.safetensors",))["architecture"] == "lin"
    with pytest.raises(CheckpointError, match="state.safetensors is missing"):
        read_card(d)  # what resuming reads
    raw = bytearray((d / "model.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (d / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="model.safetensors: contents do not match"):
        read_card(d, files=("model.safetensors",))


def test_pointer_names_only_a_checkpoint_inside_the_folder(tmp_path):
    model, _ = _opt_state()
    root = tmp_path / "run" / "checkpoints"
    outside = save_checkpoint(tmp_path / "elsewhere", model, {}, {"architecture": "lin"})
    (root).mkdir(parents=True)
    for name in ("../../elsewhere", str(outside), ".."):
        (root / "last.json").write_text(json.dumps({"checkpoint": name}))
        assert find_last_checkpoint(tmp_path / "run") is None


def test_leftovers_of_interrupted_writes_are_removed(tmp_path):
    """A checkpoint write killed midway leaves `.step_*.tmp` (and a swap `.old`); they used to stay forever."""
    model, _ = _opt_state()
    root = tmp_path / "checkpoints"
    done = save_checkpoint(root / "step_00000001", model, {}, {"architecture": "lin"})
    (root / ".step_00000002.abc123.tmp").mkdir()
    (root / ".step_00000002.abc123.tmp" / "model.safetensors").write_bytes(b"partial")
    (root / ".step_00000001.old").mkdir()
    (root / ".last.json.xyz.tmp").write_text("{")
    removed = remove_stale_temporaries(root)
    assert sorted(p.name for p in removed) == [".last.json.xyz.tmp", ".step_00000001.old", ".step_00000002.abc123.tmp"]
    assert [p.name for p in root.iterdir()] == [done.name]
    assert remove_stale_temporaries(tmp_path / "nowhere") == []


def test_prune_keeps_best(tmp_path):
    model = nn.Linear(2, 2)
    dirs = [save_checkpoint(tmp_path / f"step_{i:08d}", model, {"step": i}, {"architecture": "lin"}) for i in range(5)]
    write_pointer(tmp_path, "best", dirs[1])
    prune_checkpoints(tmp_path, keep_last=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000001", "step_00000003", "step_00000004"]
    assert json.loads((tmp_path / "best.json").read_text())["checkpoint"] == "step_00000001"
    assert resolve_checkpoint(tmp_path) == dirs[1]
