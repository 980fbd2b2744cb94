"""Training configuration: YAML → typed dataclasses and command-line overrides. The names in a
config (``model.name``, ``data.train.name``) are looked up in `handrecon.registry`.

The schema is documented in ``configs/README.md``. Loading is strict: an unknown key, a wrong type
or a missing required value raises :class:`ConfigError` naming the key and where it came from
(the YAML file or the command line).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from handrecon.registry import ConfigError
from handrecon.utils.io import atomic_open


# --------------------------------------------------------------------------- schema


@dataclass
class ModelConfig:
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetSpec:
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    train: DatasetSpec
    val: DatasetSpec | None = None
    batch_size: int = 32
    val_batch_size: int | None = None
    num_workers: int = 0


@dataclass
class ScheduleConfig:
    name: Literal["constant", "multistep", "cosine"] = "constant"
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    start_epoch: float = 0.0
    min_lr_ratio: float = 0.0


@dataclass
class OptimConfig:
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


@dataclass
class TrainConfig:
    epochs: int | None = None
    max_steps: int | None = None
    steps_per_epoch: int | None = None
    log_every: int = 50
    val_every: Union[int, Literal["epoch"]] = "epoch"
    ckpt_every: Union[int, Literal["epoch"]] = "epoch"
    keep_last: int = 3
    best_metric: str = "loss"
    best_mode: Literal["min", "max"] = "min"
    seed: int = 0
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"
    grad_clip: float | None = None
    ema_decay: float | None = None
    ema_warmup_steps: int = 0
    channels_last: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: Literal["auto", "rich", "plain", "off"] = "auto"
    init_from: str | None = None
    init_partial: bool = False
    init_prefix: str = ""


@dataclass
class Config:
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: str | None = None
    imports: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- loading


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config, apply ``dotted.key=value`` overrides (values parsed as YAML) and validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (or is not a file)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    cfg = config_from_dict(raw, source=str(path), overrides=overrides)
    if cfg.output is None:
        cfg.output = str(Path("runs") / path.stem)
    return cfg


def config_from_dict(raw: dict[str, Any], source: str = "<dict>", overrides: list[str] | None = None) -> Config:
    """Validate a nested dict (plus overrides) into a :class:`Config`."""
    try:
        raw = _deep_copy(raw)
    except RecursionError:
        raise ConfigError(f"{source}: the config refers to itself (a YAML alias inside its own anchor) or is "
                          "nested too deeply") from None
    overridden: set[str] = set()
    for item in overrides or []:
        key, value = parse_override(item)
        _set_dotted(raw, key, value)
        overridden.add(key)
    cfg = _build(Config, raw, "", source, overridden)
    _check_ranges(cfg, source, overridden)
    return cfg


def _check_ranges(cfg: Config, source: str, overridden: set[str]) -> None:
    """Values that type-check but make no sense (a zero batch size, a negative learning rate)."""
    t = cfg.train
    rules = [
        ("data.batch_size", cfg.data.batch_size, 1),
        ("data.val_batch_size", cfg.data.val_batch_size, 1),
        ("data.num_workers", cfg.data.num_workers, 0),
        ("train.epochs", t.epochs, 1),
        ("train.max_steps", t.max_steps, 1),
        ("train.steps_per_epoch", t.steps_per_epoch, 1),
        ("train.log_every", t.log_every, 1),
        ("train.val_every", None if t.val_every == "epoch" else t.val_every, 1),
        ("train.ckpt_every", None if t.ckpt_every == "epoch" else t.ckpt_every, 1),
        ("train.keep_last", t.keep_last, 0),
        ("train.grad_clip", t.grad_clip, 1e-12),
        ("train.ema_warmup_steps", t.ema_warmup_steps, 0),
        ("optim.lr", cfg.optim.lr, 1e-300),
    ]
    for key, value, low in rules:
        if value is not None and value < low:
            bound = "positive" if low in (1e-12, 1e-300) else f">= {low}"
            raise ConfigError(f"{_where(key, source, overridden)}: must be {bound}, got {value!r}")
    if t.ema_decay is not None and not 0.0 < t.ema_decay < 1.0:
        raise ConfigError(f"{_where('train.ema_decay', source, overridden)}: must lie strictly between 0 and 1 "
                          f"(e.g. 0.999; null: no average), got {t.ema_decay!r}")


def parse_override(item: str) -> tuple[str, Any]:
    """``"optim.lr=1e-4"`` → ``("optim.lr", "1e-4")``; the value is parsed as YAML (``8`` → int)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r} must look like section.key=value (e.g. optim.lr=1e-4)")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: value is not valid YAML: {e}") from e
    return key, value


def _set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override {key}: {'.'.join(parts[: i + 1])} is not a section")
        node = child
    node[parts[-1]] = value


def _deep_copy(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _deep_copy(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_deep_copy(v) for v in x]
    return x


def _where(key: str, source: str, overridden: set[str]) -> str:
    origin = "command-line override" if any(key == o or key.startswith(o + ".") for o in overridden) else source
    return f"{origin}: {key}"


def _build(cls: type, raw: Any, prefix: str, source: str, overridden: set[str]) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{_where(prefix or '<top>', source, overridden)}: expected a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(
            f"{_where(key, source, overridden)}: unknown key; allowed in "
            f"{prefix.rstrip('.') or 'the top level'}: {', '.join(fields)}"
        )
    values = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{_where(key, source, overridden)}: required key is missing")
            continue
        values[name] = _check(hints[name], raw[name], key, source, overridden)
    return cls(**values)


def _check(tp: Any, value: Any, key: str, source: str, overridden: set[str]) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check(arg, value, key, source, overridden)
            except ConfigError as e:
                errors.append(str(e).rsplit(": ", 1)[-1].rsplit(", got ", 1)[0])
        raise ConfigError(f"{_where(key, source, overridden)}: {' or '.join(errors)}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".", source, overridden)
    if origin is Literal:
        word = "on" if value else "off"
        if isinstance(value, bool) and word in args:
            value = word  # YAML 1.1 reads a bare `off` (`on`) as a boolean
        if value not in args:
            raise ConfigError(f"{_where(key, source, overridden)}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{_where(key, source, overridden)}: expected a list, got {value!r}")
        return [_check(args[0], v, f"{key}[{i}]", source, overridden) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{_where(key, source, overridden)}: expected a mapping with string keys, got {value!r}")
        return value
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, tp):
        return value
    raise ConfigError(f"{_where(key, source, overridden)}: expected {tp.__name__}, got {value!r}")


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    with atomic_open(path, "w") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)
