"""Helpers shared by the tests (not part of the package)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from handrecon.checkpoint import save_checkpoint
from handrecon.registry import MODELS


def random_checkpoint(path: str | Path, kwargs: dict | None = None, input_size: int = 128, seed: int = 0) -> Path:
    """An M3DHMR checkpoint with random (initial) weights, written through the same builder and
    checkpoint format as a trained one, its card carrying the model's inference spec as the
    trainer writes it. At initialisation the decoder outputs about the hand model's rest mesh."""
    kwargs = {**(kwargs or {}), "input_size": int(input_size)}
    torch.manual_seed(seed)
    model = MODELS.build("m3dhmr", **kwargs)
    return save_model_checkpoint(path, "m3dhmr", kwargs, model, f"random initial weights (seed {seed}), not trained")


def save_model_checkpoint(path: str | Path, architecture: str, kwargs: dict, model: torch.nn.Module,
                          note: str = "test weights, not trained") -> Path:
    """`model` (built as `architecture` from `kwargs`) saved as a checkpoint the way the trainer
    saves one: weights and a card with the model's inference spec."""
    card = {"architecture": architecture, "kwargs": kwargs, "inference": model.inference_spec(), "note": note}
    return save_checkpoint(path, model, {}, card)


class OneByOne:
    """Mixin for test predictors that define `predict`: `predict_batch` calls it per image."""

    def predict_batch(self, images, Ks=None, boxes=None, sides=None, batch_size=32):
        n = len(images)
        Ks, boxes, sides = ([None] * n if x is None else x for x in (Ks, boxes, sides))
        return [self.predict(i, K=K, boxes=b, sides=s) for i, K, b, s in zip(images, Ks, boxes, sides)]


def assert_same_hand_mesh(vertices, cam_t, want_vertices, want_cam_t, atol: float = 1e-4) -> None:
    """The same mesh about its root to `atol` metres, and the same placement to 0.5 % of its depth: the
    tests' tiny random models make hands millimetres across, so root recovery turns the kernels'
    summation-order noise (which differs between backends, batch sizes and CPUs: 1e-6-1e-5 m in
    the joints) into millimetres of depth."""
    np.testing.assert_allclose(np.subtract(vertices, cam_t), np.subtract(want_vertices, want_cam_t), atol=atol)
    np.testing.assert_allclose(cam_t, want_cam_t, atol=5e-3 * abs(float(want_cam_t[2])))


def load_script(relative: str):
    """Import a script of the repository (tools/, benchmarks/) by path, as a module, with its folder
    on sys.path as when it runs (benchmarks import their shared `_timing`)."""
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


TINY_DETR_WIDTH, TINY_DETR_QUERIES = 64, 12


def tiny_detr(kind: str, encoder_layers: int = 2):
    """A tiny random transformers detector of `kind` (one of handos DETECTOR_KINDS), built from a
    config offline: d_model 64, 12 queries, a basic ResNet backbone of widths 16-128."""
    import torch
    import transformers

    D, Q = TINY_DETR_WIDTH, TINY_DETR_QUERIES

    def resnet(rt: bool = False):
        cls = transformers.RTDetrResNetConfig if rt else transformers.ResNetConfig
        return cls(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1], layer_type="basic",
                   out_features=["stage2", "stage3", "stage4"])

    torch.manual_seed(0)
    common = dict(d_model=D, encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=Q, encoder_attention_heads=4,
                  decoder_attention_heads=4)
    if kind in ("rt-detr", "rt-detr-v2"):
        cfg_cls, model_cls = ((transformers.RTDetrConfig, transformers.RTDetrForObjectDetection) if kind == "rt-detr"
                              else (transformers.RTDetrV2Config, transformers.RTDetrV2ForObjectDetection))
        cfg = cfg_cls(backbone_config=resnet(True), encoder_hidden_dim=D, decoder_layers=3, num_labels=1,
                      encoder_in_channels=[32, 64, 128], decoder_in_channels=[D] * 3, num_denoising=0, **common)
        return model_cls(cfg)
    if kind == "deformable-detr":
        cfg = transformers.DeformableDetrConfig(backbone_config=resnet(), use_timm_backbone=False,
                                                encoder_layers=encoder_layers, decoder_layers=2, num_labels=1,
                                                two_stage=True, with_box_refine=True, two_stage_num_proposals=Q, **common)
        return transformers.DeformableDetrForObjectDetection(cfg)
    text = transformers.BertConfig(vocab_size=2200, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=32)
    cfg_cls, model_cls = ((transformers.GroundingDinoConfig, transformers.GroundingDinoForObjectDetection)
                          if kind == "grounding-dino" else
                          (transformers.MMGroundingDinoConfig, transformers.MMGroundingDinoForObjectDetection))
    cfg = cfg_cls(backbone_config=resnet(), use_timm_backbone=False, text_config=text, encoder_layers=encoder_layers,
                  decoder_layers=2, max_text_len=16, **common)
    return model_cls(cfg)
