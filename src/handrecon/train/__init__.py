"""handrecon.train: the generic training engine (see :mod:`handrecon.train.engine` for the
model/dataset protocol and ``configs/README.md`` for the config schema)."""

from handrecon.train.checkpoint import CheckpointError, load_model
from handrecon.train.config import (
    DATASETS,
    MODELS,
    Config,
    ConfigError,
    config_from_dict,
    load_config,
    register_dataset,
    register_model,
)
from handrecon.train.distributed import SeededStream, sample_rng
from handrecon.train.engine import TrainResult, train

__all__ = [
    "DATASETS",
    "MODELS",
    "CheckpointError",
    "Config",
    "ConfigError",
    "SeededStream",
    "TrainResult",
    "config_from_dict",
    "load_config",
    "load_model",
    "register_dataset",
    "register_model",
    "sample_rng",
    "train",
]
