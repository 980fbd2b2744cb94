"""Config loading: strict schema, clear errors naming key and source, YAML-typed overrides; LR schedules."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from handrecon.registry import ConfigError
from handrecon.train.config import ScheduleConfig, config_from_dict, load_config, save_config
from handrecon.train.engine import LRSchedule

BASE = {
    "model": {"name": "toy", "kwargs": {"hidden": 8}},
    "data": {"train": {"name": "pts"}, "batch_size": 4},
    "train": {"epochs": 2},
}


def write(tmp_path, cfg, name="run.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_load_defaults_and_overrides(tmp_path):
    p = write(tmp_path, {**BASE, "optim": {"lr": "1e-3"}})  # YAML 1.1 reads 1e-3 as a string
    cfg = load_config(p, ["optim.lr=1e-4", "data.batch_size=8", "optim.schedule.milestones=[30]",
                          "model.kwargs.depth=3", "data.val={name: pts, kwargs: {n: 5}}", "train.grad_clip=null"])
    assert cfg.optim.lr == 1e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.data.batch_size == 8 and cfg.optim.schedule.milestones == [30]
    assert cfg.model.kwargs == {"hidden": 8, "depth": 3}
    assert cfg.data.val.name == "pts" and cfg.data.val.kwargs == {"n": 5}
    assert cfg.train.grad_clip is None and cfg.train.val_every == "epoch"
    assert cfg.output == "runs/run"  # defaults to runs/<config stem>
    save_config(cfg, tmp_path / "resolved.yaml")
    again = load_config(tmp_path / "resolved.yaml")
    assert again == cfg


def test_a_bare_off_is_the_word_off(tmp_path):
    """YAML 1.1 reads a bare `off` as False: `train.amp=off` and `amp: off` in a file mean "off"."""
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump({k: v for k, v in BASE.items() if k != "train"}) + "train:\n  epochs: 2\n  amp: off\n  progress: off\n")
    assert yaml.safe_load(p.read_text())["train"]["amp"] is False  # what the parser hands over
    cfg = load_config(p)
    assert (cfg.train.amp, cfg.train.progress) == ("off", "off")
    assert load_config(write(tmp_path, BASE), ["train.amp=off"]).train.amp == "off"
    with pytest.raises(ConfigError, match="train.amp: expected one of"):
        load_config(write(tmp_path, BASE), ["train.amp=on"])  # no "on" to mean


@pytest.mark.parametrize(
    "raw, overrides, message",
    [
        ({**BASE, "optim": {"lrr": 1}}, [], "run.yaml: optim.lrr: unknown key"),
        (BASE, ["optim.lrr=1"], "command-line override: optim.lrr: unknown key"),
        ({**BASE, "data": {"train": {"name": "pts"}, "batch_size": "eight"}}, [], "run.yaml: data.batch_size: expected int"),
        (BASE, ["data.batch_size=2.5"], "command-line override: data.batch_size: expected int"),
        (BASE, ["train.amp=fp8"], "train.amp: expected one of"),
        (BASE, ["train.val_every=often"], r"train.val_every: expected int or expected one of \['epoch'\], got 'often'$"),
        (BASE, ["train.seed=true"], "train.seed: expected int, got True"),
        ({"data": BASE["data"]}, [], "run.yaml: model: required key is missing"),
        (BASE, ["optim.lr"], "must look like section.key=value"),
        (BASE, ["train.epochs.x=1"], "train.epochs is not a section"),
        (BASE, ["optim.betas=[0.9, high]"], r"optim.betas\[1\]: expected float"),
        (BASE, ["train.log_every=0"], "command-line override: train.log_every: must be >= 1, got 0"),
        (BASE, ["optim.lr=-1e-3"], "optim.lr: must be positive"),
        (BASE, ["train.ema_decay=1.0"], "command-line override: train.ema_decay: must lie strictly between 0 and 1"),
        (BASE, ["train.ema_warmup_steps=-5"], "train.ema_warmup_steps: must be >= 0"),
    ],
)
def test_errors_name_key_and_source(tmp_path, raw, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, raw), overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(tmp_path / "list.yaml")


def _lrs(sched_cfg: dict, spe: int, total: int) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    s = LRSchedule(opt, config_from_dict({**BASE, "optim": {"schedule": sched_cfg}}).optim.schedule, spe, total)
    return [s.apply(i) for i in range(total)]


def test_multistep_paper_recipe():
    """M3DHMR: Adam 1e-3, divided by 10 at epoch 30 of 38."""
    lrs = _lrs({"name": "multistep", "milestones": [30], "gamma": 0.1}, spe=10, total=380)
    assert lrs[299] == pytest.approx(1e-3) and lrs[300] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1e-4)


def test_cosine_from_epoch_25_of_40():
    """HandOS: constant until epoch 25, then cosine to min_lr_ratio at the end of epoch 40."""
    lrs = _lrs({"name": "cosine", "start_epoch": 25, "min_lr_ratio": 0.01}, spe=4, total=160)
    assert all(lr == pytest.approx(1e-3) for lr in lrs[:101])
    mid = 100 + 30  # halfway through the decay
    assert lrs[mid] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5), rel=1e-6)
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:]))
    assert lrs[-1] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 59 / 60))))


def test_warmup_is_linear():
    lrs = _lrs({"name": "constant", "warmup_epochs": 1}, spe=4, total=8)
    assert lrs[:5] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3])


def test_schedule_dataclass_defaults():
    assert ScheduleConfig().name == "constant"
