"""Synthetic data engine: posed, shaped OpenHand hands rendered headless with exact ground truth.

    from handrecon.data.synth import SynthEngine, preset
    sample = SynthEngine(preset("crop")).sample(index=0, seed=0)

Modules: `config` (presets), `scene` (camera, hand placement, occluders), `appearance` (skin,
lights, backgrounds, corruption), `engine` (render + ground truth), `writer` (sharded datasets).
"""

from handrecon.data.synth.config import PRESETS, SynthConfig, preset
from handrecon.data.synth.engine import SynthEngine, keypoint_visibility

__all__ = ["PRESETS", "SynthConfig", "SynthEngine", "keypoint_visibility", "preset"]
