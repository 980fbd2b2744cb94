"""Every recipe in configs/ loads, passes the config checks and builds its model."""

from __future__ import annotations

from pathlib import Path

import pytest

from handrecon.train.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_exist():
    assert {p.name for p in CONFIGS} >= {"m3dhmr_cpu.yaml", "m3dhmr_paper.yaml"}


@pytest.fixture(scope="module")
def local_grounding_dino(tmp_path_factory):
    """A tiny random Grounding DINO saved as a local folder: the paper configs name a real
    checkpoint's folder, which a test machine does not have."""
    from helpers import tiny_detr

    from handrecon.models.handos.detector import DetectorConfig, save_detector, wrap_detector

    folder = tmp_path_factory.mktemp("grounding-dino")
    detr = tiny_detr("grounding-dino", encoder_layers=6)
    save_detector(wrap_detector("grounding-dino", detr, DetectorConfig(input_size=128)), folder)
    return f"grounding-dino:{folder}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_builds_its_model(path, local_grounding_dino):
    import handrecon.models.m3dhmr.data  # noqa: F401  (registers the datasets)
    import handrecon.models.m3dhmr  # noqa: F401  (registers the model)
    from handrecon.registry import DATASETS, MODELS

    overrides = []
    if "grounding-dino:" in path.read_text():
        overrides = [f"model.kwargs.detector={local_grounding_dino}"]
    cfg = load_config(path, overrides)
    DATASETS.get(cfg.data.train.name)  # raises on an unknown name
    if cfg.data.val is not None:
        DATASETS.get(cfg.data.val.name)
    model = MODELS.build(cfg.model.name, **cfg.model.kwargs)
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
    if cfg.model.name == "m3dhmr":  # the recipe's loss weights reach the model (heatmap guidance, §3.1)
        assert model.criterion.weights["heatmap"] == cfg.model.kwargs.get("loss_weights", {}).get("heatmap", 0.0)
    if cfg.model.name == "hand_detector":  # the data's input size is the model's (the frozen detector's preprocessing)
        assert cfg.data.train.kwargs["input_size"] == cfg.model.kwargs["input_size"] == cfg.data.val.kwargs["input_size"]
    if cfg.model.name == "handos":  # the paper's decoder on the paper configs: 778 vertex queries, d 256
        spec = model.inference_spec()
        assert spec["topology_sha256"] and spec["detector_sha256"]
        if "paper" in path.name:
            assert model.decoder.V == 778 and model.decoder.layers[0].norm1.normalized_shape == (256,)
            assert model.criterion.weights["joints_2d"] == 10 and model.criterion.weights["normal_consistency"] == 0.5
    writers = [c for c in (load_config(p) for p in CONFIGS if p != path) if c.model.name == cfg.model.name and
               cfg.train.init_from and (cfg.train.init_from == c.output or cfg.train.init_from.startswith(c.output + "/"))]
    shipped = Path(__file__).resolve().parents[1] / str(cfg.train.init_from) / "card.json"
    if cfg.train.init_from and cfg.train.init_partial and shipped.is_file():  # part of a shipped model's tensors
        from handrecon.checkpoint import load_tensors

        own = model.state_dict()  # read as the engine reads them: under train.init_prefix, if the config names one
        tensors = load_tensors(shipped.parent / "model.safetensors", cfg.train.init_prefix or "")
        fit = [k for k, v in tensors.items() if k in own and own[k].shape == v.shape]
        assert len(fit) > len(own) // 2, f"{cfg.train.init_from}: only {len(fit)} of {len(own)} tensors fit"
    elif cfg.train.init_from and cfg.train.init_partial:  # a recipe's later stage: an earlier config writes that run
        assert writers, f"no config writes {cfg.train.init_from}"
    elif cfg.train.init_from and cfg.train.init_prefix:  # one member of a shipped ensemble: every tensor under the prefix
        from handrecon.checkpoint import load_tensors

        tensors = load_tensors(shipped.parent / "model.safetensors", cfg.train.init_prefix)
        assert all(k in tensors and tensors[k].shape == v.shape for k, v in model.state_dict().items()), \
            f"{cfg.train.init_prefix} of {cfg.train.init_from}"
    elif writers:  # a continuation of an earlier config's run (a checkpoint in it): the same model
        assert all(c.model.kwargs == cfg.model.kwargs for c in writers)
    elif cfg.model.name == "hand_detector" and "tools/detector_checkpoint.py" in path.read_text():
        import json  # the shipped detector written by that tool (--depths: deeper, the added blocks the identity;
        # --input-size: read at another size)
        from handrecon.models.handos.hand_detector import ASSET_DIR

        shipped_kwargs = json.loads((ASSET_DIR / "card.json").read_text())["kwargs"]
        deeper = cfg.model.kwargs.get("depths") != shipped_kwargs["depths"]
        assert {**shipped_kwargs, **({"depths": cfg.model.kwargs["depths"], "zero_init_residual": True} if deeper else {}),
                "input_size": cfg.model.kwargs["input_size"]} == cfg.model.kwargs
    elif cfg.train.init_from:  # a fine-tuning recipe starts from a checkpoint of the same model
        import json

        root = Path(__file__).resolve().parents[1]
        card = json.loads((root / cfg.train.init_from / "card.json").read_text())
        assert card["architecture"] == cfg.model.name and card["kwargs"] == cfg.model.kwargs


def test_the_readme_index_names_every_config_once_and_each_recipe_in_order():
    """configs/README.md's "Which config is which" lists every config (shipped recipe or try) once,
    and each recipe script trains exactly the configs of its row, in that order."""
    import re

    root = Path(__file__).resolve().parents[1]
    text = (root / "configs" / "README.md").read_text()
    index = text.split("## Which config is which", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`([a-z0-9_]+)`", index)
    stems = sorted(p.stem for p in CONFIGS)
    listed = [n for n in named if n in stems]
    assert sorted(listed) == stems, f"missing: {sorted(set(stems) - set(listed))}, twice: " \
                                    f"{sorted({n for n in listed if listed.count(n) > 1})}"
    for row in index.splitlines():
        scripts = re.findall(r"`(tools/[a-z_]+\.sh)`", row)
        if not row.startswith("|") or len(scripts) != 1:  # a table row with its recipe script
            continue
        in_row = [n for n in re.findall(r"`([a-z0-9_]+)`", row.split("|")[3]) if n in stems]
        script = (root / scripts[0]).read_text()
        # `$HR train configs/X.yaml`, `soup_stage configs/X.yaml`, `distractor_stage configs/X.yaml`
        runs = re.findall(r"\b(?:train|soup_stage|distractor_stage) configs/([a-z0-9_]+)\.yaml", script)
        assert list(dict.fromkeys(runs)) == in_row, f"{scripts[0]} runs {runs}, the index says {in_row}"
