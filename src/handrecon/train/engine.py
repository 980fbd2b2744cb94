"""The training engine shared by every model in handrecon (M3DHMR, HandOS, ...).

Protocol — what a model or dataset provides to plug in, without editing this file:

* **Model**: an ``nn.Module`` registered with ``@handrecon.registry.register_model("name")``; built as
  ``factory(**model.kwargs)``.

  - ``forward(batch) -> outputs``: ``batch`` is what the DataLoader yields, moved to the device
    (tensors inside dicts/lists/tuples are moved).
  - ``loss(outputs, batch) -> (total, terms)``: ``total`` a scalar tensor to minimise, ``terms`` a
    ``{name: scalar tensor}`` dict that is logged (averaged over ranks and ``log_every`` steps).
  - optional ``validate(batches) -> {metric: float}``: consumes an iterable of device batches of
    the validation set (run under ``no_grad`` and autocast, model in eval mode) and returns the
    task's metrics. Without it the engine reports the mean loss terms.
  - optional ``param_groups() -> list[dict]``: optimizer parameter groups (e.g. a smaller
    ``lr`` for a backbone); default: every parameter with ``requires_grad``.
  - optional ``inference_spec() -> dict``: what serving the model needs (input size,
    normalisation, crop or letterbox rule, hand model, topology hash; see
    `handrecon.models.adapter`), written into every checkpoint card as ``inference``.

* **Dataset**: registered with ``@register_dataset("name")``, built as ``factory(**kwargs)``.
  Either map-style (``__len__``/``__getitem__``; shuffled by a resumable ``DistributedSampler``;
  for random augmentation draw from ``sample_rng(seed, epoch, index)``, with the epoch received
  through an optional ``set_epoch(epoch)``), or an ``IterableDataset`` for endless on-the-fly
  data (subclass :class:`~handrecon.data.stream.SeededStream`; ``train.steps_per_epoch``
  is then required). An optional ``collate(list_of_samples) -> batch`` replaces the default
  collate. The validation set must be finite (map-style, or an iterable that ends).

Run: ``handrecon train CONFIG.yaml [key=value ...]``, or ``torchrun --nproc_per_node=N -m
handrecon.cli train CONFIG.yaml`` for DistributedDataParallel. Only rank 0 writes logs and
checkpoints; validation runs on rank 0 over the whole validation set while the others wait.

Weight average (``train.ema_decay``): an exponential moving average of the weights follows every
step (`handrecon.train.ema`); validation, the best pointer and each checkpoint's ``model.safetensors``
are the average's (what evaluation, packaging and ``init_from`` then read), the live weights travel
in the training state, and the card says so (``ema``).

Exact resume: the position is the global step; the epoch and the batch within it follow from it,
the sampler skips the consumed indices, the DataLoader's own generator is seeded per (epoch, rank),
and the model/optimizer/schedule/scaler/RNG states come back from the checkpoint, so a resumed run
continues with the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import gc
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, IterableDataset

import handrecon.checkpoint as ckpt
from handrecon.registry import DATASETS, MODELS, ConfigError, import_modules
from handrecon.train.config import Config, save_config
from handrecon.train.distributed import (
    DistInfo,
    ResumableDistributedSampler,
    all_gather_object,
    all_reduce_mean,
    barrier,
    broadcast_object,
    end_group,
    init_distributed,
)
from handrecon.train.ema import STATE_KEY as EMA_KEY, WeightEMA
from handrecon.train.log import RunLogger
from handrecon.utils.cpu_features import cpu_bf16_is_emulated

# --------------------------------------------------------------------------- small pieces


def _built(key: str, build: Any) -> Any:
    """`build()`, with a model's or dataset's own argument errors (a missing data folder, a negative
    width) turned into a ConfigError naming the config section."""
    try:
        return build()
    except ConfigError:
        raise
    except (ValueError, TypeError, RuntimeError, OSError) as e:  # includes DatasetError
        raise ConfigError(f"{key}: {e}") from None


class LRSchedule:
    """Learning rate as a function of the global step (epochs may be fractional).

    * ``constant``: base lr.
    * ``multistep``: base lr × gamma^(number of milestones ≤ current epoch) — M3DHMR: ÷10 at epoch 30 of 38.
    * ``cosine``: base lr until ``start_epoch``, then cosine to ``min_lr_ratio`` × base lr at the
      end of training — HandOS: cosine from epoch 25 of 40.

    Both take an optional linear warm-up over the first ``warmup_epochs``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: Any, steps_per_epoch: int, total_steps: int):
        self.opt, self.cfg = optimizer, cfg
        self.spe, self.total = steps_per_epoch, total_steps
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]

    def factor(self, step: int) -> float:
        c, epoch = self.cfg, step / self.spe
        f = 1.0
        if c.name == "multistep":
            f = c.gamma ** sum(step >= m * self.spe for m in c.milestones)
        elif c.name == "cosine":
            start, end = c.start_epoch * self.spe, self.total
            if step > start and end > start:
                t = min((step - start) / (end - start), 1.0)
                f = c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
        if c.warmup_epochs > 0 and epoch < c.warmup_epochs:
            f *= (step + 1) / (c.warmup_epochs * self.spe)
        return f

    def apply(self, step: int) -> float:
        """Set the learning rates for the step about to be taken; returns the first group's lr."""
        f = self.factor(step)
        for g, base in zip(self.opt.param_groups, self.base_lrs):
            g["lr"] = base * f
        return self.opt.param_groups[0]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": list(self.base_lrs), "steps_per_epoch": self.spe, "total_steps": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base_lrs = list(state["base_lrs"])


def build_optimizer(params: Any, cfg: Any, fused: bool = False) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` (OptimConfig); ``fused``: PyTorch's fused Adam/AdamW update (for
    parameters on a CUDA device), fewer kernel launches than the default multi-tensor one."""
    adam = dict(lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, fused=fused or None)  # None: torch's default
    if cfg.name == "adam":
        return torch.optim.Adam(params, **adam)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, **adam)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def to_device(x: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor inside nested dicts/lists/tuples to ``device``; with ``channels_last``,
    4-D floating tensors (image batches, N C H W) are laid out channels-last too (same values)."""
    if isinstance(x, torch.Tensor):
        x = x.to(device, non_blocking=True)
        if channels_last and x.dim() == 4 and x.is_floating_point():
            x = x.contiguous(memory_format=torch.channels_last)
        return x
    if isinstance(x, dict):
        return {k: to_device(v, device, channels_last) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, device, channels_last) for v in x)
    return x


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``train.amp`` on ``device`` (None: full precision)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp: fp16 needs a CUDA device; use bf16 or off on the CPU")
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if amp == "fp16" else torch.bfloat16


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (validation) without disturbing the training RNG streams."""
    state = ckpt.rng_state()
    try:
        yield
    finally:
        ckpt.set_rng_state(state)


def _is_due(every: int | str, step: int, end_of_epoch: bool) -> bool:
    return end_of_epoch if every == "epoch" else (every > 0 and step % every == 0)


def mean_loss_terms(model: torch.nn.Module, batches: Any) -> dict[str, float]:
    """Default validation: loss terms averaged over the validation set (weighted by batches)."""
    sums: dict[str, float] = {}
    n = 0
    for batch in batches:
        total, terms = model.loss(model(batch), batch)
        for k, v in {"loss": total, **terms}.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n += 1
    return {k: v / max(n, 1) for k, v in sums.items()}


# --------------------------------------------------------------------------- trainer


@dataclass
class TrainResult:
    """What :func:`train` returns on every rank; ``metrics`` (last validation) are filled on rank 0. With
    ``train.ema_decay`` ``model`` holds the weight average (the last checkpoint's weights)."""

    run_dir: Path
    model: torch.nn.Module
    rank: int
    step: int
    metrics: dict[str, float]
    last_checkpoint: Path | None
    best_checkpoint: Path | None


class Trainer:
    """Builds everything from a :class:`Config` and runs the loop. Use :func:`train` normally."""

    def __init__(self, cfg: Config, dist_info: DistInfo):
        self.cfg, self.dist = cfg, dist_info
        self.run_dir = Path(cfg.output or "runs/default")  # the same default as train()
        self.ckpt_root = self.run_dir / "checkpoints"
        self.device = dist_info.device
        import_modules(cfg.imports)
        seed_everything(cfg.train.seed)  # same initial weights on every rank
        self.model: torch.nn.Module = _built("model", lambda: MODELS.build(cfg.model.name, **cfg.model.kwargs))
        self.init_note: str | None = None
        self.uncomputed: set[str] = set()  # validation metrics the model could not compute (None)
        if cfg.train.init_from:
            self._init_weights(cfg.train.init_from)
        self.model.to(self.device)
        if cfg.train.channels_last:  # 4-D weights N C H W -> N H W C (a speed lever; same values)
            self.model.to(memory_format=torch.channels_last)
        self.ema = (WeightEMA(self.model, cfg.train.ema_decay, cfg.train.ema_warmup_steps)
                    if cfg.train.ema_decay is not None else None)
        if not callable(getattr(self.model, "loss", None)):
            raise ConfigError(f"model {cfg.model.name!r} has no loss(outputs, batch) method (see handrecon.train.engine)")
        # from here on each rank draws its own stream (dropout, augmentation in the main process)
        seed_everything(int(np.random.SeedSequence([cfg.train.seed, dist_info.rank]).generate_state(1)[0]))
        self.train_set = _built("data.train", lambda: DATASETS.build(cfg.data.train.name, **cfg.data.train.kwargs))
        self.val_set = (_built("data.val", lambda: DATASETS.build(cfg.data.val.name, **cfg.data.val.kwargs))
                        if cfg.data.val else None)
        self.iterable = isinstance(self.train_set, IterableDataset)
        self.steps_per_epoch = self._steps_per_epoch()
        t = cfg.train
        if t.epochs is None and t.max_steps is None:
            raise ConfigError("train: set train.epochs or train.max_steps")
        totals = [t.epochs * self.steps_per_epoch] if t.epochs is not None else []
        self.total_steps = min(totals + ([t.max_steps] if t.max_steps is not None else []))
        groups = getattr(self.model, "param_groups", None)
        params = groups() if callable(groups) else [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(params, cfg.optim, fused=self.device.type == "cuda")
        self.schedule = LRSchedule(self.optimizer, cfg.optim.schedule, self.steps_per_epoch, self.total_steps)
        self.amp = amp_dtype(t.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)
        self.ddp = (
            DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if dist_info.distributed
            else self.model
        )
        self.step = 0
        self.metrics: dict[str, float] = {}
        self.best: float | None = None

    # ---- data

    def _steps_per_epoch(self) -> int:
        cfg, d = self.cfg, self.dist
        if self.iterable:
            if not cfg.train.steps_per_epoch:
                raise ConfigError("train.steps_per_epoch is required when the training dataset is an IterableDataset")
            return cfg.train.steps_per_epoch
        n = len(self.train_set)
        per_rank = math.ceil(n / d.world_size) // cfg.data.batch_size
        if per_rank == 0:
            raise ConfigError(
                f"training dataset has {n} samples: less than one batch of {cfg.data.batch_size} per rank "
                f"on {d.world_size} rank(s); lower data.batch_size"
            )
        return min(per_rank, cfg.train.steps_per_epoch or per_rank)

    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        cfg, d = self.cfg, self.dist
        bs = cfg.data.batch_size
        seq = np.random.SeedSequence([cfg.train.seed, epoch, d.rank])
        gen = torch.Generator().manual_seed(int(seq.generate_state(1, np.uint64)[0] >> 1))
        common = dict(
            batch_size=bs,
            num_workers=cfg.data.num_workers,
            collate_fn=getattr(self.train_set, "collate", None),
            pin_memory=self.device.type == "cuda",
            generator=gen,
        )
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        if self.iterable:
            if hasattr(self.train_set, "set_position"):
                self.train_set.set_position(epoch, start_batch, bs)
            return DataLoader(self.train_set, **common)
        sampler = ResumableDistributedSampler(
            self.train_set, num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=cfg.train.seed
        )
        sampler.set_epoch(epoch)
        sampler.set_start(start_batch * bs)
        return DataLoader(self.train_set, sampler=sampler, drop_last=True, **common)

    def _val_batches(self) -> Iterator[Any]:
        cfg = self.cfg
        loader = DataLoader(
            self.val_set,
            batch_size=cfg.data.val_batch_size or cfg.data.batch_size,
            num_workers=cfg.data.num_workers,
            collate_fn=getattr(self.val_set, "collate", None),
            shuffle=False,
            generator=torch.Generator().manual_seed(cfg.train.seed),
        )
        for batch in loader:
            yield to_device(batch, self.device, self.cfg.train.channels_last)

    def _averaged(self) -> contextlib.AbstractContextManager:
        """The model holding the weight average inside the block (live weights without one)."""
        return self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    # ---- state

    def card(self) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "architecture": cfg.model.name,
            "kwargs": cfg.model.kwargs,
            "inference": self.model.inference_spec() if hasattr(self.model, "inference_spec") else None,
            "imports": cfg.imports,
            "config": cfg.to_dict(),
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.dist.world_size,
            "metrics": self.metrics,
            **({"ema": self.ema.card()} if self.ema is not None else {}),
        }

    def save(self, best: bool = False) -> Path:
        """Collective: every rank contributes its RNG state, rank 0 writes."""
        rngs = all_gather_object(ckpt.rng_state())
        barrier()
        path = self.ckpt_root / f"step_{self.step:08d}"
        if self.dist.is_main:
            state = {
                "step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rngs,
                "best": self.best,
            }
            if self.ema is not None:  # the file's weights are the average; the live ones resume the run
                state[EMA_KEY] = self.ema.saved_state(ckpt.model_tensors(self.model))
            with self._averaged():
                ckpt.save_checkpoint(path, self.model, state, self.card())
            ckpt.write_pointer(self.ckpt_root, "last", path, step=self.step)
            if best:
                ckpt.write_pointer(self.ckpt_root, "best", path, step=self.step, metric=self.cfg.train.best_metric,
                                   value=self.best)
            ckpt.prune_checkpoints(self.ckpt_root, self.cfg.train.keep_last)
        barrier()
        return path

    def _init_weights(self, path: str | Path) -> None:
        """Start from the weights of another checkpoint of the same model (`checkpoint.same_model`:
        its loss weights may differ) (fine-tuning); the optimizer, schedule and step start fresh. A
        resumed run then overrides them.

        With ``train.init_partial`` the kwargs, even the architecture, may differ (HandOS's 3D stage
        starts from its 2D model; the detector's side head from M3DHMR's first stack): every tensor
        whose name and shape match is copied, the rest keep their fresh initialisation, and the
        counts are logged; no matching tensor at all is an error.

        With ``train.init_prefix`` only the checkpoint's tensors under that name prefix are read, the
        prefix removed (one member of an ensemble: ``members.0.``); without ``init_partial`` every
        tensor of the model must then be found there."""
        prefix = self.cfg.train.init_prefix
        try:
            d = ckpt.resolve_checkpoint(path)
            card = ckpt.read_card(d, verify=True, files=(ckpt.MODEL_FILE,))  # the weights; no training state needed
        except ckpt.CheckpointError as e:
            raise ConfigError(f"train.init_from: {e}") from None
        same = not prefix and ckpt.same_model(card.get("architecture"), card.get("kwargs"), self.cfg.model.name,
                                              self.cfg.model.kwargs)
        if not (same or prefix or self.cfg.train.init_partial):
            raise ConfigError(f"train.init_from: {d} is a {card.get('architecture')!r} model with kwargs "
                              f"{card.get('kwargs')}; the config builds {self.cfg.model.name!r} with {self.cfg.model.kwargs}"
                              " (set train.init_partial: true to copy the tensors that fit)")
        try:
            if same:
                ckpt.load_weights(self.model, d)
                self.init_note = f"init_from {d}: loaded all {len(self.model.state_dict())} tensors (the same model)"
                return
            tensors = ckpt.load_tensors(d / ckpt.MODEL_FILE, prefix)
        except ckpt.CheckpointError as e:
            raise ConfigError(f"train.init_from: {e}") from None
        if prefix and not tensors:
            raise ConfigError(f"train.init_prefix: no tensor of {d} is named {prefix!r}...; "
                              "check the prefix against the checkpoint's tensor names")
        own = self.model.state_dict()
        fit = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape}
        if not fit:
            raise ConfigError(f"train.init_from: no tensor of {d} fits the model (names and shapes differ)")
        if prefix and not self.cfg.train.init_partial and len(fit) < len(own):
            missing = sorted(set(own) - set(fit))
            raise ConfigError(f"train.init_prefix: {len(missing)} of the model's tensors are not under {prefix!r} in "
                              f"{d} with the model's shapes (first: {missing[0]}); set train.init_partial: true "
                              "to copy only those that fit")
        self.model.load_state_dict(fit, strict=False)
        self.init_note = (f"init_from {d}: copied {len(fit)} of the model's {len(own)} tensors "
                          f"({len(tensors) - len(fit)} of the checkpoint's did not fit)")

    def restore(self, path: str | Path) -> None:
        d = ckpt.resolve_checkpoint(path)
        card = ckpt.read_card(d, verify=True)
        if card.get("architecture") != self.cfg.model.name:
            raise ckpt.CheckpointError(
                f"{d}: checkpoint is a {card.get('architecture')!r} model, the config builds {self.cfg.model.name!r}"
            )
        if card.get("steps_per_epoch") != self.steps_per_epoch:
            raise ckpt.CheckpointError(
                f"{d}: saved with {card.get('steps_per_epoch')} steps per epoch, this config gives "
                f"{self.steps_per_epoch} (batch size, dataset or rank count changed); resume with the same setup"
            )
        ckpt.load_weights(self.model, d)
        state = ckpt.load_state(d)
        if (EMA_KEY in state) != (self.ema is not None):
            raise ckpt.CheckpointError(
                f"{d}: saved {'with' if EMA_KEY in state else 'without'} a weight average (train.ema_decay), this "
                f"config {'sets one' if self.ema is not None else 'does not'}; resume with the same setup")
        if self.ema is not None:
            self.ema.resume(self.model, state[EMA_KEY])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.best = state["step"], state["best"]
        self.metrics = card.get("metrics", {})
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            ckpt.set_rng_state(rngs[self.dist.rank])
        else:  # a different process count: fresh, still distinct per-rank streams
            seed_everything(int(np.random.SeedSequence([self.cfg.train.seed, self.dist.rank, self.step]).generate_state(1)[0]))

    # ---- loop

    def validate(self) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.dist.is_main and self.val_set is not None:
            self.model.eval()
            with preserved_rng(), torch.no_grad(), self._averaged(), self._autocast():
                fn = getattr(self.model, "validate", None)
                raw = fn(self._val_batches()) if callable(fn) else mean_loss_terms(self.model, self._val_batches())
            metrics = {k: float(v) for k, v in raw.items() if v is not None}
            self.uncomputed = {k for k, v in raw.items() if v is None}  # e.g. no hand matched yet
            self.model.train()
        barrier()
        return metrics

    def train_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor | None]:
        batch = to_device(batch, self.device, self.cfg.train.channels_last)
        with self._autocast():
            outputs = self.ddp(batch)
            total, terms = self.model.loss(outputs, batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        grad_norm = None
        if self.cfg.train.grad_clip:
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        return total.detach(), {k: v.detach().float() for k, v in terms.items()}, grad_norm

    def fit(self, log: RunLogger) -> TrainResult:
        t, spe = self.cfg.train, self.steps_per_epoch
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        n_acc = 0
        while self.step < self.total_steps:
            epoch, start = divmod(self.step, spe)
            step_before = self.step
            for batch in self._loader(epoch, start):
                lr = self.schedule.apply(self.step)
                total, terms, grad_norm = self.train_step(batch)
                self.step += 1
                n_acc += 1
                for k, v in {"loss": total.float(), **terms, **({"grad_norm": grad_norm} if grad_norm is not None else {})}.items():
                    sums[k] = sums.get(k, 0) + v
                end_of_epoch = self.step % spe == 0
                finished = self.step >= self.total_steps
                log.advance(self.step)
                if self.step % t.log_every == 0 or finished:
                    names = sorted(sums)
                    means = all_reduce_mean(torch.stack([sums[k] for k in names]) / n_acc).tolist()
                    scalars = {"lr": lr, **dict(zip(names, means))}
                    if not math.isfinite(scalars["loss"]):
                        raise FloatingPointError(f"loss is not finite at step {self.step}: {scalars}")
                    log.log_train(self.step, epoch, scalars)
                    sums, n_acc = {}, 0
                improved = False
                if self.val_set is not None and (_is_due(t.val_every, self.step, end_of_epoch) or finished):
                    self.metrics = self.validate()
                    improved = broadcast_object(self._update_best())
                    log.log_val(self.step, epoch, self.metrics)
                if improved or finished or _is_due(t.ckpt_every, self.step, end_of_epoch):
                    self.save(best=improved)
                if end_of_epoch or finished:
                    break
            if self.step == step_before:
                raise RuntimeError(f"the training DataLoader yielded no batch in epoch {epoch}")
        if self.ema is not None:  # the run's weights are the average, as its checkpoints' are
            self.model.load_state_dict(self.ema.tensors)
        return TrainResult(
            self.run_dir, self.model, self.dist.rank, self.step, self.metrics,
            ckpt.read_pointer(self.ckpt_root, "last"), ckpt.read_pointer(self.ckpt_root, "best"),
        )

    def _update_best(self) -> bool:
        """Broadcast-free: only rank 0 has metrics, and only rank 0 writes the best pointer."""
        key = self.cfg.train.best_metric
        if not self.dist.is_main:
            return False
        if key in self.uncomputed:
            return False
        if key not in self.metrics:
            raise ConfigError(f"train.best_metric {key!r} is not among the validation metrics {sorted(self.metrics)}")
        v = self.metrics[key]
        better = self.best is None or (v < self.best if self.cfg.train.best_mode == "min" else v > self.best)
        if better:
            self.best = v
        return better


def train(cfg: Config, resume: str | None = None) -> TrainResult:
    """Train from a config. ``resume``: None (fresh run), ``"auto"`` (last complete checkpoint in
    the run dir, or fresh if there is none) or a checkpoint path. Works under torchrun."""
    run_dir = Path(cfg.output or "runs/default")
    skipped: list[str] = []
    if resume == "auto":
        found = ckpt.find_last_checkpoint(run_dir, skipped)
        resume = str(found) if found is not None else None
    elif resume is None and ckpt.list_checkpoints(run_dir / "checkpoints"):
        raise ConfigError(f"{run_dir} already holds checkpoints; pass --resume auto to continue it or --out NEW_DIR")
    elif resume is not None:
        ckpt.read_card(ckpt.resolve_checkpoint(resume), verify=True)
    dist_info = init_distributed(cfg.train.device)
    stale = ckpt.remove_stale_temporaries(run_dir / "checkpoints") if dist_info.is_main else []
    log, trainer = None, None
    try:
        trainer = Trainer(cfg, dist_info)
        if resume is not None:
            trainer.restore(resume)
        if dist_info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, run_dir / "config.yaml")
        log = RunLogger(run_dir if dist_info.is_main else None, trainer.total_steps, trainer.step, cfg.train.progress)
        for reason in skipped:
            log.message(f"warning: passed over a newer checkpoint: {reason}")
        if stale:
            log.message(f"removed {len(stale)} leftover(s) of interrupted checkpoint writes: "
                        f"{', '.join(p.name for p in stale)}")
        if resume is not None:
            log.message(f"resumed from {resume} at step {trainer.step}")
        if trainer.init_note:
            log.message(trainer.init_note)
        if trainer.amp == torch.bfloat16 and dist_info.device.type == "cpu" and cpu_bf16_is_emulated():
            log.message("warning: train.amp bf16 on a CPU without native bf16 (AVX512-BF16 or AMX) is emulated and "
                        "can be an order of magnitude slower than full precision here; set train.amp=off")
        log.message(
            f"training {cfg.model.name} on {dist_info.world_size} process(es), device {dist_info.device}, "
            f"{trainer.steps_per_epoch} steps/epoch, {trainer.total_steps} steps; run dir {run_dir}"
        )
        result = trainer.fit(log)
        barrier()  # every rank is past its last collective before any rank tears its group down
        return result
    finally:
        if log is not None:
            log.close()
        # Drop the trainer (its DistributedDataParallel wrapper holds the process group) and collect
        # reference cycles before destroying the group, all while the interpreter is alive: a gloo
        # group freed during interpreter finalisation can abort a rank after its work is done
        # (SIGABRT, "terminate called without an active exception"), failing a finished torchrun job.
        trainer = None
        gc.collect()
        end_group()
