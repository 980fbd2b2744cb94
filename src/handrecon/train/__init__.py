"""handrecon.train: the generic training engine (see :mod:`handrecon.train.engine` for the
model/dataset protocol and ``configs/README.md`` for the config schema). Models and datasets
register in `handrecon.registry`; checkpoints are `handrecon.checkpoint`."""

from handrecon.registry import ConfigError
from handrecon.train.config import Config, config_from_dict, load_config
from handrecon.train.engine import TrainResult, train

__all__ = ["Config", "ConfigError", "TrainResult", "config_from_dict", "load_config", "train"]
