"""The HandOS family's registrations: importing this module registers the models
``hand_detector``, ``handos``, ``hand_side``, ``hand_box_verifier`` and
``hand_box_verifier_ensemble``, the datasets (`data.py`,
`side_head.py`, `box_verifier.py`), the
inference adapter, and the detectors for ``--detector`` (handrecon's own, and ``KIND:DIR`` for
transformers checkpoints) (`handrecon.registry`; the ``handrecon.families`` entry point names this
module)."""

from typing import Callable

import torch

from handrecon.models.handos import data, inference, onnx_detector  # noqa: F401 - imported to register them
from handrecon.models.handos.box_verifier import BoxVerifier, BoxVerifierEnsemble, HandBoxCandidates
from handrecon.models.handos.detector import DETECTOR_KINDS, Detector, load_detector
from handrecon.models.handos.hand_detector import HandDetector
from handrecon.models.handos.model import HandOS
from handrecon.models.handos.side_head import HandSideCrops, SideClassifier
from handrecon.registry import register_dataset, register_detector, register_model


@register_model("hand_detector")
def hand_detector(**kwargs) -> HandDetector:
    """Build the hand detector from config kwargs (see `HandDetector`)."""
    return HandDetector(**kwargs)


@register_model("handos")
def handos(**kwargs) -> HandOS:
    """Build HandOS from config kwargs (see `HandOS`)."""
    return HandOS(**kwargs)


@register_model("hand_side")
def hand_side(**kwargs) -> SideClassifier:
    """Build the detector's side head from config kwargs (see `SideClassifier`)."""
    return SideClassifier(**kwargs)


@register_model("hand_box_verifier")
def hand_box_verifier(**kwargs) -> BoxVerifier:
    """Build the detector's box verifier from config kwargs (see `BoxVerifier`)."""
    return BoxVerifier(**kwargs)


@register_model("hand_box_verifier_ensemble")
def hand_box_verifier_ensemble(**kwargs) -> BoxVerifierEnsemble:
    """Build box verifiers read as one (see `BoxVerifierEnsemble`; ``tools/ensemble_box_verifiers.py`` packages one)."""
    return BoxVerifierEnsemble(**kwargs)


register_dataset("hand_side_crops")(HandSideCrops)
register_dataset("hand_box_candidates")(HandBoxCandidates)


def _transformers_loader(kind: str) -> Callable[..., Detector]:
    """``--detector KIND:DIR``: the transformers checkpoint in DIR (torch, `threads` intra-op threads)."""
    def load(path: str | None, threads: int | None = None) -> Detector:
        if threads is not None:
            torch.set_num_threads(threads)
        return load_detector(f"{kind}:{path}")

    return load


for _kind in DETECTOR_KINDS:
    register_detector(_kind)(_transformers_loader(_kind))
