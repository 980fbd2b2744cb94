"""The training engine on a toy task: an MLP with dropout regressing sin/cos features of a random input.

The toy model and datasets are registered here; subprocesses (torchrun) import this module through
the config's ``imports`` with ``tests/`` on PYTHONPATH.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from handrecon.checkpoint import load_model
from handrecon.data.stream import SeededStream, sample_rng
from handrecon.registry import ConfigError, register_dataset, register_model
from handrecon.train import config_from_dict, train
from handrecon.train.distributed import init_distributed
from handrecon.train.engine import Trainer
from handrecon.checkpoint import CheckpointError, load_state, read_card
from handrecon.train.ema import WeightEMA

TESTS = Path(__file__).parent


@register_model("toy_mlp")
class ToyMLP(nn.Module):
    """(B,4) → (B,2) MLP; ``loss`` is L1 + L2 so two terms are logged."""

    def inference_spec(self) -> dict:
        return {"input_size": 4, "toy": True}

    def __init__(self, hidden: int = 32, dropout: float = 0.2, crash_at_call: int | None = None,
                 loss_weights: dict | None = None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 2))
        self.crash_at_call, self.train_calls = crash_at_call, 0
        self.loss_weights = {"l1": 1.0, "l2": 1.0, **(loss_weights or {})}

    def forward(self, batch):
        if self.training:
            self.train_calls += 1
            if self.train_calls == self.crash_at_call:
                raise RuntimeError("simulated crash")
        return {"y": self.net(batch["x"])}

    def loss(self, outputs, batch):
        diff = outputs["y"].float() - batch["y"]
        l1, l2 = diff.abs().mean(), diff.pow(2).mean()
        return self.loss_weights["l1"] * l1 + self.loss_weights["l2"] * l2, {"l1": l1, "l2": l2}

    def validate(self, batches):
        err = torch.cat([(self(b)["y"].float() - b["y"]).norm(dim=-1) for b in batches])
        return {"mean_err": err.mean().item(), "loss": err.pow(2).mean().item()}


def _target(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.sin(x[..., 0] * 2 + x[..., 1]), torch.cos(x[..., 2]) * x[..., 3]], -1)


@register_dataset("toy_points")
class ToyPoints(Dataset):
    """Map-style: fixed random inputs, plus a per-(epoch, index) input jitter drawn with sample_rng."""

    def __init__(self, n: int = 64, seed: int = 0, jitter: float = 0.05):
        self.x = torch.from_numpy(np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32))
        self.seed, self.jitter, self.epoch = seed, jitter, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        noise = sample_rng(self.seed, self.epoch, i).normal(size=4).astype(np.float32) * self.jitter
        x = self.x[i] + torch.from_numpy(noise)
        return {"x": x, "y": _target(x)}


@register_dataset("toy_stream")
class ToyStream(SeededStream):
    def make_sample(self, rng):
        x = torch.from_numpy(rng.normal(size=4).astype(np.float32))
        return {"x": x, "y": _target(x)}


def make_cfg(out: Path, **over) -> dict:
    cfg = {
        "imports": ["test_train_engine"],
        "output": str(out),
        "model": {"name": "toy_mlp", "kwargs": {"hidden": 32, "dropout": 0.2}},
        "data": {
            "train": {"name": "toy_points", "kwargs": {"n": 64}},
            "val": {"name": "toy_points", "kwargs": {"n": 32, "seed": 1, "jitter": 0.0}},
            "batch_size": 8,
            "num_workers": 0,
        },
        "optim": {"name": "adam", "lr": 3e-3, "schedule": {"name": "multistep", "milestones": [2]}},
        "train": {"epochs": 3, "log_every": 5, "val_every": 10, "ckpt_every": 12, "seed": 3, "progress": "off",
                  "keep_last": 10},
    }
    for key, value in over.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


def params(path: Path) -> dict[str, torch.Tensor]:
    model, _ = load_model(path)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"data.num_workers": 2, "optim.schedule": {"name": "cosine", "warmup_epochs": 0.5, "start_epoch": 1}},
        {"data.train": {"name": "toy_stream", "kwargs": {"seed": 5}}, "train.steps_per_epoch": 8,
         "data.num_workers": 2, "train.grad_clip": 0.5},
        {"train.ema_decay": 0.9, "train.ema_warmup_steps": 4},
    ],
    ids=["multistep-w0", "cosine-w2", "stream-w2-clip", "ema"],
)
def test_exact_resume(tmp_path, over):
    """24 steps straight == 12 steps, checkpoint, resume in a new process state, 12 more steps."""
    straight = train(config_from_dict(make_cfg(tmp_path / "a", **over)))
    assert straight.step == 24
    mid = tmp_path / "a" / "checkpoints" / "step_00000012"
    assert read_card(mid)["step"] == 12
    torch.manual_seed(12345)  # a resumed run must not depend on the RNG it starts with
    resumed = train(config_from_dict(make_cfg(tmp_path / "b", **over)), resume=str(mid))
    assert resumed.step == 24
    pa, pb = params(tmp_path / "a" / "checkpoints" / "step_00000024"), params(tmp_path / "b" / "checkpoints" / "step_00000024")
    assert pa.keys() == pb.keys()
    for k in pa:
        torch.testing.assert_close(pb[k], pa[k], rtol=0, atol=1e-6)
    # and the run really moved: parameters differ from the mid-point ones
    assert not torch.allclose(params(mid)["net.0.weight"], pa["net.0.weight"])
    sa, sb = load_state(tmp_path / "a" / "checkpoints" / "step_00000024"), load_state(tmp_path / "b" / "checkpoints" / "step_00000024")
    torch.testing.assert_close(sa["rng"][0]["torch"], sb["rng"][0]["torch"])
    assert ("ema" in sa) == ("train.ema_decay" in over)
    if "ema" in sa:  # the live weights, which the run continues from, resumed exactly too
        assert sa["ema"]["updates"] == sb["ema"]["updates"] == 24
        for k, v in sa["ema"]["live_weights"].items():
            torch.testing.assert_close(sb["ema"]["live_weights"][k], v, rtol=0, atol=1e-6)


@pytest.mark.parametrize("emulated", [False, True])
def test_bf16_autocast_on_cpu(tmp_path, capsys, monkeypatch, emulated):
    """bf16 trains on the CPU; where the CPU has no native bf16 the run says it is emulated (slow)."""
    from handrecon.train import engine

    monkeypatch.setattr(engine, "cpu_bf16_is_emulated", lambda: emulated)
    cfg = make_cfg(tmp_path, **{"train.amp": "bf16", "train.max_steps": 6, "train.epochs": None, "train.progress": "plain"})
    res = train(config_from_dict(cfg))
    assert res.step == 6 and np.isfinite(res.metrics["mean_err"])
    assert ("bf16 on a CPU without native bf16" in capsys.readouterr().out) == emulated


def test_fp16_on_cpu_is_refused(tmp_path):
    from handrecon.train import ConfigError

    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        train(config_from_dict(make_cfg(tmp_path, **{"train.amp": "fp16", "train.device": "cpu"})))


def test_best_pointer_and_load_model(tmp_path):
    res = train(config_from_dict(make_cfg(tmp_path, **{"train.val_every": 4, "train.best_metric": "mean_err"})))
    rows = (tmp_path / "val_log.csv").read_text().splitlines()
    assert rows[0].split(",") == ["step", "epoch", "mean_err", "loss"] and len(rows) == 1 + 6
    errs = {int(r.split(",")[0]): float(r.split(",")[2]) for r in rows[1:]}
    best_step = min(errs, key=errs.get)
    assert res.best_checkpoint.name == f"step_{best_step:08d}"
    model, card = load_model(tmp_path)  # a run dir resolves to its best checkpoint
    assert card["step"] == best_step and card["architecture"] == "toy_mlp"
    assert card["inference"] == {"input_size": 4, "toy": True}  # the model's own spec, written by the trainer
    assert card["metrics"]["mean_err"] == pytest.approx(errs[best_step], rel=1e-3)
    assert not model.training
    header = (tmp_path / "train_log.csv").read_text().splitlines()[0].split(",")
    assert header == ["step", "epoch", "lr", "l1", "l2", "loss", "steps_per_s"]


def test_plain_progress_lines(tmp_path, capsys):
    train(config_from_dict(make_cfg(tmp_path, **{"train.progress": "plain", "train.max_steps": 10})))
    out = capsys.readouterr().out
    assert "step 5/10 epoch 0 lr 0.003" in out and "step 10/10 epoch 1" in out and "val @ step 10" in out


def test_rich_progress_runs(tmp_path, capsys):
    res = train(config_from_dict(make_cfg(tmp_path, **{"train.progress": "rich", "train.max_steps": 4})))
    assert res.step == 4 and "train" in capsys.readouterr().out


@register_model("toy_mlp_groups")
class ToyMLPGroups(ToyMLP):
    """First layer frozen, last layer at a tenth of the base lr through param_groups()."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.net[0].requires_grad_(False)

    def param_groups(self):
        return [{"params": self.net[3].parameters(), "lr": 3e-4}]


def test_param_groups_and_frozen_layers(tmp_path):
    start = ToyMLPGroups(hidden=32, dropout=0.2)
    res = train(config_from_dict(make_cfg(tmp_path, **{"model.name": "toy_mlp_groups", "train.max_steps": 4})))
    torch.manual_seed(3)
    assert torch.equal(res.model.net[0].weight, ToyMLPGroups(hidden=32, dropout=0.2).net[0].weight)
    assert not torch.equal(res.model.net[3].weight, start.net[3].weight)
    lrs = [float(r.split(",")[2]) for r in (tmp_path / "train_log.csv").read_text().splitlines()[1:]]
    assert lrs == [pytest.approx(3e-4)]


def test_init_from_starts_from_another_checkpoints_weights(tmp_path, capsys):
    """train.init_from: the weights of a finished run, a fresh optimizer and step count; the log says so."""
    first = train(config_from_dict(make_cfg(tmp_path / "a", **{"train.max_steps": 6, "train.epochs": None})))
    cfg = make_cfg(tmp_path / "b", **{"train.max_steps": 1, "train.epochs": None, "optim.lr": 1e-12,
                                      "train.init_from": str(first.last_checkpoint)})
    capsys.readouterr()
    second = train(config_from_dict(cfg))
    assert second.step == 1
    assert f"init_from {first.last_checkpoint}: loaded all" in capsys.readouterr().out
    a, b = params(first.last_checkpoint), params(second.last_checkpoint)
    for k in a:  # lr 1e-12: one step moves nothing measurable, so the start was the first run's weights
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
    bad = make_cfg(tmp_path / "c", **{"train.init_from": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match="train.init_from"):
        train(config_from_dict(bad))
    # other loss weights are the same model (checkpoint.same_model): every tensor loaded, no init_partial needed;
    # another width is not
    reweighted = make_cfg(tmp_path / "d", **{"train.max_steps": 1, "train.epochs": None, "train.init_from":
                                             str(first.last_checkpoint), "model.kwargs.loss_weights": {"l2": 3.0}})
    assert train(config_from_dict(reweighted)).step == 1
    assert f"init_from {first.last_checkpoint}: loaded all" in capsys.readouterr().out
    wider = make_cfg(tmp_path / "e", **{"train.init_from": str(first.last_checkpoint), "model.kwargs.hidden": 16})
    with pytest.raises(ConfigError, match="init_partial"):
        train(config_from_dict(wider))


@register_model("toy_pair")
class ToyPair(nn.Module):
    """Two toy MLPs read as one (their mean): an ensemble whose tensors are named ``members.i.``."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.members = nn.ModuleList(ToyMLP(hidden=hidden) for _ in range(2))
        self.loss_weights = self.members[0].loss_weights  # ToyMLP.loss reads them

    def forward(self, batch):
        return {"y": torch.stack([m(batch)["y"] for m in self.members]).mean(0)}

    def loss(self, outputs, batch):
        return ToyMLP.loss(self, outputs, batch)


def test_init_prefix_starts_from_one_member_of_an_ensemble(tmp_path, capsys):
    """train.init_prefix: a single model continues from one member of an ensemble checkpoint (the
    box verifier's members): exactly that member's weights, every tensor found; a prefix the
    checkpoint lacks, or one that leaves tensors missing, is a ConfigError naming the prefix."""
    pair = train(config_from_dict(make_cfg(tmp_path / "pair", **{"model.name": "toy_pair", "model.kwargs": {},
                                                                "train.max_steps": 4, "train.epochs": None})))
    member = {k[len("members.1."):]: v for k, v in params(pair.last_checkpoint).items() if k.startswith("members.1.")}
    cfg = make_cfg(tmp_path / "one", **{"train.max_steps": 1, "train.epochs": None, "optim.lr": 1e-12,
                                        "train.init_from": str(pair.last_checkpoint), "train.init_prefix": "members.1."})
    capsys.readouterr()
    one = train(config_from_dict(cfg))
    assert "copied 4 of the model's 4 tensors" in capsys.readouterr().out
    got = params(one.last_checkpoint)
    assert set(got) == set(member)
    for k in member:
        torch.testing.assert_close(got[k], member[k], rtol=0, atol=1e-6)
    other = {k[len("members.0."):]: v for k, v in params(pair.last_checkpoint).items() if k.startswith("members.0.")}
    assert not torch.allclose(other["net.0.weight"], member["net.0.weight"])  # the prefix chose the member
    for prefix, hidden, match in (("members.7.", 32, "no tensor .* is named 'members.7.'"), ("members.1.", 16, "not under")):
        bad = make_cfg(tmp_path / prefix, **{"train.init_from": str(pair.last_checkpoint), "train.init_prefix": prefix,
                                            "model.kwargs": {"hidden": hidden, "dropout": 0.2}})
        with pytest.raises(ConfigError, match=match):
            train(config_from_dict(bad))


@register_model("toy_conv")
class ToyConv(nn.Module):
    """(B, 3, 8, 8) image -> (B, 2); records whether each training batch and its weight arrived
    channels-last."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 2)
        self.layouts: list[tuple[bool, bool]] = []

    def forward(self, batch):
        image = batch["image"]
        if self.training:
            cl = torch.channels_last
            self.layouts.append((image.is_contiguous(memory_format=cl), self.conv.weight.is_contiguous(memory_format=cl)))
        return {"y": self.head(torch.relu(self.conv(image)).mean((2, 3)))}

    def loss(self, outputs, batch):
        l1 = (outputs["y"] - batch["y"]).abs().mean()
        return l1, {"l1": l1}


@register_dataset("toy_images")
class ToyImages(Dataset):
    def __init__(self, n: int = 32):
        g = np.random.default_rng(0)
        self.x = torch.from_numpy(g.normal(size=(n, 3, 8, 8)).astype(np.float32))
        self.y = torch.stack([self.x[:, 0].mean((1, 2)), self.x[:, 1].std((1, 2))], -1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return {"image": self.x[i], "y": self.y[i]}


def _conv_cfg(out: Path, **train_over) -> dict:
    return {"output": str(out), "model": {"name": "toy_conv"},
            "data": {"train": {"name": "toy_images"}, "batch_size": 8, "num_workers": 0},
            "optim": {"name": "adam", "lr": 1e-2},
            "train": {"max_steps": 8, "ckpt_every": 4, "log_every": 4, "seed": 1, "progress": "off", **train_over}}


def test_channels_last_trains_the_same_model(tmp_path):
    """`train.channels_last` changes the layout of the weights and image batches, not the maths: the
    same run in both layouts ends at the same weights, and a channels-last run resumes exactly."""
    plain = train(config_from_dict(_conv_cfg(tmp_path / "plain")))
    last = train(config_from_dict(_conv_cfg(tmp_path / "last", channels_last=True)))
    assert plain.step == last.step == 8
    pa, pb = params(tmp_path / "plain" / "checkpoints" / "step_00000008"), params(tmp_path / "last" / "checkpoints" / "step_00000008")
    assert not torch.allclose(params(tmp_path / "plain" / "checkpoints" / "step_00000004")["conv.weight"], pa["conv.weight"])
    for k in pa:
        torch.testing.assert_close(pb[k], pa[k], rtol=1e-4, atol=1e-5)
    resumed = train(config_from_dict(_conv_cfg(tmp_path / "resumed", channels_last=True)),
                    resume=str(tmp_path / "last" / "checkpoints" / "step_00000004"))
    pr = params(tmp_path / "resumed" / "checkpoints" / "step_00000008")
    for k in pb:
        torch.testing.assert_close(pr[k], pb[k], rtol=0, atol=1e-6)
    # the layout really changed: the model saw channels-last batches and weights
    trainer = Trainer(config_from_dict(_conv_cfg(tmp_path / "probe", channels_last=True)), init_distributed("cpu"))
    trainer.train_step(next(iter(trainer._loader(0, 0))))
    assert trainer.model.layouts == [(True, True)]


class _Scaled(nn.Module):
    """A weight and a BatchNorm (float running statistics, an integer batch counter)."""

    def __init__(self):
        super().__init__()
        self.lin, self.norm = nn.Linear(3, 2), nn.BatchNorm1d(2)


def test_weight_ema_follows_its_formula():
    """avg_n = d_n avg_{n-1} + (1 - d_n) w_n with d_n = decay (1 - exp(-n / warmup)); float buffers
    averaged, the integer batch counter copied; `applied` lends the average and gives the live weights back."""
    model = _Scaled()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    ema = WeightEMA(model, decay=0.8, warmup_steps=3)
    expected = start["lin.weight"].clone()
    expected_mean = start["norm.running_mean"].clone()
    for n in range(1, 6):
        with torch.no_grad():
            model.lin.weight.add_(torch.randn_like(model.lin.weight))
            model.norm.running_mean.add_(1.0)
            model.norm.num_batches_tracked += 2
        ema.update(model)
        d = 0.8 * (1 - math.exp(-n / 3))
        assert ema.decay_at(n) == pytest.approx(d)
        expected = d * expected + (1 - d) * model.lin.weight.detach()
        expected_mean = d * expected_mean + (1 - d) * model.norm.running_mean
        torch.testing.assert_close(ema.tensors["lin.weight"], expected)
        torch.testing.assert_close(ema.tensors["norm.running_mean"], expected_mean)
        assert int(ema.tensors["norm.num_batches_tracked"]) == 2 * n
    assert WeightEMA(model, 0.8).decay_at(1) == 0.8  # no warm-up: the decay itself
    live = model.lin.weight.detach().clone()
    with ema.applied(model):
        torch.testing.assert_close(model.lin.weight.detach(), expected)
    torch.testing.assert_close(model.lin.weight.detach(), live, rtol=0, atol=0)
    for decay in (0.0, 1.0):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            WeightEMA(model, decay)


def test_an_ema_run_validates_and_saves_the_average(tmp_path):
    """With train.ema_decay the checkpoint's weights are the average (not the live weights, which sit
    in the training state), its validation metrics are the average's, and the card says so."""
    cfg = make_cfg(tmp_path / "run", **{"train.ema_decay": 0.95, "train.max_steps": 12, "train.epochs": None,
                                        "train.val_every": 12, "data.val.kwargs.n": 16})
    res = train(config_from_dict(cfg))
    last = res.last_checkpoint
    card, state = read_card(last), load_state(last)
    assert card["ema"] == {"decay": 0.95, "warmup_steps": 0, "updates": 12}
    model, _ = load_model(last)
    saved = dict(model.state_dict())
    live = state["ema"]["live_weights"]
    assert not torch.allclose(saved["net.0.weight"], live["net.0.weight"])  # the file holds the average
    val = ToyPoints(n=16, seed=1, jitter=0.0)
    batch = {"x": torch.stack([val[i]["x"] for i in range(16)]), "y": torch.stack([val[i]["y"] for i in range(16)])}
    with torch.no_grad():
        err = (model(batch)["y"] - batch["y"]).norm(dim=-1).mean().item()
    assert card["metrics"]["mean_err"] == pytest.approx(err, rel=1e-5)  # validated on the average
    for k, v in res.model.state_dict().items():  # the returned model holds the average too
        torch.testing.assert_close(v, saved[k])


def test_resume_across_an_ema_setting_is_refused(tmp_path):
    plain = train(config_from_dict(make_cfg(tmp_path / "plain", **{"train.max_steps": 4, "train.epochs": None})))
    averaged = make_cfg(tmp_path / "avg", **{"train.max_steps": 8, "train.epochs": None, "train.ema_decay": 0.9})
    with pytest.raises(CheckpointError, match="without a weight average"):
        train(config_from_dict(averaged), resume=str(plain.last_checkpoint))
    first = train(config_from_dict(averaged))
    with pytest.raises(CheckpointError, match="with a weight average .* does not"):
        train(config_from_dict(make_cfg(tmp_path / "b", **{"train.max_steps": 12, "train.epochs": None})),
              resume=str(first.last_checkpoint))
