"""Every recipe in configs/ loads, passes the config checks and builds its model."""

from __future__ import annotations

from pathlib import Path

import pytest

from handrecon.train.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_exist():
    assert {p.name for p in CONFIGS} >= {"m3dhmr_cpu.yaml", "m3dhmr_paper.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_builds_its_model(path):
    import handrecon.models.m3dhmr.data  # noqa: F401  (registers the datasets)
    import handrecon.models.m3dhmr  # noqa: F401  (registers the model)
    from handrecon.registry import DATASETS, MODELS

    cfg = load_config(path)
    DATASETS.get(cfg.data.train.name)  # raises on an unknown name
    if cfg.data.val is not None:
        DATASETS.get(cfg.data.val.name)
    model = MODELS.build(cfg.model.name, **cfg.model.kwargs)
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
    if cfg.model.name == "m3dhmr":  # the recipe's loss weights reach the model (heatmap guidance, §3.1)
        assert model.criterion.weights["heatmap"] == cfg.model.kwargs.get("loss_weights", {}).get("heatmap", 0.0)
    if cfg.model.name == "hand_detector":  # the data's input size is the model's (the frozen detector's preprocessing)
        assert cfg.data.train.kwargs["input_size"] == cfg.model.kwargs["input_size"] == cfg.data.val.kwargs["input_size"]
    if cfg.train.init_from:  # a fine-tuning recipe starts from a checkpoint of the same model
        import json

        card = json.loads((Path(__file__).resolve().parents[1] / cfg.train.init_from / "card.json").read_text())
        assert card["architecture"] == cfg.model.name and card["kwargs"] == cfg.model.kwargs
